"""What each cached step reads from the profile, declared once: a frozen dataclass per step, every field always
present, built from a profile for one architecture, device and seed.

A step's cache key is the run's identity (`Session.key`), its upstream fingerprints (the weights it starts from,
the channels it prunes to) and exactly these fields: so changing `latency_runs` reruns the steps that time and
nothing else, and `tests/test_step_keys.py` changes every profile field in turn to check which keys move. The
training recipes come from the same functions the steps train with (`*_config` below), so a key cannot describe
another recipe than the one that ran.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..profiles import Profile
from ..train import TrainConfig


def baseline_config(p: Profile, arch: str, seed: int, **overrides) -> TrainConfig:
    return p.train_config(arch, seed=seed, **overrides)


def prune_config(p: Profile, arch: str, seed: int, config: str | None = None, last_round: bool = False) -> TrainConfig:
    """The fine-tune after a pruning round; the last round of a configuration in `last_round_epochs` trains longer."""
    cfg = p.finetune_config(arch=arch, seed=seed)
    if last_round and config in p.last_round_epochs:
        cfg = dataclasses.replace(cfg, epochs=p.last_round_epochs[config])
    return cfg


def sparse_config(p: Profile, arch: str, seed: int) -> TrainConfig:
    return p.finetune_config(epochs=p.sparse_epochs, arch=arch, seed=seed, desc=f"sparse fine-tune ({p.target_sparsity:.0%})")


def qat_config(p: Profile, seed: int) -> TrainConfig:
    return p.finetune_config(epochs=p.qat_epochs, lr=p.qat_lr, seed=seed)


def budget_config(p: Profile, arch: str, seed: int) -> TrainConfig:
    """Each of a budget's `budget_steps` fine-tunes: `budget_epochs` split evenly."""
    return p.finetune_config(epochs=p.budget_epochs // p.budget_steps, arch=arch, seed=seed)


def scratch_config(p: Profile, arch: str, seed: int) -> TrainConfig:
    """From random weights for the baseline's epochs plus a budget's fine-tune epochs (Liu et al. 2019)."""
    return p.train_config(arch, seed=seed, epochs=p.epochs_for(arch) + p.budget_epochs)


class Reads:
    """The profile fields a step reads; `key()` is what enters its cache key."""

    def key(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BaselineReads(Reads):
    train: dict

    @classmethod
    def of(cls, p: Profile, arch: str, device, seed: int = 0) -> "BaselineReads":
        return cls(baseline_config(p, arch, seed).identity(device))


@dataclass(frozen=True)
class SensitivityReads(Reads):
    ratios: list
    eval_size: int | None

    @classmethod
    def of(cls, p: Profile, arch: str, device, seed: int = 0) -> "SensitivityReads":
        return cls(list(p.sensitivity_ratios), p.sensitivity_eval_size)


@dataclass(frozen=True)
class PruneRoundReads(Reads):
    rounds: int
    distill: bool
    finetune: dict

    @classmethod
    def of(cls, p: Profile, arch: str, device, seed: int = 0, config: str = "aggressive",
           last_round: bool = True) -> "PruneRoundReads":
        return cls(p.prune_rounds, p.distill, prune_config(p, arch, seed, config, last_round).identity(device))


@dataclass(frozen=True)
class FinetuneRatiosReads(Reads):
    distill: bool
    finetune: dict

    @classmethod
    def of(cls, p: Profile, arch: str, device, seed: int = 0) -> "FinetuneRatiosReads":
        return cls(p.distill, prune_config(p, arch, seed).identity(device))


@dataclass(frozen=True)
class FixedPointReads(Reads):
    bits: list
    calib: list

    @classmethod
    def of(cls, p: Profile, arch: str, device, seed: int = 0) -> "FixedPointReads":
        return cls(list(p.fixed_point_bits), [p.calib_batches, p.calib_batch_size])


@dataclass(frozen=True)
class Int8Reads(Reads):
    """The INT8 comparison (`int8`, `pruned_int8`): QAT's recipe, calibration, runtimes and the timing."""

    qat: dict
    qat_train_size: int | None
    calib: list
    pt2e: bool
    openvino: bool
    latency: list

    @classmethod
    def of(cls, p: Profile, arch: str, device, seed: int = 0) -> "Int8Reads":
        return cls(qat_config(p, seed).identity(device), p.qat_train_size,
                   [p.calib_batches, p.calib_batch_size], p.pt2e, p.openvino,
                   [p.latency_runs, p.latency_warmup, p.latency_processes, list(p.latency_threads)])


@dataclass(frozen=True)
class SparseReads(Reads):
    target: float
    distill: bool
    finetune: dict

    @classmethod
    def of(cls, p: Profile, arch: str, device, seed: int = 0) -> "SparseReads":
        return cls(p.target_sparsity, p.distill, sparse_config(p, arch, seed).identity(device))


@dataclass(frozen=True)
class CombinedReads(Reads):
    calib: list

    @classmethod
    def of(cls, p: Profile, arch: str, device, seed: int = 0) -> "CombinedReads":
        return cls([p.calib_batches, p.calib_batch_size])


@dataclass(frozen=True)
class BudgetRoundReads(Reads):
    steps: int
    finetune: dict

    @classmethod
    def of(cls, p: Profile, arch: str, device, seed: int = 0) -> "BudgetRoundReads":
        return cls(p.budget_steps, budget_config(p, arch, seed).identity(device))


@dataclass(frozen=True)
class BudgetScratchReads(Reads):
    train: dict

    @classmethod
    def of(cls, p: Profile, arch: str, device, seed: int = 0) -> "BudgetScratchReads":
        return cls(scratch_config(p, arch, seed).identity(device))


@dataclass(frozen=True)
class BudgetLatencyReads(Reads):
    warmup: int
    runs: int

    @classmethod
    def of(cls, p: Profile, arch: str, device, seed: int = 0) -> "BudgetLatencyReads":
        return cls(p.latency_warmup, p.latency_runs)


# every cached step's declared reads (the step name is the cache folder's prefix)
READS = {"baseline": BaselineReads, "sensitivity": SensitivityReads, "prune_round": PruneRoundReads,
         "finetune_ratios": FinetuneRatiosReads, "fixed_point": FixedPointReads, "int8": Int8Reads,
         "pruned_int8": Int8Reads, "sparse": SparseReads, "combined": CombinedReads,
         "budget_round": BudgetRoundReads, "budget_scratch": BudgetScratchReads, "budget_latency": BudgetLatencyReads}
