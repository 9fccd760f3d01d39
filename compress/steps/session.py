"""The typed Session every step takes: what a run is (architecture, profile, data on its device, seed,
step cache, where its tables go) and a log of what it produced.

Steps never read what another step left in the session: what a step needs comes in as an argument (a
model, a `PruneResult`), so the order of calls is visible in the caller. `tables` and `models` only
collect outputs for `save_results` and the accuracy-against-cost table.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from ..data import CifarData, load_for_profile
from ..models import ARCHS
from ..profiles import Profile, default_profile_name, get_profile
from ..files import REPO_ROOT
from .cache import StepCache
from .keys import VERSIONS, reads
from ..provenance import provenance
from ..schema import model_kind
from ..device import default_device, resolve_precision

CACHE_ENV = "COMPRESS_CACHE"


def step_cache(root: str | Path | None = None, published: str | Path | None = None) -> StepCache:
    """The step cache: `root`, else $COMPRESS_CACHE, else `data/cache/steps`; it serves the steps published in
    `published` (default: $COMPRESS_RESULTS, else the repository's results/)."""
    return StepCache(root or os.environ.get(CACHE_ENV) or REPO_ROOT / "data" / "cache" / "steps", published)


def default_results_dir(profile: str) -> Path:
    """Where a profile's tables go unless told otherwise: `runs/<profile>/results` (never the committed
    `results/`, which only `reproduce --publish` writes)."""
    return REPO_ROOT / "runs" / profile / "results"


def parse_device(device) -> torch.device:
    """`cpu`, `cuda` or `cuda:N` (None: cuda when available), checked against this machine."""
    if device is None:
        return default_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from e
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r} is not supported; use cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but this machine has no CUDA GPU; use cpu")
    return dev


@dataclass
class Session:
    arch: str
    profile: Profile
    data: CifarData
    device: torch.device
    seed: int
    cache: StepCache
    results_dir: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # outputs, written by save_results
    # table name -> the cached steps (folder names) whose results it holds: their provenance goes with the table
    table_steps: dict[str, list[str]] = field(default_factory=dict)
    baseline_step: str | None = None  # the baseline's folder: every table derives from it
    table_notes: dict[str, dict] = field(default_factory=dict)  # table name -> extra provenance (e.g. a partial sweep)
    models: dict[str, dict] = field(default_factory=dict)  # model name -> row of the accuracy-vs-cost table
    # cached step folder -> the name its model is published under (`save_results(publish=True)`), most wanted first
    publishable: dict[str, str] = field(default_factory=dict)
    # publish every step into results_dir as soon as it finishes (a run writing the committed results/): what a
    # session computed survives it even when the notebook does not reach its end
    publish_each: bool = False

    @classmethod
    def create(cls, arch: str, profile: str | Profile | None = None, *, source=None, data: CifarData | None = None,
               seed: int = 0, device=None, cache_root=None, results_dir=None, published=None,
               **profile_overrides) -> "Session":
        """`profile=None` follows `profiles.default_profile_name` ($COMPRESS_PROFILE, else full on a GPU,
        quick on a CPU). `profile_overrides` change single fields (validated). `published`: the results folder
        whose published steps the cache serves (default: the repository's results/)."""
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture {arch!r}; choose one of {list(ARCHS)}")
        prof = get_profile(profile or default_profile_name(), **profile_overrides)
        dev = parse_device(device)
        if data is None:
            data = load_for_profile(prof, source, seed=seed)
        results = Path(results_dir) if results_dir else default_results_dir(prof.name)
        return cls(arch, prof, data.to(dev), dev, seed, step_cache(cache_root, published), results.resolve(),
                   publish_each=results.resolve() == (REPO_ROOT / "results").resolve())

    def key(self, step: str, *, seed: int | None = None, **fields) -> dict:
        """The one key recipe (`keys.py`): the step's name and version, the run's identity (architecture, width,
        seed, data), then `fields`: the upstream weights' fingerprints, the step's arguments and what it reads
        of the profile (`keys.reads`). Nothing else of the profile: changing `latency_runs` reruns only the
        steps that time."""
        if step not in VERSIONS:
            raise ValueError(f"unknown step {step!r}; known: {list(VERSIONS)}")
        return {"step": step, "version": VERSIONS[step], "arch": self.arch, "width": float(self.profile.width),
                "seed": self.seed if seed is None else seed, "data": self.data.identity(), **fields}

    def reads(self, step: str, seed: int | None = None, **context) -> dict:
        """What `step` reads of this session's profile (`keys.reads`)."""
        return reads(step, self.profile, self.arch, self.seed if seed is None else seed, **context)

    @property
    def precision(self) -> str:
        """The precision this session trains in on its device (`auto` resolved: bf16 where native, else fp32)."""
        return resolve_precision(self.profile.precision, self.device)

    def provenance(self, config: dict | None = None) -> dict:
        return provenance({"arch": self.arch, "profile": self.profile.to_dict(), **(config or {})},
                          seed=self.seed, data_source=self.data.source, data_digest=self.data.digest, device=str(self.device),
                          precision=self.precision)

    def run(self, name: str, key: dict, compute, *, need_model: bool = False) -> tuple[Path, bool]:
        """`compute(folder)` once per key, through the step cache (or its publications), stamped with this run's
        provenance."""
        folder, cached = self.cache.run(name, key, compute, provenance=self.provenance(), need_model=need_model)
        if self.publish_each:
            self._publish(folder)
        return folder, cached

    def publish_model(self, folder: str | Path, name: str) -> None:
        """Mark a finished step's model as one to publish under `name` (`<name>.pt`) when the results are
        published; every other step this session ran is published by its record alone."""
        self.publishable.setdefault(Path(folder).name, name)
        if self.publish_each:
            self._publish(folder)

    def _publish(self, folder: str | Path) -> None:
        from .publish import publish_steps

        publish_steps(self, self.results_dir, folders=[Path(folder).name])

    def describe(self) -> str:
        return (f"{self.arch} | profile {self.profile.name} (width {self.profile.width}) | {self.data.summary()} | "
                f"device {self.device} | seed {self.seed} | cache {self.cache.root} | results {self.results_dir}")

    def record(self, name: str, table: pd.DataFrame, steps=()) -> pd.DataFrame:
        """File a step's output table under `name` (saved by `save_results`) and return it; `steps`: the cached
        steps' folders (or names) that computed its rows, whose provenance the saved table carries."""
        self.tables[name] = table
        self.table_steps[name] = [Path(f).name for f in steps]
        return table

    def add_model(self, name: str, family: str, row: dict, *, precision: str = "FP32", runtime: str = "torch") -> None:
        """File a model of the accuracy-vs-cost table under its typed facts (`schema.MODEL_COLUMNS`)."""
        keep = ("top1", "paired_ci95", "mcnemar_p", "params", "macs", "size_mb", "gzip_mb", "latency_ms", "latency_threads")
        self.models[name] = {"model": name, "family": family, "precision": precision, "runtime": runtime,
                             "kind": model_kind(family, precision, runtime), **{k: row.get(k) for k in keep}}
