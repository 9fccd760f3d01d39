"""The steps the CLI, the notebooks and the reproduction share, each cached by its configuration.

A step's cache key is everything that changes its result (architecture, profile fields, seed, data
source, upstream weights), so re-running a notebook reuses finished work, a changed setting recomputes
only what depends on it, and an interrupted step (no `done.json`) is recomputed rather than trusted.

Each step also files its table in `Session.tables` and the models it made in `Session.models`, so the
closing Pareto plot and `save_results` see everything a run produced.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from . import metrics
from .checkpoint import load_checkpoint, save_checkpoint
from .data import CifarData, load_for_profile, stratified_indices
from .models import build_model
from .profiles import Profile, default_profile_name, get_profile
from .results import REPO_ROOT, StepCache, provenance, read_json, read_table, write_json, write_table
from .train import TrainConfig, default_device, fit

CACHE_ENV = "COMPRESS_CACHE"


def step_cache(root: str | Path | None = None) -> StepCache:
    """The step cache: `root`, else $COMPRESS_CACHE, else `data/cache/steps`."""
    return StepCache(root or os.environ.get(CACHE_ENV) or REPO_ROOT / "data" / "cache" / "steps")


@dataclass
class Session:
    """What every step of one run needs (profile, data on its device, seed, step cache) and what it made."""

    arch: str
    profile: Profile
    data: CifarData
    device: torch.device
    seed: int = 0
    cache: StepCache | None = None
    tables: dict = field(default_factory=dict)  # name -> DataFrame, written by save_results
    models: dict = field(default_factory=dict)  # model name -> record for the accuracy-vs-cost table
    pruned: object = None  # the latest pruning.PruneResult

    @classmethod
    def create(cls, arch: str, profile: str | Profile | None = None, *, source=None, data: CifarData | None = None,
               seed: int = 0, device=None, cache_root=None, **profile_overrides) -> "Session":
        """`profile=None` picks `full` on a GPU and `quick` on a CPU."""
        prof = get_profile(profile or default_profile_name(), **profile_overrides)
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

    def describe(self) -> str:
        return (f"{self.arch} | profile {self.profile.name} (width {self.profile.width}) | {self.data.summary()} | "
                f"device {self.device} | seed {self.seed} | cache {self.cache.root}")

    def add_model(self, name: str, kind: str, record: dict) -> None:
        keep = ("top1", "params", "macs", "size_mb", "gzip_mb", "latency_ms", "runtime")
        self.models[name] = {"model": name, "kind": kind, **{k: record.get(k) for k in keep}}


def show(df: pd.DataFrame) -> None:
    """Display a table in a notebook (rounded), or print it elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(df.round(3))
            return
    except ImportError:
        pass
    print(df.round(3).to_string(index=False))


def describe(model: nn.Module, *, latency_runs: int | None = None, latency_warmup: int = 5) -> dict:
    """Static costs, plus batch-1 CPU latency (all threads) when `latency_runs` is given."""
    out = metrics.model_summary(model)
    if latency_runs:
        device = next(model.parameters()).device
        lat = metrics.measure_latency(copy.deepcopy(model).cpu(), runs=latency_runs, warmup=latency_warmup)
        model.to(device)
        out.update(latency_ms=lat["median_ms"], latency_p90_ms=lat["p90_ms"], latency_threads=lat["threads"])
    return out


def _latency(s: Session) -> dict:
    return {"latency_runs": s.profile.latency_runs, "latency_warmup": s.profile.latency_warmup}


# ----------------------------------------------------------------------------- baseline
def baseline_key(arch: str, width: float, seed: int, data_summary: str, train_identity: dict) -> dict:
    """The baseline's cache key: only what decides its weights (not the rest of the profile), so tuning
    later steps never throws away hours of baseline training. Pinned by a test: keep it stable."""
    return {"step": "baseline", "arch": arch, "width": float(width), "seed": seed, "data": data_summary,
            "train": train_identity}


def _baseline_config(s: Session, **train_overrides) -> tuple[TrainConfig, dict]:
    cfg = TrainConfig.from_profile(s.profile, s.arch, seed=s.seed, **train_overrides)
    return cfg, baseline_key(s.arch, s.profile.width, s.seed, s.data.summary(), cfg.identity(s.device))


def baseline_folder(s: Session, **train_overrides) -> Path:
    """Where the cached baseline of this session lives (model.pt, history.csv, result.json)."""
    return s.cache.folder("baseline", _baseline_config(s, **train_overrides)[1])


