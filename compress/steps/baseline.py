"""The baseline step: train (or load from the cache or the published models) the unpruned model; everything
downstream keys on its weights."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import nn

from ..checkpoint import load_checkpoint
from ..metrics import model_costs, model_summary
from ..models import build_model
from .cache import HISTORY, MissingStep, RECORD
from .keys import baseline_config
from ..files import read_json, read_table
from ..train import TrainConfig, fit
from .session import Session
from .trained import trained_step


def baseline_key(s: Session, **train_overrides) -> tuple[TrainConfig, dict]:
    """The baseline's recipe and cache key: only what decides its weights (not the rest of the profile), so
    tuning later steps never throws away hours of baseline training."""
    cfg = baseline_config(s.profile, s.arch, s.seed, **train_overrides)
    return cfg, s.key("baseline", train=cfg.identity())


def baseline_folder(s: Session, **train_overrides) -> Path:
    """Where the cached baseline of this session lives (model.pt, history.csv, record.json)."""
    return s.cache.folder("baseline", baseline_key(s, **train_overrides)[1])


def train_baseline(s: Session, *, train: bool = True, **train_overrides) -> nn.Module:
    """Train (or load from the cache, or from the published models) the unpruned baseline; records the
    `baseline` and `history` tables.

    Resumable: the training state is saved in the step folder after every epoch, so a killed run picks
    up from its last finished epoch. `train=False` only loads, and says how to train when nothing is there.
    """
    cfg, key = baseline_key(s, **train_overrides)
    if not train and s.cache.status("baseline", key) is None:
        raise MissingStep(f"no trained {s.arch} baseline for profile {s.profile.name!r} (seed {s.seed}) in "
                          f"{s.cache.root} or the published models: run `python -m compress train --arch {s.arch} "
                          f"--profile {s.profile.name}` first, or pass --checkpoint")

    def start() -> nn.Module:
        torch.manual_seed(s.seed)
        return build_model(s.arch, width=s.profile.width)

    ref = trained_step(
        s, "baseline", key, start=start, meta={"stage": "baseline"},
        train=lambda model, state: fit(model, s.data, cfg, device=s.device, state_path=state),
        describe=lambda model, result: {"arch": s.arch, "stage": "baseline", **result.summary(),
                                        **model_costs(model, latency_runs=s.profile.latency_runs,
                                                      latency_warmup=s.profile.latency_warmup)})
    folder = ref.run()
    model, _ = load_checkpoint(ref, s.arch)
    # static costs are recounted on load, so every table uses today's one counter
    record = {**read_json(folder / RECORD)["record"], **model_summary(model)}
    s.baseline_step = folder.name
    s.publish_model(folder, "baseline")
    s.record("baseline", pd.DataFrame([record]), steps=[folder])
    s.record("history", read_table(folder / HISTORY)[0], steps=[folder])
    s.add_model("baseline", "baseline", {**record, "top1": record["test_top1"]})
    return model.to(s.device).eval()


def load_model(s: Session, path: str | Path, stages: tuple[str, ...] | None = None) -> nn.Module:
    """A checkpoint given by the user, checked against the session (its architecture and profile width) and,
    when given, against the `stages` the caller takes (e.g. only a baseline where a baseline belongs)."""
    model, _ = load_checkpoint(path, s.arch, width=s.profile.width, stages=stages)
    return model.to(s.device).eval()
