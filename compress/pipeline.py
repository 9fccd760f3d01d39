"""The steps the CLI, the notebooks and the reproduction share, each cached by its configuration.

A step's cache key is everything that changes its result (architecture, profile fields, seed, data
source, upstream step keys), so re-running a notebook reuses finished work, a changed setting recomputes
only what depends on it, and an interrupted step (no `done.json`) is recomputed rather than trusted.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from . import metrics
from .checkpoint import load_checkpoint, save_checkpoint
from .data import CifarData, load_for_profile
from .models import build_model
from .profiles import Profile, get_profile
from .results import REPO_ROOT, StepCache, provenance, read_json, read_table, write_json, write_table
from .train import TrainConfig, default_device, fit

CACHE_ENV = "COMPRESS_CACHE"


def step_cache(root: str | Path | None = None) -> StepCache:
    """The step cache: `root`, else $COMPRESS_CACHE, else `data/cache/steps`."""
    return StepCache(root or os.environ.get(CACHE_ENV) or REPO_ROOT / "data" / "cache" / "steps")


@dataclass
class Session:
    """What every step of one run needs: profile, data on its device, seed and the step cache."""

    arch: str
    profile: Profile
    data: CifarData
    device: torch.device
    seed: int = 0
    cache: StepCache | None = None

    @classmethod
    def create(cls, arch: str, profile: str | Profile = "smoke", *, source=None, data: CifarData | None = None,
               seed: int = 0, device=None, cache_root=None, **profile_overrides) -> "Session":
        prof = get_profile(profile, **profile_overrides)
        device = torch.device(device) if device is not None else default_device()
        if data is None:
            data = load_for_profile(prof, source, seed=seed)
        return cls(arch, prof, data.to(device), device, seed, step_cache(cache_root))

    def key(self, **extra) -> dict:
        """The cache key of a step: this session's identity plus the step's own settings."""
        return {"arch": self.arch, "profile": self.profile.to_dict(), "seed": self.seed,
                "data": self.data.summary(), **extra}

    def provenance(self, config: dict | None = None) -> dict:
        return provenance({"arch": self.arch, "profile": self.profile.to_dict(), **(config or {})},
                          seed=self.seed, data_source=self.data.source, device=str(self.device))


def describe(model: nn.Module, *, latency_runs: int | None = None, latency_warmup: int = 5) -> dict:
    """Static costs, plus batch-1 CPU latency (all threads) when `latency_runs` is given."""
    out = metrics.model_summary(model)
    if latency_runs:
        lat = metrics.measure_latency(model.cpu(), runs=latency_runs, warmup=latency_warmup)
        out.update(latency_ms=lat["median_ms"], latency_p90_ms=lat["p90_ms"], latency_threads=lat["threads"])
    return out


def _baseline_config(s: Session, **train_overrides) -> tuple[TrainConfig, dict]:
    cfg = TrainConfig.from_profile(s.profile, s.arch, seed=s.seed, **train_overrides)
    return cfg, s.key(step="baseline", train=cfg.to_dict() | {"progress": None})


def baseline_folder(s: Session, **train_overrides) -> Path:
    """Where the cached baseline of this session lives (model.pt, history.csv, result.json)."""
    return s.cache.folder("baseline", _baseline_config(s, **train_overrides)[1])


def train_baseline(s: Session, **train_overrides) -> tuple[nn.Module, dict]:
    """Train (or load from the cache) the unpruned baseline; returns the model and its result record."""
    cfg, key = _baseline_config(s, **train_overrides)

    def compute(folder: Path) -> None:
        torch.manual_seed(s.seed)
        model = build_model(s.arch, width=s.profile.width)
        result = fit(model, s.data, cfg, device=s.device)
        record = {"arch": s.arch, "stage": "baseline", **result.summary(),
                  **describe(model, latency_runs=s.profile.latency_runs, latency_warmup=s.profile.latency_warmup)}
        save_checkpoint(model, folder / "model.pt", s.arch, s.profile.width, meta={"stage": "baseline"})
        write_table(folder / "history.csv", result.history, s.provenance({"train": cfg.to_dict()}))
        write_json(folder / "result.json", {"record": record, "provenance": s.provenance({"train": cfg.to_dict()})})

    folder, _ = s.cache.run("baseline", key, compute)
    model, _ = load_checkpoint(folder / "model.pt", s.arch)
    return model.to(s.device).eval(), read_json(folder / "result.json")["record"]


def baseline_history(s: Session, **train_overrides) -> pd.DataFrame:
    return read_table(baseline_folder(s, **train_overrides) / "history.csv")[0]
