"""Everything written to disk goes through here: atomic files, JSON, and tables with their provenance.

A results table is a tidy CSV whose first line is `# provenance: {json}` (what computed it: config, seed,
versions, git commits, machine, precision, dataset), so a number can always be traced to the run that made it,
and the file still opens in pandas with `read_table`. Every write goes to a temporary file renamed into place,
so an interrupted run never leaves a half-written result that a later run would trust.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
PROVENANCE_PREFIX = "# provenance: "


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


def check_output_folder(path: str | Path, what: str = "output folder") -> Path:
    """`path` if files can be written under it (it is a writable folder, or the first part of it that exists is
    one, so the rest can be made); else an error naming `what`, the path and the part in the way. Commands call it
    before any work, so a wrong `--results` fails in one line instead of after the training it would have saved."""
    path = Path(path).expanduser()
    _check_writable(path, f"{what} {path}")
    return path


def check_output_file(path: str | Path, what: str = "output file") -> Path:
    """`path` if a file can be written there: not an existing folder, in a folder `check_output_folder` accepts."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder: name a file")
    _check_writable(path.parent, f"{what} {path}")
    return path


def _check_writable(folder: Path, label: str) -> None:
    for part in [folder.absolute(), *folder.absolute().parents]:  # the first part that exists decides
        if part.exists():
            if not part.is_dir():
                raise NotADirectoryError(f"{label}: {part} is a file, not a folder")
            if not os.access(part, os.W_OK | os.X_OK):
                raise PermissionError(f"{label}: {part} is not writable")
            return


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
