"""A resume point: an unfinished training step, small enough to commit, so the next 3-hour window continues it
on any machine instead of starting again.

It is a training state (`train.py`) cut to what continuing needs: the weights in fp16 (BN running statistics
kept in fp32, their counters as they are), the epoch and step, the learning-rate schedule, the data-order and
augmentation generator and the global RNG, and the history so far. The optimizer's momentum is dropped: it
would double the file. A run continued from one therefore is not bit-identical to an uninterrupted one: its
provenance says so (`mode`), and its step keeps its key. A machine of another precision may continue it (a
full training state resumes only in the arithmetic it started in).

Files hold tensors, numbers and strings only, and load with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch

from .files import atomic_write_bytes

FORMAT = "compress-resume-point-v1"
MODE = "fp16 weights (BN statistics fp32), momentum restarted"
MAX_BYTES = 50 * 1024 * 1024  # git's limit here for one file: a point over it is not written
_FP32_BUFFERS = ("running_mean", "running_var")  # BN statistics: rounding them moves every activation
_KEPT = ("epoch", "step", "scheduler", "generator", "cpu_rng", "history", "train_seconds", "images", "wall_seconds",
         "commits", "identity")


class ResumePointError(ValueError):
    """A resume point that cannot continue this step: another format, another step, or unreadable."""


def rounded_weights(state_dict: dict) -> dict:
    """Float tensors in fp16, except BN running statistics (fp32); integer tensors (BN counters) unchanged."""
    out = {}
    for name, t in state_dict.items():
        t = t.detach().cpu()
        if t.is_floating_point():
            t = t.float() if name.endswith(_FP32_BUFFERS) else t.half()
        out[name] = t.clone()
    return out


def from_training_state(state: dict, *, step: str, key: dict, provenance: dict) -> dict:
    """The resume point of a saved training state (`train.save_state`'s dict) of the cached step `step`."""
    missing = [k for k in _KEPT if k not in state]
    if missing:
        raise ResumePointError(f"the training state of {step} lacks {', '.join(missing)}")
    return {"format": FORMAT, "step_folder": step, "key": key, "mode": MODE, "provenance": provenance,
            "model": rounded_weights(state["model"]), "resumed_from": list(state.get("resumed_from") or []),
            **{k: state[k] for k in _KEPT}}


def to_training_state(point: dict, *, state_format: str, source: str) -> dict:
    """The training state `fit` resumes from: fp32 weights, no optimizer state (fresh momentum), and where it
    came from (`resumed_from`, carried into the step's provenance)."""
    model = {k: (v.float() if v.is_floating_point() else v) for k, v in point["model"].items()}
    origin = {"resume_point": source, "epoch": point["epoch"], "mode": MODE,
              "computed_by": {k: point.get("provenance", {}).get(k) for k in ("git_commit", "device", "precision")}}
    earlier = list(point.get("resumed_from") or [])
    return {"format": state_format, "model": model, **{k: point[k] for k in _KEPT},
            "resumed_from": earlier + [origin]}


def save(point: dict, path: str | Path) -> int:
    """Write `point` atomically; returns its size. Refuses (ResumePointError) a point over `MAX_BYTES`."""
    buf = io.BytesIO()
    torch.save(point, buf)
    if buf.tell() > MAX_BYTES:
        raise ResumePointError(f"the resume point of {point.get('step_folder')} would be {buf.tell() / 2**20:.1f} MiB, "
                               f"over the {MAX_BYTES / 2**20:.0f} MiB a committed file may have")
    atomic_write_bytes(Path(path), buf.getvalue())
    return buf.tell()


def load(path: str | Path, step: str) -> dict:
    """The resume point at `path`, checked to be one of `step` (a cache folder name: the step and its key hash)."""
    try:
        point = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ResumePointError(f"unreadable resume point {path} ({e.__class__.__name__}: {e})") from e
    if not isinstance(point, dict) or point.get("format") != FORMAT:
        raise ResumePointError(f"{path} is not a resume point ({FORMAT})")
    if point.get("step_folder") != step:
        raise ResumePointError(f"{path} continues {point.get('step_folder')}, not {step}")
    return point