def train_baseline(s: Session, **train_overrides) -> nn.Module:
    """Train (or load from the cache) the unpruned baseline; files `baseline` and `history` tables.

    Resumable: the training state is saved in the step folder after every epoch, so a killed run picks
    up from its last finished epoch.
    """
    cfg, key = _baseline_config(s, **train_overrides)

    def compute(folder: Path) -> None:
        torch.manual_seed(s.seed)
        model = build_model(s.arch, width=s.profile.width)
        result = fit(model, s.data, cfg, device=s.device, state_path=folder / "train_state.pt")
        record = {"arch": s.arch, "stage": "baseline", **result.summary(), **describe(model, **_latency(s))}
        save_checkpoint(model, folder / "model.pt", s.arch, s.profile.width, meta={"stage": "baseline"})
        write_table(folder / "history.csv", result.history, s.provenance({"train": cfg.to_dict()}))
        write_json(folder / "result.json", {"record": record, "provenance": s.provenance({"train": cfg.to_dict()})})
        (folder / "train_state.pt").unlink(missing_ok=True)

    folder, _ = s.cache.run("baseline", key, compute)
    model, _ = load_checkpoint(folder / "model.pt", s.arch)
    record = read_json(folder / "result.json")["record"]
    s.tables["baseline"] = pd.DataFrame([record])
    s.tables["history"] = read_table(folder / "history.csv")[0]
    s.add_model("baseline", "baseline (FP32)", {**record, "top1": record["test_top1"], "runtime": "torch"})
    return model.to(s.device).eval()


# ----------------------------------------------------------------------------- layer importance
def l1_ranking(s: Session, model: nn.Module) -> pd.DataFrame:
    from .importance import l1_ranking as rank

    s.tables["l1"] = rank(model)
    return s.tables["l1"]


def sensitivity(s: Session, model: nn.Module, criterion: str = "l1") -> pd.DataFrame:
    """Each conv pruned alone at the profile's ratios, on the validation split (cached)."""
    from .importance import sensitivity_scan
    from .pruning import fingerprint

    # the same stratified subset `python -m compress sensitivity` scans
    split = s.data.val.subset(stratified_indices(s.data.val.labels.cpu().numpy(), s.profile.sensitivity_eval_size, s.seed))
    key = s.key(step="sensitivity", baseline=fingerprint(model), ratios=list(s.profile.sensitivity_ratios), criterion=criterion)

    def compute(folder: Path) -> None:
        scan = sensitivity_scan(model, split, s.profile.sensitivity_ratios, criterion=criterion, seed=s.seed)
        write_table(folder / "sensitivity.csv", scan, s.provenance({"step": "sensitivity", "criterion": criterion,
                                                                    "eval_images": len(split)}))

    folder, _ = s.cache.run("sensitivity", key, compute)
    s.tables["sensitivity"] = read_table(folder / "sensitivity.csv")[0]
    return s.tables["sensitivity"]


# ----------------------------------------------------------------------------- structured pruning
def prune_configs(s: Session, scan: pd.DataFrame | None = None, max_drop: float = 1.0) -> dict:
    """The architecture's fixed configurations plus one derived from the sensitivity scan."""
    from .pruning import default_configs

    return default_configs(s.arch, scan, max_drop)


def prune_rounds(s: Session, baseline: nn.Module, configs: dict, **kwargs):
    """Iterative prune + fine-tune rounds for every configuration (cached per round)."""
    from .pruning import prune_rounds as run

    result = run(s, baseline, configs, **kwargs)
    s.tables["pruning"], s.tables["channels"] = result.rounds, result.channels
    s.pruned = result
    last = result.rounds[result.rounds["round"] == result.rounds["round"].max()]
    for _, r in last.iterrows():
        s.add_model(f"pruned:{r.config}", "pruned (FP32)", {**r.to_dict(), "top1": r.test_top1, "runtime": "torch"})
    return result


def best_pruned(s: Session, max_drop: float = 1.0) -> str:
    """The configuration to carry forward, chosen on the VALIDATION split (never on test): the fewest MACs
    among those whose final-round validation accuracy is within `max_drop` of the baseline's, else the
    most accurate one on validation."""
    rounds = s.tables["pruning"]
    base_val = rounds[rounds["round"] == 0].final_val_top1.iloc[0]
    last = rounds[rounds["round"] == rounds["round"].max()]
    ok = last[last.final_val_top1 >= base_val - max_drop]
    pick = ok.sort_values("macs").iloc[0] if len(ok) else last.sort_values("final_val_top1").iloc[-1]
    return str(pick.config)


def distillation_effect(s: Session, baseline: nn.Module, config: str | None = None) -> pd.DataFrame:
    """The same ratios pruned over the same rounds, fine-tuned with and without distillation from the
    baseline: the rows of `config` (default: `best_pruned`) from `prune_rounds`, beside a rerun without."""
    from .pruning import default_configs
    from .pruning import prune_rounds as run

    config = config or best_pruned(s)
    ratios = default_configs(s.arch, s.tables.get("sensitivity"))[config]
    with_kd = s.tables["pruning"][s.tables["pruning"].config == config]
    without = run(s, baseline, {config: ratios}, distill=not s.profile.distill).rounds
    table = pd.concat([with_kd, without], ignore_index=True)
    s.tables["distillation"] = table[["config", "round", "distill", "params", "macs", "test_top1", "final_val_top1",
                                      "best_val_top1", "mean_val_top1"]]
    return s.tables["distillation"]


