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
from ..files import read_json
from ..provenance import device_name, git_commit
from ..train import STATE_FORMAT, progress_path, save_state
from .cache import DONE, KEY, STATE

RESUME_DIR = "resume"


def resume_dir(results_root: str | Path, arch: str) -> Path:
    return pub.models_dir(arch, Path(results_root)) / RESUME_DIR


def restore(folder: Path, arch: str, results_root: str | Path) -> bool:
    """Before a training step runs in `folder`: without a saved state there, write the state of its committed
    resume point, if there is one. Returns whether it did (the step then continues from that epoch)."""
    path = resume_dir(results_root, arch) / f"{folder.name}.pt"
    if not path.is_file():
        return False
    point = rp.load(path, folder.name)
    local = _saved_epoch(folder)
    if local is not None and local >= point["epoch"]:
        return False  # this machine's own state, as far along: an exact resume
    source = f"results/{arch}/models/{RESUME_DIR}/{path.name}"
    save_state(folder / STATE, rp.to_training_state(point, state_format=STATE_FORMAT, source=source))
    print(f"{folder.name}: continuing from the resume point {source} (after epoch {point['epoch']}; {rp.MODE})",
          flush=True)
    return True


def _saved_epoch(folder: Path) -> int | None:
    """The epoch the step's local training state reached (its progress file), or None without one."""
    if not (folder / STATE).is_file():
        return None
    try:
        return int(read_json(progress_path(folder / STATE))["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0  # a state without a readable progress file: any point is further along


def export(cache_root: str | Path, results_root: str | Path, out=print) -> dict[str, list[str]]:
    """Write the resume point of every unfinished training step in the cache (a folder with a training state and
    its key, but no `done.json`) into the results folder, and delete every point whose step has finished (in the
    results' manifest: published, so every machine reads it). Returns {"written": [...], "deleted": [...], "skipped": [...]} (paths or reasons)."""
    cache_root, results_root = Path(cache_root), Path(results_root)
    done = {"written": [], "deleted": [], "skipped": []}
    for folder in sorted(p for p in cache_root.glob("*") if (p / STATE).is_file() and not (p / DONE).exists()):
        if not (folder / KEY).is_file():
            done["skipped"].append(f"{folder.name}: no {KEY} (started by an older version), so no key to publish")
            continue
        try:  # one unreadable folder (a step finishing under our feet, an older state) costs only its own point
            key = read_json(folder / KEY)["config"]
            state = torch.load(folder / STATE, map_location="cpu", weights_only=True)
            path = resume_dir(results_root, key["arch"]) / f"{folder.name}.pt"
            if path.is_file() and rp.load(path, folder.name)["epoch"] > state["epoch"]:
                done["skipped"].append(f"{folder.name}: the committed point is further along (epoch "
                                       f"{rp.load(path, folder.name)['epoch']}) than this cache (epoch {state['epoch']})")
                continue
            prov = {"git_commit": (state.get("commits") or [git_commit()])[-1], "device": device_name(),
                    "precision": (state.get("identity") or {}).get("precision")}
            size = rp.save(rp.from_training_state(state, step=folder.name, key=key, provenance=prov), path)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, rp.ResumePointError) as e:
            done["skipped"].append(f"{folder.name}: {e}")
            continue
        done["written"].append(str(path))
        out(f"resume point {path}: {folder.name} after epoch {state['epoch']} ({size / 2**20:.1f} MiB)")
    for path in sorted(results_root.glob(f"*/models/{RESUME_DIR}/*.pt")):
        arch, step = path.parents[2].name, path.stem
        if step in pub.read_manifest(arch, results_root)["steps"]:  # finished where others can read it
            path.unlink()
            done["deleted"].append(str(path))
            out(f"deleted {path}: {step} has finished")
    for reason in done["skipped"]:
        out(f"warning: {reason}")
    return done


def delete_finished(results_root: str | Path, arch: str, folder: str) -> None:
    """A step just published: its resume point, if any, has done its work."""
    (resume_dir(results_root, arch) / f"{folder}.pt").unlink(missing_ok=True)
