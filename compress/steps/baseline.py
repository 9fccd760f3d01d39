"""The baseline step: train (or load) the unpruned model; everything downstream keys on its weights."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import nn

from ..checkpoint import load_checkpoint, save_checkpoint
from ..metrics import model_costs, model_summary
from ..models import build_model
from .cache import MissingStep
from .keys import BaselineReads, baseline_config
from ..files import read_json, read_table, write_json, write_table
from ..train import TrainConfig, fit
from .session import Session

STATE_FILE = "train_state.pt"  # the resumable training state inside the baseline's step folder


def baseline_key(arch: str, width: float, seed: int, data_summary: str, train_identity: dict) -> dict:
    """The baseline's cache key: only what decides its weights (not the rest of the profile), so tuning
    later steps never throws away hours of baseline training. Pinned by a test: keep it stable."""
    reads = train_identity if isinstance(train_identity, BaselineReads) else BaselineReads(train_identity)
    return {"step": "baseline", "arch": arch, "width": float(width), "seed": seed, "data": data_summary, **reads.key()}


def _baseline_config(s: Session, **train_overrides) -> tuple[TrainConfig, dict]:
    cfg = baseline_config(s.profile, s.arch, s.seed, **train_overrides)
    return cfg, baseline_key(s.arch, s.profile.width, s.seed, s.data.summary(), BaselineReads(cfg.identity(s.device)))


def baseline_folder(s: Session, **train_overrides) -> Path:
    """Where the cached baseline of this session lives (model.pt, history.csv, result.json)."""
    return s.cache.folder("baseline", _baseline_config(s, **train_overrides)[1])


def train_baseline(s: Session, *, train: bool = True, **train_overrides) -> nn.Module:
    """Train (or load from the cache) the unpruned baseline; records the `baseline` and `history` tables.

    Resumable: the training state is saved in the step folder after every epoch, so a killed run picks
    up from its last finished epoch. `train=False` only loads, and says how to train when nothing is cached.
    """
    cfg, key = _baseline_config(s, **train_overrides)
    if not train and not s.cache.is_done("baseline", key):
        raise MissingStep(f"no trained {s.arch} baseline for profile {s.profile.name!r} (seed {s.seed}) in "
                          f"{s.cache.root}: run `python -m compress train --arch {s.arch} --profile {s.profile.name}` "
                          f"first, or pass --checkpoint")

    def compute(folder: Path) -> None:
        torch.manual_seed(s.seed)
        model = build_model(s.arch, width=s.profile.width)
        result = fit(model, s.data, cfg, device=s.device, state_path=folder / STATE_FILE)
        record = {"arch": s.arch, "stage": "baseline", **result.summary(),
                  **model_costs(model, latency_runs=s.profile.latency_runs, latency_warmup=s.profile.latency_warmup)}
        save_checkpoint(model, folder / "model.pt", s.arch, s.profile.width, meta={"stage": "baseline"})
        write_table(folder / "history.csv", result.history, s.provenance({"train": cfg.to_dict()}))
        write_json(folder / "result.json", {"record": record, "provenance": s.provenance({"train": cfg.to_dict()})})
        (folder / STATE_FILE).unlink(missing_ok=True)

    folder, _ = s.run("baseline", key, compute)
    model, _ = load_checkpoint(folder / "model.pt", s.arch)
    # static costs are recounted on load, so every table uses today's one counter
    record = {**read_json(folder / "result.json")["record"], **model_summary(model)}
    s.baseline_step = folder.name
    s.record("baseline", pd.DataFrame([record]), steps=[folder])
    s.record("history", read_table(folder / "history.csv")[0], steps=[folder])
    s.add_model("baseline", "baseline", {**record, "top1": record["test_top1"]})
    return model.to(s.device).eval()


def load_model(s: Session, path: str | Path, stages: tuple[str, ...] | None = None) -> nn.Module:
    """A checkpoint given by the user, checked against the session (its architecture and profile width) and,
    when given, against the `stages` the caller takes (e.g. only a baseline where a baseline belongs)."""
    model, _ = load_checkpoint(path, s.arch, width=s.profile.width, stages=stages)
    return model.to(s.device).eval()
