"""Run sizes in one place: `smoke` (seconds on a CPU, for tests and CI), `quick` (a CPU user sees the
whole flow in minutes), `cpu` (real full-width results on a 2-core bf16 CPU, hours, resumable) and
`full` (one GPU, paper grade).

Every stage reads its knobs from a `Profile`, so a notebook or the CLI changes one name to move between
a seconds-long rehearsal and the real run; an explicit argument overrides a single field.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


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
    epochs: int = 40
    arch_epochs: dict = field(default_factory=dict)  # per-architecture baseline epochs (faster nets get more)
    precision: str = "auto"  # bf16 autocast where the hardware runs it natively, else fp32; or force one
    batch_size: int = 512
    lr: float = 0.2  # peak SGD learning rate at batch_size; per-architecture overrides below
    arch_lr: dict = field(default_factory=lambda: {"vgg16": 0.05})
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup_epochs: float = 2.0
    eval_batch_size: int = 1024
    # layer importance and structured pruning
    sensitivity_ratios: tuple = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    sensitivity_eval_size: int | None = None  # validation images per scan point (None: whole split)
    prune_rounds: int = 3
    finetune_epochs: int = 15
    finetune_lr: float = 0.05
    distill: bool = True
    # unstructured pruning
    sparse_epochs: int = 10
    target_sparsity: float = 0.9
    # quantization
    fixed_point_bits: tuple = (4, 6, 8, 16, 32)
    calib_batches: int = 16
    calib_batch_size: int = 128
    qat_epochs: int = 3
    qat_lr: float = 0.005
    # latency measurement
    latency_warmup: int = 20
    latency_runs: int = 200

    def epochs_for(self, arch: str) -> int:
        """Baseline epochs for `arch`: on a CPU the VGGs train ~1.8x faster per image than ResNet18."""
        return self.arch_epochs.get(arch, self.epochs)

    def lr_for(self, arch: str) -> float:
        """Peak learning rate for `arch` (VGG16 without BN needs a gentler one to train reliably)."""
        return self.arch_lr.get(arch, self.lr)

    def finetune_lr_for(self, arch: str) -> float:
        """Fine-tune peak, scaled like the baseline's: a pruned VGG16 without BN dies at a BN model's rate."""
        return self.finetune_lr * (self.lr_for(arch) / self.lr)

    def replace(self, **overrides) -> "Profile":
        """A copy with some fields changed; an unknown field name is an error, not a silent no-op."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown profile field(s) {unknown}; known fields: {sorted(known)}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PROFILES = {
    "smoke": Profile(
        name="smoke", train_size=512, val_size=128, test_size=256, width=0.125,
        epochs=1, batch_size=128, eval_batch_size=256, warmup_epochs=0.2,
        sensitivity_ratios=(0.0, 0.5), sensitivity_eval_size=128, prune_rounds=2, finetune_epochs=1,
        sparse_epochs=1, target_sparsity=0.5, fixed_point_bits=(4, 8, 32), calib_batches=2, calib_batch_size=64, qat_epochs=1,
        latency_warmup=2, latency_runs=5,
    ),
    "quick": Profile(
        name="quick", train_size=10_000, val_size=1_000, test_size=None, width=0.25,
        epochs=8, batch_size=256, warmup_epochs=1.0,
        sensitivity_ratios=(0.0, 0.2, 0.4, 0.6, 0.8), sensitivity_eval_size=1_000, prune_rounds=2,
        finetune_epochs=3, sparse_epochs=3, target_sparsity=0.8, calib_batches=8, qat_epochs=1,
        latency_warmup=10, latency_runs=50,
    ),
    # Real results on this project's 2-core AVX512-BF16 CPU: full width, all 45,000 training images, the whole
    # test set. Batch 128 costs the same per image as 512 on a CPU and buys 4x the optimiser steps.
    "cpu": Profile(
        name="cpu", train_size=None, val_size=5_000, test_size=None, width=1.0,
        epochs=20, arch_epochs={"resnet18": 18}, batch_size=128, lr=0.1, arch_lr={"vgg16": 0.025},
        warmup_epochs=1.0, eval_batch_size=500,
        sensitivity_ratios=(0.0, 0.2, 0.4, 0.6, 0.8, 0.9), sensitivity_eval_size=1_000, prune_rounds=2,
        finetune_epochs=4, finetune_lr=0.02, sparse_epochs=3, target_sparsity=0.8,
        fixed_point_bits=(4, 6, 8, 16), calib_batches=8, calib_batch_size=128, qat_epochs=1, qat_lr=0.001,
        latency_warmup=20, latency_runs=200,
    ),
    "full": Profile(name="full", train_size=None, val_size=5_000, test_size=None),
}


def get_profile(name: str | Profile = "smoke", **overrides) -> Profile:
    """The named profile, with any non-None keyword overriding a field."""
    if isinstance(name, Profile):
        return name.replace(**overrides)
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name].replace(**overrides)


def default_profile_name() -> str:
    """`full` where a GPU is present, `quick` on a CPU: what a notebook user expects by default."""
    import torch

    return "full" if torch.cuda.is_available() else "quick"
