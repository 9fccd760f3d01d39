"""The pipeline's order, written once: each stage with the CLI command that runs it, the notebook section that
shows it, and its cost model. The notebook builder (`notebooks/build.py`), the CLI's command list and
`reproduce --plan` all read `PIPELINE`, so none of them can run the steps in another order or forget one.

The cost model is a guide (within a factor of ~1.5), from two measured speeds and the profile's sizes.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from ..profiles import Profile
from ..ratios import default_configs

PRUNED_COST = 0.5  # a pruned model's training cost per image relative to the baseline's (a rough mean)


@dataclass(frozen=True)
class Speed:
    """Measured images/s of training and evaluation steps for one architecture on this machine."""

    train: float
    eval: float


@dataclass(frozen=True)
class Sizes:
    train: int
    val: int
    test: int


@lru_cache(maxsize=None)
def channel_sets(arch: str) -> int:
    """Channel sets a sensitivity scan prunes one at a time (coupled residual channels count once)."""
    from ..models import build_model
    from ..pruning import ChannelPruner

    return len(ChannelPruner(build_model(arch, width=0.125)).sets)


def _configs(arch: str, p: Profile) -> int:
    return len(p.prune_configs) if p.prune_configs else len(default_configs(arch)) + 1  # + `sensitivity`


def _teacher(p: Profile, n: Sizes, speed: Speed) -> float:
    return n.train / speed.eval if p.distill else 0.0  # distillation runs the baseline forward per image


def _finetune_epoch(p: Profile, n: Sizes, speed: Speed) -> float:
    return n.train * PRUNED_COST / speed.train + _teacher(p, n, speed) + n.val / speed.eval


def _baseline(arch, p, speed, n):
    return p.epochs_for(arch) * (n.train / speed.train + n.val / speed.eval) + n.test / speed.eval


def _importance(arch, p, speed, n):
    return channel_sets(arch) * (len(p.sensitivity_ratios) - 1) * (p.sensitivity_eval_size or n.val) / speed.eval


def _prune(arch, p, speed, n):
    epoch = _finetune_epoch(p, n, speed)
    rounds = _configs(arch, p) * p.prune_rounds * (p.finetune_epochs * epoch + n.test / speed.eval)
    longer = sum(e - p.finetune_epochs for e in p.last_round_epochs.values()) * epoch
    distill = p.distill_comparison * p.prune_rounds * p.finetune_epochs * (epoch - _teacher(p, n, speed))
    return rounds + longer + distill


def _budget(arch, p, speed, n):
    """Per run, `budget_epochs` fine-tune epochs of a model whose training costs about 1/sqrt(factor) of the
    baseline's per image on a CPU (per-op overheads keep small models from getting proportionally faster;
    floor 0.15), plus the from-scratch runs."""
    def cost(f: float) -> float:  # one epoch at `f`x fewer MACs
        return max(f ** -0.5, 0.15) * n.train / speed.train + n.val / speed.eval

    factors = p.budget_factors_for(arch)
    runs = ([p.budget_select_at] * len(p.budget_methods) + [f for f in factors if f != p.budget_select_at]
            + [1.0] + [p.budget_select_at] * len(p.budget_seeds.get(arch, ())))
    finetunes = sum(p.budget_epochs * cost(f) + p.budget_steps * n.test / speed.eval for f in runs)
    scratch = sum((p.epochs_for(arch) + p.budget_epochs) * cost(f) for f in p.budget_scratch.get(arch, ()))
    return finetunes + scratch


def _quantize(arch, p, speed, n):
    q = min(n.train, p.qat_train_size or n.train)  # QAT trains on a subset where the profile says so
    pt2e = int(p.pt2e)  # PT2E adds a QAT fine-tune (in fp32, as FX's: the factor 2), evaluations and compiles
    qat = 1 + pt2e
    fixed = 3 * len(p.fixed_point_bits) * 2 * n.test / speed.eval
    int8 = (qat * p.qat_epochs * 2 * q / speed.train + (6 + 2 * pt2e) * n.test / speed.eval
            + 0.02 * 12 * p.latency_runs + 60 * pt2e)
    return fixed + int8


def _combine(arch, p, speed, n):
    q = min(n.train, p.qat_train_size or n.train)
    pt2e = int(p.pt2e)
    quantized = (1 + (_configs(arch, p) > 1)) * ((1 + pt2e) * p.qat_epochs * 2 * q * PRUNED_COST / speed.train
                                                 + 60 * pt2e) + (8 + 2 * pt2e) * n.test / speed.eval
    sparse = p.sparse_epochs * (n.train / speed.train + _teacher(p, n, speed) + n.val / speed.eval)
    return quantized + sparse


def _free(arch, p, speed, n):
    return 0.0


# how many cached steps each stage holds for a profile (the plan counts how many are published or cached)
def _n_prune(arch, p):
    return _configs(arch, p) * p.prune_rounds


def _n_budget(arch, p):
    factors = p.budget_factors_for(arch)
    runs = len(p.budget_methods) + len(factors) - 1 + 1 + len(p.budget_seeds.get(arch, ()))
    return runs * p.budget_steps + len(p.budget_scratch.get(arch, ()))


def _n_combine(arch, p):
    return (1 + (_configs(arch, p) > 1)) + 2  # pruned + INT8 per quantized configuration, sparse, combined


@dataclass(frozen=True)
class Stage:
    name: str  # the notebook section's key
    title: str  # its heading
    command: str | None  # the CLI command that runs it alone (None: only inside a notebook)
    summary: str  # the CLI's one-line help
    cost: Callable  # (arch, profile, Speed, Sizes) -> estimated seconds
    steps: tuple = ()  # the cached steps it runs (names in `keys.VERSIONS`)
    count: Callable = lambda arch, p: 0  # (arch, profile) -> how many of them


PIPELINE = (
    Stage("baseline", "Baseline", "train", "train (or load from the step cache) the baseline", _baseline,
          ("baseline",), lambda arch, p: 1),
    Stage("importance", "Layer importance", "sensitivity", "L1 ranking and per-layer sensitivity scan of the baseline",
          _importance, ("sensitivity",), lambda arch, p: 1),
    Stage("prune", "Iterative structured pruning", "prune",
          "iterative structured pruning rounds over the baseline, or to a budget (--macs 4x)", _prune,
          ("prune_round",), _n_prune),
    Stage("budget", "Pruning to a budget", "budget",
          "the accuracy-vs-MACs curve: every budget of the profile, with its controls", _budget,
          ("budget_round", "budget_scratch"), _n_budget),
    Stage("ratios", "Tune the ratios yourself", None, "the interactive ratio panel", _free),
    Stage("quantize", "Quantization", "quantize", "fixed point, INT8 PTQ / QAT / onnxruntime, and pruned + INT8",
          _quantize, ("fixed_point", "int8"), lambda arch, p: 2),
    Stage("combine", "Pruned + INT8 and sparse + INT8", None, "the pruned and sparse models with INT8", _combine,
          ("pruned_int8", "sparse", "combined"), _n_combine),
    Stage("results", "Accuracy against cost", None, "every model produced, against its cost; the tables saved", _free),
)


def stage(name: str) -> Stage:
    return next(s for s in PIPELINE if s.name == name)


def estimate(arch: str, profile: Profile, speed: Speed, sizes: Sizes, found: dict | None = None) -> list[dict]:
    """Each stage with its estimated seconds, in pipeline order (stages that cost nothing left out). `found`:
    step name -> {"published": n, "cached": n} already there; a stage is estimated for the steps it still
    computes (`done` / `planned` say how many are there)."""
    found = found or {}
    rows = []
    for s in PIPELINE:
        seconds = s.cost(arch, profile, speed, sizes)
        if seconds <= 0:
            continue
        planned = s.count(arch, profile)
        published = sum(found.get(n, {}).get("published", 0) for n in s.steps)
        cached = sum(found.get(n, {}).get("cached", 0) for n in s.steps)
        done = min(planned, published + cached)
        rows.append({"step": s.name, "planned": planned, "published": min(published, planned),
                     "cached": done - min(published, planned), "seconds": seconds * (1 - done / planned) if planned else seconds})
    return rows
