"""Run sizes in one place: `smoke` (seconds on a CPU, for tests and CI), `quick` (a CPU user sees the
whole flow in minutes), `cpu` (real full-width results on a 2-core CPU, hours, resumable) and
`full` (one GPU, paper grade).

Every stage reads its knobs from a `Profile`, so a notebook or the CLI changes one name to move between
a seconds-long rehearsal and the real run; an explicit argument overrides a single field.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import os
from dataclasses import dataclass, field

from .models import ARCHS
from .train import TrainConfig
from .device import PRECISIONS

PROFILE_ENV = "COMPRESS_PROFILE"
# `budget.allocate`'s rules (named here, below it); `torch-pruning` is the peer: torch-pruning's own pruner (`peer.py`)
BUDGET_METHODS = ("global", "sensitivity", "uniform", "torch-pruning")


@dataclass(frozen=True)
class Profile:
    name: str
    # data: None means "all of it"; the validation split is carved from the training set
    train_size: int | None
    val_size: int
    test_size: int | None
    # model
    width: float = 1.0
    # baseline training
    epochs: int = TrainConfig.epochs
    arch_epochs: dict = field(default_factory=dict)  # per-architecture baseline epochs (faster nets get more)
    precision: str = "auto"  # bf16 autocast where the hardware runs it natively, else fp32; or force one
    batch_size: int = TrainConfig.batch_size  # the recipe's defaults live in TrainConfig, once
    lr: float = TrainConfig.lr  # peak SGD learning rate at batch_size; per-architecture overrides below
    arch_lr: dict = field(default_factory=lambda: {"vgg16": 0.05})
    weight_decay: float = TrainConfig.weight_decay
    label_smoothing: float = TrainConfig.label_smoothing
    warmup_epochs: float = TrainConfig.warmup_epochs
    eval_batch_size: int = TrainConfig.eval_batch_size
    # layer importance and structured pruning
    sensitivity_ratios: tuple = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    sensitivity_eval_size: int | None = None  # validation images per scan point (None: whole split)
    prune_configs: tuple | None = None  # which configurations to prune (None: all of `ratios.default_configs`)
    prune_rounds: int = 3
    finetune_epochs: int = 15
    finetune_lr: float = 0.05
    # the last round's fine-tune epochs per configuration (others: finetune_epochs): the most pruned model
    # loses the most and costs the least per epoch, so that is where extra epochs pay
    last_round_epochs: dict = field(default_factory=dict)
    distill: bool = True
    # the same pruning fine-tuned with and without the teacher: no measurable effect on any architecture in the
    # `cpu` runs (+0.06 to +0.15 points, p >= 0.46), so that profile spends its hours on the budget sweep instead
    distill_comparison: bool = True
    # pruning to a budget (`budget.py`, `steps/budget.py`): MAC reduction factors of the curve, the methods
    # compared on validation at `budget_select_at`, prune + fine-tune steps per budget and their total epochs
    budget_factors: tuple = (2, 4, 8, 16, 32)
    arch_budget_factors: dict = field(default_factory=dict)  # more budgets per architecture (published points)
    budget_methods: tuple = ("global", "sensitivity", "uniform", "torch-pruning")
    budget_select_at: float = 8
    budget_steps: int = 2
    budget_epochs: int = 6
    # per architecture: budgets whose pruned architecture is also trained from random weights, and more
    # fine-tune seeds at `budget_select_at` (same baseline) for the seed spread
    budget_scratch: dict = field(default_factory=dict)
    budget_seeds: dict = field(default_factory=dict)
    # unstructured pruning
    sparse_epochs: int = 10
    target_sparsity: float = 0.9
    # quantization
    fixed_point_bits: tuple = (4, 6, 8, 16, 32)
    pt2e: bool = True  # PT2E + Inductor rows in the INT8 tables, where torchao runs (compiling costs minutes)
    calib_batches: int = 16
    calib_batch_size: int = 128
    qat_epochs: int = 3
    qat_lr: float = 0.005
    qat_train_size: int | None = None  # training images per QAT epoch (a stratified subset; None: all of them)
    openvino: bool = True  # OpenVINO FP32 and INT8 (NNCF PTQ) rows in the INT8 tables, where openvino + nncf import
    # latency measurement: fresh processes per (model, runtime, threads), `compress.quant.latency`
    latency_warmup: int = 20
    latency_runs: int = 200
    latency_processes: int = 3  # per row; the table keeps the median of their medians and the min-max spread
    latency_threads: tuple = (1, None)  # None: all cores

    def __post_init__(self):
        """Every field checked once, here, so a bad override fails before any work with one clear line."""
        def whole(name, v, low=1, none_ok=False):
            if v is None and none_ok:
                return
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                raise ValueError(f"profile {self.name!r}: {name} must be a whole number >= {low}"
                                 f"{' or None (all of it)' if none_ok else ''}, got {v!r}")

        def number(name, v, low=0.0, high=math.inf, low_open=False, high_open=False):
            ok = (not isinstance(v, bool) and isinstance(v, numbers.Real) and math.isfinite(v)
                  and (v > low if low_open else v >= low) and (v < high if high_open else v <= high))
            if not ok:
                lo, hi = "(" if low_open else "[", ")" if high_open else "]"
                raise ValueError(f"profile {self.name!r}: {name} must be a number in {lo}{low}, {high}{hi}, got {v!r}")

        whole("train_size", self.train_size, none_ok=True)
        whole("test_size", self.test_size, none_ok=True)
        whole("sensitivity_eval_size", self.sensitivity_eval_size, none_ok=True)
        whole("qat_train_size", self.qat_train_size, none_ok=True)
        for name in ("val_size", "epochs", "batch_size", "eval_batch_size", "prune_rounds", "finetune_epochs",
                     "sparse_epochs", "calib_batches", "calib_batch_size", "qat_epochs", "latency_runs"):
            whole(name, getattr(self, name))
        whole("latency_warmup", self.latency_warmup, low=0)
        whole("latency_processes", self.latency_processes)
        if not self.latency_threads or not all(t is None or (isinstance(t, int) and not isinstance(t, bool) and t >= 1)
                                               for t in self.latency_threads):
            raise ValueError(f"profile {self.name!r}: latency_threads must be thread counts >= 1 or None (all cores), "
                             f"got {self.latency_threads!r}")
        whole("budget_steps", self.budget_steps)
        whole("budget_epochs", self.budget_epochs)
        if self.budget_epochs < self.budget_steps:
            raise ValueError(f"profile {self.name!r}: budget_epochs ({self.budget_epochs}) must give each of the "
                             f"{self.budget_steps} budget_steps at least one epoch")
        for f in self.budget_factors:
            number("each of budget_factors", f, 1, low_open=True)
        for name in ("arch_budget_factors", "budget_scratch", "budget_seeds"):
            table = getattr(self, name)
            unknown = sorted(set(table) - set(ARCHS))
            if unknown:
                raise ValueError(f"profile {self.name!r}: {name} names unknown architectures {unknown}; known: {list(ARCHS)}")
            for arch, values in table.items():
                for v in values:
                    if name == "budget_seeds":
                        whole(f"each of budget_seeds[{arch!r}]", v, low=0)
                    else:
                        number(f"each of {name}[{arch!r}]", v, 1, low_open=True)
        for arch, values in self.budget_scratch.items():
            missing = [f for f in values if f not in self.budget_factors_for(arch)]
            if missing:
                raise ValueError(f"profile {self.name!r}: budget_scratch[{arch!r}] names {missing}, which are not "
                                 f"among its budgets {self.budget_factors_for(arch)}")
        number("budget_select_at", self.budget_select_at, 1, low_open=True)
        if not self.budget_factors or self.budget_select_at not in self.budget_factors:
            raise ValueError(f"profile {self.name!r}: budget_select_at ({self.budget_select_at}) must be one of "
                             f"budget_factors {self.budget_factors}")
        unknown = [m for m in self.budget_methods if m not in BUDGET_METHODS]
        if not self.budget_methods or unknown:
            raise ValueError(f"profile {self.name!r}: budget_methods must name some of {list(BUDGET_METHODS)}, "
                             f"got {self.budget_methods!r}")

        number("width", self.width, 0, 4, low_open=True)
        for name in ("lr", "finetune_lr", "qat_lr"):
            number(name, getattr(self, name), 0, low_open=True)
        number("weight_decay", self.weight_decay)
        number("warmup_epochs", self.warmup_epochs)
        number("label_smoothing", self.label_smoothing, 0, 1, high_open=True)
        number("target_sparsity", self.target_sparsity, 0, 1, high_open=True)
        for r in self.sensitivity_ratios:
            number("each sensitivity ratio", r, 0, 1, high_open=True)
        for b in self.fixed_point_bits:
            whole("each fixed-point bit width", b, low=2)
        if self.prune_configs is not None and (isinstance(self.prune_configs, str) or not self.prune_configs):
            raise ValueError(f"profile {self.name!r}: prune_configs must be None (all) or a non-empty tuple of names, "
                             f"got {self.prune_configs!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"profile {self.name!r}: precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        for name, table in (("arch_epochs", self.arch_epochs), ("arch_lr", self.arch_lr)):
            unknown = sorted(set(table) - set(ARCHS))
            if unknown:
                raise ValueError(f"profile {self.name!r}: {name} names unknown architectures {unknown}; known: {list(ARCHS)}")
        for arch, v in self.arch_epochs.items():
            whole(f"arch_epochs[{arch!r}]", v)
        for config, v in self.last_round_epochs.items():
            whole(f"last_round_epochs[{config!r}]", v)
        for arch, v in self.arch_lr.items():
            number(f"arch_lr[{arch!r}]", v, 0, low_open=True)

    def epochs_for(self, arch: str) -> int:
        """Baseline epochs for `arch`: on a CPU the VGGs train ~1.8x faster per image than ResNet18."""
        return self.arch_epochs.get(arch, self.epochs)

    def budget_factors_for(self, arch: str) -> tuple:
        """The MAC reduction factors of `arch`'s curve: the common ones and its own, ascending."""
        return tuple(sorted({*self.budget_factors, *self.arch_budget_factors.get(arch, ())}))

    def lr_for(self, arch: str) -> float:
        """Peak learning rate for `arch` (VGG16 without BN needs a gentler one to train reliably)."""
        return self.arch_lr.get(arch, self.lr)

    def finetune_lr_for(self, arch: str) -> float:
        """Fine-tune peak, scaled like the baseline's: a pruned VGG16 without BN dies at a BN model's rate."""
        return self.finetune_lr * (self.lr_for(arch) / self.lr)

    def replace(self, **overrides) -> "Profile":
        """A validated copy with some fields changed. `None` is a value (for sizes: all of it), so pass only
        the fields you mean to change; an unknown field name is an error, not a silent no-op."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown profile field(s) {unknown}; known fields: {sorted(known)}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def train_config(self, arch: str, **overrides) -> TrainConfig:
        """The baseline recipe of this profile for `arch` (the trainer itself never reads a profile)."""
        cfg = TrainConfig(epochs=self.epochs_for(arch), batch_size=self.batch_size, lr=self.lr_for(arch),
                          weight_decay=self.weight_decay, label_smoothing=self.label_smoothing,
                          warmup_epochs=self.warmup_epochs, eval_batch_size=self.eval_batch_size,
                          precision=self.precision)
        return dataclasses.replace(cfg, **overrides)

    def finetune_config(self, epochs: int | None = None, lr: float | None = None, *, arch: str | None = None,
                        **overrides) -> TrainConfig:
        """A short recovery run after pruning or for QAT: fewer epochs, lower peak (scaled for `arch`), brief warm-up."""
        if lr is None:
            lr = self.finetune_lr_for(arch) if arch else self.finetune_lr
        cfg = TrainConfig(epochs=self.finetune_epochs if epochs is None else epochs, batch_size=self.batch_size,
                          lr=lr, weight_decay=self.weight_decay, label_smoothing=self.label_smoothing,
                          warmup_epochs=min(1.0, self.warmup_epochs), eval_batch_size=self.eval_batch_size,
                          precision=self.precision, desc="fine-tune")
        return dataclasses.replace(cfg, **overrides)


PROFILES = {
    "smoke": Profile(
        name="smoke", train_size=512, val_size=128, test_size=256, width=0.125,
        epochs=1, batch_size=128, eval_batch_size=256, warmup_epochs=0.2,
        sensitivity_ratios=(0.0, 0.5), sensitivity_eval_size=128, prune_rounds=2, finetune_epochs=1,
        prune_configs=("aggressive", "sensitivity"),  # the two the cpu run prunes: half the rounds of all four
        sparse_epochs=1, target_sparsity=0.5, fixed_point_bits=(4, 8, 32), calib_batches=2, calib_batch_size=64, qat_epochs=1,
        budget_factors=(2, 4), budget_select_at=2, budget_steps=1, budget_epochs=1,
        budget_scratch={a: (4,) for a in ARCHS}, budget_seeds={"resnet18": (1,)},
        pt2e=False, openvino=False,
        latency_warmup=2, latency_runs=5, latency_processes=1, latency_threads=(1,),
    ),
    "quick": Profile(
        name="quick", train_size=10_000, val_size=1_000, test_size=None, width=0.25,
        epochs=8, batch_size=256, warmup_epochs=1.0,
        sensitivity_ratios=(0.0, 0.2, 0.4, 0.6, 0.8), sensitivity_eval_size=1_000, prune_rounds=2,
        finetune_epochs=3, sparse_epochs=3, target_sparsity=0.8, calib_batches=8, qat_epochs=1,
        budget_factors=(2, 4, 8), budget_select_at=4, budget_epochs=4, budget_scratch={a: (4,) for a in ARCHS},
        latency_warmup=10, latency_runs=50,
    ),
    # Real results on this project's 2-core CPU: full width, all 45,000 training images, the whole
    # test set. Batch 128 costs the same per image as 512 on a CPU and buys 4x the optimiser steps.
    "cpu": Profile(
        name="cpu", train_size=None, val_size=5_000, test_size=None, width=1.0,
        epochs=20, arch_epochs={"resnet18": 18}, batch_size=128, lr=0.1, arch_lr={"vgg16": 0.025},
        warmup_epochs=1.0, eval_batch_size=500,
        sensitivity_ratios=(0.0, 0.2, 0.4, 0.6, 0.8, 0.9), sensitivity_eval_size=1_000,
        prune_configs=("aggressive", "sensitivity"), prune_rounds=2,
        finetune_epochs=4, finetune_lr=0.02, last_round_epochs={"aggressive": 15}, sparse_epochs=3, target_sparsity=0.8,
        fixed_point_bits=(4, 6, 8, 16), calib_batches=8, calib_batch_size=128, qat_epochs=1, qat_lr=0.001,
        qat_train_size=15_000, latency_warmup=20, latency_runs=200,
        distill_comparison=False,
        # the budget sweep: 2-32x for all, HRankPlus' VGG16-BN points too; controls sized to the CPU
        arch_budget_factors={"vgg16": (2.4, 3, 4.7), "vgg16_bn": (2.4, 3, 4.7)},
        budget_scratch={"resnet18": (4, 16), "vgg16": (4,), "vgg16_bn": (4,)}, budget_seeds={"resnet18": (1, 2)},
    ),
    "full": Profile(name="full", train_size=None, val_size=5_000, test_size=None),
}


def get_profile(name: str | Profile = "smoke", **overrides) -> Profile:
    """The named profile (validated), with each keyword overriding one field."""
    if isinstance(name, Profile):
        return name.replace(**overrides)
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name].replace(**overrides)


def default_profile_name() -> str:
    """The one rule for every entry point: $COMPRESS_PROFILE if set, else `full` where a GPU is present and
    `quick` on a CPU (the profile that finishes in reasonable time on the machine)."""
    import torch

    name = os.environ.get(PROFILE_ENV)
    if name:
        if name not in PROFILES:
            raise ValueError(f"${PROFILE_ENV}={name!r} is not a profile; choose one of {sorted(PROFILES)}")
        return name
    return "full" if torch.cuda.is_available() else "quick"
