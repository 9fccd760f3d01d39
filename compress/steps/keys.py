"""A step's identity, written once: one version table, and what each cached step reads from the profile.

A key is `Session.key`: the step's name and version, the run's identity (architecture, width, seed, data), the
fingerprint of the weights it starts from, and the config it passes in, with the precision as requested
(`auto`), never as one machine resolved it: what `auto` became is provenance, so a step computed on a bf16
CPU is the same step on an fp32 one, and a published model matches everywhere. The training recipes come from
the same functions the steps train with (`*_config` below), so a key cannot describe another recipe than the
one that ran; `tests/test_step_keys.py` changes every profile field in turn to check which keys move.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from ..profiles import Profile
from ..train import TrainConfig

# raise a step's number when its algorithm changes: its cached and published results are then recomputed
VERSIONS = {"baseline": 1, "sensitivity": 1, "prune_round": 1, "finetune_ratios": 1, "fixed_point": 1, "int8": 1,
            "pruned_int8": 1, "sparse": 1, "combined": 1, "budget_round": 1, "budget_scratch": 1, "budget_latency": 1}


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


def _calib(p: Profile) -> list:
    return [p.calib_batches, p.calib_batch_size]


def _int8(p: Profile, arch: str, seed: int) -> dict:
    return {"qat": qat_config(p, seed).identity(), "qat_train_size": p.qat_train_size, "calib": _calib(p),
            "pt2e": p.pt2e, "openvino": p.openvino,
            "latency": [p.latency_runs, p.latency_warmup, p.latency_processes, list(p.latency_threads)]}


# step -> (profile, arch, seed, **context) -> the profile fields its key holds, every one always present
_READS: dict[str, Callable[..., dict]] = {
    "baseline": lambda p, arch, seed: {"train": baseline_config(p, arch, seed).identity()},
    "sensitivity": lambda p, arch, seed: {"ratios": list(p.sensitivity_ratios), "eval_size": p.sensitivity_eval_size},
    "prune_round": lambda p, arch, seed, config="aggressive", last_round=True: {
        "rounds": p.prune_rounds, "distill": p.distill,
        "finetune": prune_config(p, arch, seed, config, last_round).identity()},
    "finetune_ratios": lambda p, arch, seed: {"distill": p.distill, "finetune": prune_config(p, arch, seed).identity()},
    "fixed_point": lambda p, arch, seed: {"bits": list(p.fixed_point_bits), "calib": _calib(p)},
    "int8": _int8,
    "pruned_int8": _int8,
    "sparse": lambda p, arch, seed: {"target": p.target_sparsity, "distill": p.distill,
                                     "finetune": sparse_config(p, arch, seed).identity()},
    "combined": lambda p, arch, seed: {"calib": _calib(p)},
    "budget_round": lambda p, arch, seed: {"steps": p.budget_steps, "finetune": budget_config(p, arch, seed).identity()},
    "budget_scratch": lambda p, arch, seed: {"train": scratch_config(p, arch, seed).identity()},
    "budget_latency": lambda p, arch, seed: {"warmup": p.latency_warmup, "runs": p.latency_runs},
}
STEPS = tuple(_READS)


def reads(step: str, p: Profile, arch: str, seed: int = 0, **context) -> dict:
    """The profile fields `step`'s key holds for `arch` (the steps build their keys with this very function)."""
    if step not in _READS:
        raise ValueError(f"unknown step {step!r}; known: {list(_READS)}")
    return _READS[step](p, arch, seed, **context)