def load_pruned(s: Session, config: str) -> nn.Module:
    """The last round's model of a configuration from the latest `prune_rounds` call."""
    result = s.pruned
    k = max(r for c, r in result.checkpoints if c == config)
    return load_checkpoint(result.checkpoints[(config, k)], s.arch)[0].to(s.device).eval()


def finetune_ratios(s: Session, baseline: nn.Module, ratios: dict, *, criterion: str = "l1") -> dict:
    """One-shot prune with `ratios`, fine-tune with the profile's recipe (distilled), measure (cached)."""
    from .pruning import fingerprint, prune

    cfg = TrainConfig.finetune_from_profile(s.profile, arch=s.arch, seed=s.seed)
    key = s.key(step="finetune_ratios", baseline=fingerprint(baseline), ratios=ratios, criterion=criterion,
                distill=s.profile.distill, finetune=cfg.to_dict() | {"progress": None})

    def compute(folder: Path) -> None:
        model = prune(copy.deepcopy(baseline), ratios, criterion=criterion)
        result = fit(model, s.data, cfg, teacher=baseline if s.profile.distill else None, device=s.device)
        write_json(folder / "record.json", {"record": {**metrics.model_summary(model), **result.summary()},
                                            "provenance": s.provenance({"ratios": ratios})})

    folder, _ = s.cache.run("finetune_ratios", key, compute)
    return read_json(folder / "record.json")["record"]


# ----------------------------------------------------------------------------- quantization
def _cached_table(s: Session, name: str, key: dict, make) -> pd.DataFrame:
    """Run `make()` -> DataFrame once per key; the table is stored with provenance in the step folder."""
    def compute(folder: Path) -> None:
        write_table(folder / f"{name}.csv", make(), s.provenance({"step": name, **{k: v for k, v in key.items() if k not in ("arch", "profile", "seed", "data")}}))

    folder, _ = s.cache.run(name, key, compute)
    return read_table(folder / f"{name}.csv")[0]


def _qat_config(s: Session) -> TrainConfig:
    return TrainConfig.finetune_from_profile(s.profile, epochs=s.profile.qat_epochs, lr=s.profile.qat_lr, seed=s.seed)


def fixed_point(s: Session, model: nn.Module, bits=None, methods=("linear", "minmax", "log")) -> pd.DataFrame:
    """Test accuracy of simulated fixed-point at each bit width (default: the profile's) and method (BN folded; cached)."""
    from .pruning import fingerprint
    from .quant import fixed_point_table

    bits = tuple(s.profile.fixed_point_bits if bits is None else bits)
    key = s.key(step="fixed_point", baseline=fingerprint(model), bits=list(bits), methods=list(methods),
                calib=[s.profile.calib_batches, s.profile.calib_batch_size])
    s.tables["fixed_point"] = _cached_table(s, "fixed_point", key, lambda: fixed_point_table(
        model, s.data, bits, methods, calib_batches=s.profile.calib_batches,
        calib_batch_size=s.profile.calib_batch_size, arch=s.arch, seed=s.seed))
    return s.tables["fixed_point"]


def _int8_table(s: Session, model: nn.Module, step: str, presets=("default", "optimal")) -> pd.DataFrame:
    from .pruning import fingerprint
    from .quant import compare_int8

    qat = _qat_config(s)
    key = s.key(step=step, model=fingerprint(model), presets=list(presets), qat=qat.to_dict() | {"progress": None},
                calib=[s.profile.calib_batches, s.profile.calib_batch_size],
                latency=[s.profile.latency_runs, s.profile.latency_warmup])
    return _cached_table(s, step, key, lambda: compare_int8(
        model, s.data, presets=presets, calib_batches=s.profile.calib_batches,
        calib_batch_size=s.profile.calib_batch_size, qat=qat, runs=s.profile.latency_runs,
        warmup=s.profile.latency_warmup, seed=s.seed))


