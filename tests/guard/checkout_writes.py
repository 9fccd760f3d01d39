"""Which files in the checkout the test suite wrote: every Python process of the run (pytest itself, and the
processes it starts, through `sitecustomize.py` beside this file) appends each path it writes, renames onto or
deletes inside the watched parts of the checkout to one log, seen through Python's audit hooks (`open` for
writing, `os.rename` / `os.replace`, `os.remove`, `shutil.rmtree`, `shutil.copyfile`, `os.utime`, links).

tests/conftest.py fails the suite on a file whose mtime changed during the run AND that this log names, so a
`reproduce` running beside the tests (writing runs/ too) no longer fails them, while a test that writes the
checkout still does. Writes made below Python (a C++ library writing a path itself) are not seen; the project's
writers all go through Python (`compress.files`' atomic writes, matplotlib, nbformat, papermill).

Standalone on purpose: the child processes load it before anything else, without compress.
"""
from __future__ import annotations

import os
import sys

LOG_ENV = "COMPRESS_TEST_WRITES"  # the log file; set by tests/conftest.py for the whole run
WATCH_ENV = "COMPRESS_TEST_WATCH"  # other roots to watch instead (os.pathsep-separated): the guard's own tests
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# what a user's checkout holds and no test may write: published results, figures, notebooks, default run folders
WATCHED = ("results", "assets", "notebooks", "README.md", "docs", *(f"runs/{p}" for p in ("smoke", "quick", "cpu", "full")))


def default_roots() -> tuple[str, ...]:
    """The watched paths, as written and with symlinks resolved (a process may reach the checkout either way)."""
    bases = dict.fromkeys([REPO, os.path.realpath(REPO)])
    return tuple(os.path.join(base, name) for base in bases for name in WATCHED)


ROOTS = tuple(os.environ[WATCH_ENV].split(os.pathsep)) if os.environ.get(WATCH_ENV) else default_roots()

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_state = {"log": None, "hooked": False}


def watched(path: str) -> bool:
    return any(path == root or path.startswith(root + os.sep) for root in ROOTS)


def _paths(event: str, args: tuple) -> tuple:
    """The paths an audited call writes, renames, deletes or touches (none for reads)."""
    if event == "open":
        path, mode, flags = args
        writes = bool(flags & WRITE_FLAGS) if isinstance(flags, int) else bool(mode and set(str(mode)) & set("wax+"))
        return (path,) if writes else ()
    if event in ("os.rename", "shutil.copyfile", "os.link", "os.symlink"):
        return args[:2] if event == "os.rename" else args[1:2]
    if event in ("os.remove", "shutil.rmtree", "os.utime", "os.truncate"):
        return args[:1]
    return ()


EVENTS = frozenset({"open", "os.rename", "shutil.copyfile", "os.link", "os.symlink", "os.remove", "shutil.rmtree",
                    "os.utime", "os.truncate"})


def _hook(event: str, args: tuple) -> None:
    if event not in EVENTS or _state["log"] is None:
        return
    for path in _paths(event, args):
        if isinstance(path, int):  # an open file descriptor: its path was seen when it was opened
            continue
        try:
            full = os.path.abspath(os.fsdecode(path))
        except (TypeError, ValueError):
            continue
        if watched(full):
            log, _state["log"] = _state["log"], None  # the log's own open must not come back here
            try:
                with open(log, "a") as f:
                    f.write(full + "\n")
            finally:
                _state["log"] = log


def install(log: str | None = None) -> None:
    """Record this process's writes into the checkout to `log` (default: $COMPRESS_TEST_WRITES), from now on."""
    log = log or os.environ.get(LOG_ENV)
    if log:
        _state["log"] = log
        if not _state["hooked"]:  # audit hooks cannot be removed: add this module's once
            sys.addaudithook(_hook)
            _state["hooked"] = True


def stop() -> None:
    _state["log"] = None


def written(log: str) -> set[str]:
    try:
        with open(log) as f:
            return {line.rstrip("\n") for line in f if line.strip()}
    except FileNotFoundError:
        return set()


def written_changes(before: dict, after: dict, written_paths) -> list:
    """The files (keys of `before` / `after`: path -> mtime) that changed, appeared or vanished AND that the run
    wrote: the path itself, or a folder above it (renamed or removed whole)."""
    written_paths = {os.path.realpath(p) for p in written_paths}
    changed = {f for f in set(before) | set(after) if before.get(f) != after.get(f)}

    def by_run(f) -> bool:
        path = os.path.realpath(f)
        while True:
            if path in written_paths:
                return True
            parent = os.path.dirname(path)
            if parent == path:
                return False
            path = parent

    return sorted(f for f in changed if by_run(f))
