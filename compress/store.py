"""Everything that touches the disk: atomic files, tables with provenance, the step cache and its keys.

A results table is a tidy CSV whose first line is `# provenance: {json}` (config, seed, versions, git
commit, device, dataset source), so a number can always be traced to the run that made it, and the
file still opens in pandas with `read_table`. Every write goes to a temporary file that is renamed
into place, so an interrupted run never leaves a half-written result that a later run would trust.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
PROVENANCE_PREFIX = "# provenance: "


# ----------------------------------------------------------------------------- atomic writes
def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through a temp file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _new_file_mode())  # mkstemp's private 0600 would otherwise replace the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _new_file_mode() -> int:
    """The mode `open(path, "w")` gives a new file: 0666 less the process umask (read without changing it
    where /proc says it, else by setting it and putting it back)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def _jsonable(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(o)
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    return str(o)


# ----------------------------------------------------------------------------- provenance
def git_commit(repo: Path = REPO_ROOT) -> str:
    """HEAD's hash, with `+dirty` when the tree has uncommitted changes; `unknown` outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.lru_cache(maxsize=None)
def cpu_info() -> dict[str, str]:
    """The first CPU's fields in Linux /proc/cpuinfo (`model name`, `vendor_id`, `flags`, ...); {} elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            first_cpu = f.read().split("\n\n")[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in first_cpu.splitlines())}


def cpu_model() -> str:
    """The CPU's model name, family/model numbers and bf16 hardware: the same name covers machines that
    train 3x apart (`Intel(R) Xeon(R) Processor` with and without AMX), so the features are part of it."""
    info = cpu_info()
    if not info:
        return platform.processor() or platform.machine()  # "x86_64" on Linux, hence /proc/cpuinfo
    flags = set(info.get("flags", "").split())
    isa = [name for flag, name in (("avx512f", "AVX512"), ("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX"))
           if flag in flags] or ["no AVX512"]
    if "avx512_bf16" in flags and "amx_bf16" not in flags:
        isa.append("no AMX")
    return (f"{info.get('model name', '?')} [family {info.get('cpu family', '?')} model {info.get('model', '?')}; "
            f"{', '.join(isa)}]")


def device_name(device: str | None = None) -> str:
    dev = str(device) if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    if dev.startswith("cuda") and torch.cuda.is_available():
        return f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
    return f"cpu ({cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("torch", "torchvision", "torch_pruning", "torchao", "numpy", "pandas", "onnxruntime"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # a missing optional package is recorded, not fatal
            out[mod] = "absent"
    return out


def provenance(config: dict | None = None, *, seed: int | None = None, data_source: str | None = None,
               device: str | None = None) -> dict:
    """Everything needed to trace a number: what was asked, on what data, with which code, where."""
    return {
        "config": config or {},
        "seed": seed,
        "data_source": data_source,
        "device": device_name(device),
        "versions": versions(),
        "git_commit": git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# ----------------------------------------------------------------------------- tables
def write_table(path: str | Path, df: pd.DataFrame, prov: dict) -> Path:
    """A tidy CSV with its provenance on the first line, written atomically."""
    buf = io.StringIO()
    buf.write(PROVENANCE_PREFIX + json.dumps(prov, sort_keys=True, default=_jsonable) + "\n")
    df.to_csv(buf, index=False)
    return atomic_write_text(path, buf.getvalue())


def read_table(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """The table and its provenance, as written by `write_table`."""
    text = Path(path).read_text()
    first, _, rest = text.partition("\n")
    if not first.startswith(PROVENANCE_PREFIX):
        raise ValueError(f"{path} is not a compress results table (no provenance line)")
    return pd.read_csv(io.StringIO(rest)), json.loads(first[len(PROVENANCE_PREFIX):])


# ----------------------------------------------------------------------------- step cache
def fingerprint(model) -> str:
    """A hash of a model's weights and their names: identifies upstream weights in step cache keys."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def config_key(config: dict) -> str:
    """A short stable hash of a JSON-able configuration."""
    blob = json.dumps(config, sort_keys=True, default=_jsonable)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class MissingStep(LookupError):
    """A step's input is not in the cache and the caller asked not to compute it (e.g. the CLI's `prune`
    before `train`): the message says which command makes it."""


PROGRESS_SUFFIX = ".progress.json"


def progress_path(state_path: str | Path) -> Path:
    """Where the work saved in `state_path` (e.g. a training state) declares the seconds it cost."""
    state_path = Path(state_path)
    return state_path.with_name(state_path.stem + PROGRESS_SUFFIX)


def saved_seconds(folder: Path, field: str = "seconds") -> float:
    """The seconds of work that earlier, interrupted attempts saved in `folder` (their progress files);
    `field="carried"`: the part of it the last attempt actually resumed from (a discarded state carries 0)."""
    total = 0.0
    for path in sorted(folder.glob("*" + PROGRESS_SUFFIX)):
        try:
            record = read_json(path)
            total += float(record[field] if field in record else record["seconds"])
        except (OSError, ValueError, KeyError, TypeError):  # a torn file costs its seconds in the total, nothing else
            print(f"warning: ignoring unreadable progress file {path}", flush=True)
    return total


DONE = "done.json"
LOCKS = ".locks"  # the step locks' folder inside the cache root


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def folder_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file a step left in `folder` (but `done.json`), by path relative to it."""
    return {f.relative_to(folder).as_posix(): file_digest(f) for f in sorted(folder.rglob("*"))
            if f.is_file() and f.name != DONE}


class StepCache:
    """Finished pipeline steps on disk, keyed by their configuration.

    A step's folder `<root>/<name>-<hash>/` holds what the step wrote plus `done.json`, written last and
    atomically with a sha256 of every other file: a folder without it (an interrupted run) is resumed or
    recomputed, never trusted, and a finished one is used only while its files are the ones it finished with
    (a damaged, swapped or truncated entry, or an unreadable `done.json`, is moved aside with one warning line
    and the step computed again). One process computes a step at a time: a second waits on the step's lock
    (`fcntl.flock`, released by the kernel if its holder dies), then finds the result. Work saved to resume
    from declares what it cost in a progress file (`progress_path`), so a step finished over several attempts
    records its whole compute time, not only its last attempt's.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.log: list[dict] = []  # every step asked of this cache: name, folder, cached, compute seconds

    def folder(self, name: str, config: dict) -> Path:
        return self.root / f"{name}-{config_key(config)}"

    def is_done(self, name: str, config: dict) -> bool:
        """Whether the step finished and its files are intact (a damaged entry is set aside: not done)."""
        folder = self.folder(name, config)
        done = folder / DONE
        if not done.is_file():
            return False
        try:
            record = read_json(done)
            expected = record["files"] if isinstance(record, dict) and "files" in record else None
        except (OSError, ValueError):
            return self._set_aside(folder, "has an unreadable done.json")
        found = folder_digests(folder)
        if expected is None:  # finished before content hashes were recorded: record them now, trusted once
            write_json(done, {**record, "files": found})
            return True
        if found != expected:
            differ = sorted(n for n in set(found) | set(expected) if found.get(n) != expected.get(n))
            return self._set_aside(folder, f"no longer holds the files it finished with ({', '.join(differ[:3])})")
        return True

    @staticmethod
    def _set_aside(folder: Path, why: str) -> bool:
        target = folder.with_name(f"{folder.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(folder, target)
        print(f"warning: cached step {folder.name} {why}: moved to {target.name}, computing it again", flush=True)
        return False

    @contextlib.contextmanager
    def lock(self, folder: Path):
        """Hold the step's lock for as long as the block runs: a file in `<root>/.locks/`, kept (deleting a lock
        file another process waits on would let a third one take a fresh lock beside it)."""
        import fcntl

        locks = self.root / LOCKS
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{folder.name}.lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"waiting: another process is computing {folder.name}", flush=True)
                fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def run(self, name: str, config: dict, compute: Callable[[Path], Any]) -> tuple[Path, bool]:
        """Run `compute(folder)` unless this (name, config) already finished; returns (folder, was_cached).

        `compute` writes its outputs into `folder`; `done.json` (with the config and the wall time, that of
        earlier attempts' saved work included) is written after it returns. A failed compute that wrote
        nothing leaves no folder behind.
        """
        folder = self.folder(name, config)
        with self.lock(folder):
            if self.is_done(name, config):
                seconds = read_json(folder / DONE).get("seconds")
                self.log.append({"step": name, "folder": folder.name, "cached": True, "seconds": seconds})
                return folder, True
            folder.mkdir(parents=True, exist_ok=True)
            earlier = saved_seconds(folder)
            t0 = time.perf_counter()
            try:
                compute(folder)
            except BaseException:
                if not any(folder.iterdir()):  # nothing worth resuming from: leave no empty folder behind
                    folder.rmdir()
                raise
            # the earlier attempts' work this attempt resumed from (a training step restarted afresh resumed none)
            earlier = saved_seconds(folder, "carried") if any(folder.glob("*" + PROGRESS_SUFFIX)) else earlier
            seconds = time.perf_counter() - t0 + earlier
            write_json(folder / DONE, {"name": name, "config": config, "finished": time.time(), "seconds": seconds,
                                       "earlier_attempts_seconds": earlier, "files": folder_digests(folder)})
        self.log.append({"step": name, "folder": folder.name, "cached": False, "seconds": seconds})
        return folder, False