def _add_quant_models(s: Session, table: pd.DataFrame, base_name: str, label: str, costs: dict) -> None:
    """File each variant (at the largest thread count) as a model of the accuracy-vs-cost table.

    The FP32 PyTorch row is `base_name` itself (adding its measured latency); the others are
    `<base_name>+<variant>`, e.g. `pruned:aggressive+int8-optimal`.
    """
    top = table[table.threads == table.threads.max()]
    for _, r in top.iterrows():
        quantized = "int8" in r.variant or r.variant == "qat"
        name = base_name if r.variant == "fp32" else f"{base_name}+{r.variant}"
        kind = f"{label} ({'INT8' if quantized else 'FP32'}{', onnxruntime' if r.runtime == 'onnxruntime' else ''})"
        if r.variant == "fp32":
            kind = s.models.get(name, {}).get("kind", kind)
        s.add_model(name, kind, {**costs, "top1": r.top1, "size_mb": r.size_mb, "gzip_mb": r.gzip_mb,
                                 "latency_ms": r.latency_ms, "runtime": r.runtime})


def int8(s: Session, model: nn.Module) -> pd.DataFrame:
    """FP32 vs INT8 PTQ (default and optimal presets) vs QAT, in PyTorch and onnxruntime, at 1 and all threads."""
    s.tables["int8"] = _int8_table(s, model, "int8")
    costs = {"params": metrics.count_params(model), "macs": metrics.count_macs(model)}
    _add_quant_models(s, s.tables["int8"], "baseline", "baseline", costs)
    return s.tables["int8"]


def sparse(s: Session, baseline: nn.Module) -> nn.Module:
    """Unstructured magnitude pruning of the baseline to the profile's sparsity, fine-tuned (cached)."""
    from .pruning import fingerprint
    from .sparse import sparse_finetune

    key = s.key(step="sparse", baseline=fingerprint(baseline), target=s.profile.target_sparsity,
                epochs=s.profile.sparse_epochs, distill=s.profile.distill, lr=s.profile.finetune_lr_for(s.arch))

    def compute(folder: Path) -> None:
        model, record = sparse_finetune(s, copy.deepcopy(baseline), teacher=baseline if s.profile.distill else None)
        save_checkpoint(model, folder / "model.pt", s.arch, s.profile.width, meta={"stage": "sparse"})
        write_table(folder / "sparse.csv", pd.DataFrame([record]), s.provenance({"step": "sparse"}))

    folder, _ = s.cache.run("sparse", key, compute)
    s.tables["sparse"] = read_table(folder / "sparse.csv")[0]
    r = s.tables["sparse"].iloc[0]
    s.add_model("sparse", "sparse (FP32)", {**r.to_dict(), "top1": r.test_top1, "runtime": "torch"})
    return load_checkpoint(folder / "model.pt", s.arch)[0].to(s.device).eval()


def combined(s: Session, baseline: nn.Module, config: str | None = None) -> pd.DataFrame:
    """The best pruned model (chosen on validation) and the sparse model, each with INT8.

    Files `pruned_int8` (PTQ / QAT / ONNX latency of the pruned model) and `combined` (the seed's table:
    original / pruned / pruned+INT8 / pruned+float16 / int16-act int8-weight / sparse / sparse+INT8).
    """
    from .pruning import fingerprint
    from .quant import pruned_int8_table

    config = config or best_pruned(s)
    pruned = load_pruned(s, config)
    sparse_model = sparse(s, baseline)
    s.tables["pruned_int8"] = _int8_table(s, pruned, "pruned_int8", presets=("optimal",))
    costs = {"params": metrics.count_params(pruned), "macs": metrics.count_macs(pruned)}
    _add_quant_models(s, s.tables["pruned_int8"], f"pruned:{config}", "pruned", costs)
    key = s.key(step="combined", baseline=fingerprint(baseline), pruned=fingerprint(pruned),
                sparse=fingerprint(sparse_model), calib=[s.profile.calib_batches, s.profile.calib_batch_size])
    table = _cached_table(s, "combined", key, lambda: pruned_int8_table(
        baseline, pruned, s.data, sparse=sparse_model, calib_batches=s.profile.calib_batches,
        calib_batch_size=s.profile.calib_batch_size, seed=s.seed))
    s.tables["combined"] = table.assign(config=config)
    return s.tables["combined"]


# ----------------------------------------------------------------------------- results
def models_table(s: Session) -> pd.DataFrame:
    """Every model the session produced: accuracy against params, MACs, size and CPU latency."""
    s.tables["models"] = pd.DataFrame(list(s.models.values()),
                                      columns=["model", "kind", "top1", "params", "macs", "size_mb", "gzip_mb",
                                               "latency_ms", "runtime"])
    return s.tables["models"]


def save_results(s: Session, results_dir: str | Path | None = None) -> Path:
    """Write every table the session filed to `<results_dir>/<arch>/<name>.csv`, with provenance."""
    root = Path(results_dir) if results_dir else REPO_ROOT / "runs" / s.profile.name / "results"
    folder = root / s.arch
    if s.models:
        models_table(s)
    prov = s.provenance()
    for name, df in s.tables.items():
        write_table(folder / f"{name}.csv", df, prov)
    print(f"wrote {len(s.tables)} tables to {folder}")
    return folder
