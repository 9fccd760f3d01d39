"""Resume points in the results folder (`resume_point.py`): one per unfinished training step, written from the
step cache before a window ends (`export`) and turned back into a training state when the step starts on a
machine that lacks its local state (`restore`). A step continues from the local cache (exact), else from its
committed resume point, else from the start; a finished step's point is deleted.

`<results>/<arch>/models/resume/<step folder>.pt`: the step folder is the cache's name for the step and its key.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .. import published as pub
from .. import resume_point as rp
from ..files import REPO_ROOT, read_json
from ..provenance import device_name, git_commit
from ..train import STATE_FORMAT, save_state
from .cache import DONE, KEY, STATE

RESUME_DIR = "resume"


def resume_dir(results_root: str | Path, arch: str) -> Path:
    return pub.models_dir(arch, Path(results_root)) / RESUME_DIR


def restore(folder: Path, arch: str, results_root: str | Path) -> bool:
    """Before a training step runs in `folder`: without a saved state there, write the state of its committed
    resume point, if there is one. Returns whether it did (the step then continues from that epoch)."""
    if (folder / STATE).is_file():
        return False  # this machine's own state: an exact resume
    path = resume_dir(results_root, arch) / f"{folder.name}.pt"
    if not path.is_file():
        return False
    point = rp.load(path, folder.name)
    try:
        source = path.resolve().relative_to(REPO_ROOT.resolve()).as_posix()
    except ValueError:
        source = str(path)
    save_state(folder / STATE, rp.to_training_state(point, state_format=STATE_FORMAT, source=source))
    print(f"{folder.name}: continuing from the resume point {source} (after epoch {point['epoch']}; {rp.MODE})",
          flush=True)
    return True


def export(cache_root: str | Path, results_root: str | Path, out=print) -> dict[str, list[str]]:
    """Write the resume point of every unfinished training step in the cache (a folder with a training state and
    its key, but no `done.json`) into the results folder, and delete every point whose step has finished (in the
    cache, or published). Returns {"written": [...], "deleted": [...], "skipped": [...]} (paths or reasons)."""
    cache_root, results_root = Path(cache_root), Path(results_root)
    done = {"written": [], "deleted": [], "skipped": []}
    for folder in sorted(p for p in cache_root.glob("*") if (p / STATE).is_file() and not (p / DONE).exists()):
        if not (folder / KEY).is_file():
            done["skipped"].append(f"{folder.name}: no {KEY} (started by an older version), so no key to publish")
            continue
        key = read_json(folder / KEY)["config"]
        state = torch.load(folder / STATE, map_location="cpu", weights_only=True)
        prov = {"git_commit": (state.get("commits") or [git_commit()])[-1], "device": device_name(),
                "precision": (state.get("identity") or {}).get("precision")}
        point = rp.from_training_state(state, step=folder.name, key=key, provenance=prov)
        path = resume_dir(results_root, key["arch"]) / f"{folder.name}.pt"
        try:
            size = rp.save(point, path)
        except rp.ResumePointError as e:
            done["skipped"].append(str(e))
            continue
        done["written"].append(str(path))
        out(f"resume point {path}: {folder.name} after epoch {state['epoch']} ({size / 2**20:.1f} MiB)")
    for path in sorted(results_root.glob(f"*/models/{RESUME_DIR}/*.pt")):
        arch, step = path.parents[2].name, path.stem
        published = step in pub.read_manifest(arch, results_root)["steps"]
        if published or (cache_root / step / DONE).is_file():
            path.unlink()
            done["deleted"].append(str(path))
            out(f"deleted {path}: {step} has finished")
    for reason in done["skipped"]:
        out(f"warning: {reason}")
    return done


def delete_finished(results_root: str | Path, arch: str, folder: str) -> None:
    """A step just published: its resume point, if any, has done its work."""
    (resume_dir(results_root, arch) / f"{folder}.pt").unlink(missing_ok=True)
