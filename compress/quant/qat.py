"""Quantization-aware training: fine-tune with fake INT8 in the loop, then convert to a real INT8 model.

The graph calls (prepare, freeze, convert) live in `int8.py`; this module is only the training schedule:

1. `prepare_qat` fuses conv-bn(-relu) into QAT modules and inserts fake quantizers (the preset's recipe,
   with moving-average observers);
2. `compress.train.fit` fine-tunes on the training device (GPU when present) for a few epochs at a low LR;
3. after `freeze_observers_at` of the steps the quantization ranges are frozen, after `freeze_bn_at` the
   BN running statistics too, so the last steps train against the exact scales and BN folding the INT8
   model will use (a `step_hook`, not an epoch hook, so that a 1-epoch QAT run still freezes);
4. `convert_int8` produces the INT8 model, evaluated on the CPU (where it runs).

Fake quantization trains in float32 (`precision="fp32"`), because bf16 keeps 8 significant bits and so
cannot hold the int8-grid values `q * scale` that fake quantization produces exactly.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from ..data import CifarData, reiterable
from ..train import TrainConfig, evaluate, fit
from .result import Quantized
from .int8 import Int8Config, convert_int8, freeze_bn_stats, freeze_observers, prepare_qat


@dataclass(frozen=True)
class QATConfig:
    """The INT8 recipe to train for, and when (fraction of training steps) to freeze ranges and BN stats."""

    int8: Int8Config = Int8Config()
    freeze_observers_at: float = 0.6
    freeze_bn_at: float = 0.7

    def __post_init__(self):
        if not isinstance(self.int8, Int8Config):
            raise TypeError(f"int8 must be an Int8Config, got {type(self.int8).__name__}")
        for name in ("freeze_observers_at", "freeze_bn_at"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} is a fraction of the training steps in [0, 1], got {v!r}")


def freeze_schedule(config: QATConfig):
    """A `fit` step hook that freezes observers, then BN statistics, once each, at their step fractions."""
    done = set()

    def hook(model: nn.Module, step: int, total: int) -> None:
        if "obs" not in done and step >= config.freeze_observers_at * total:
            freeze_observers(model)
            done.add("obs")
        if "bn" not in done and step >= config.freeze_bn_at * total:
            freeze_bn_stats(model)
            done.add("bn")

    hook.frozen = done
    return hook


def quantize_qat(model: nn.Module, data, train: TrainConfig, config: QATConfig = QATConfig(), *,
                 device=None, val=None, test=None) -> Quantized:
    """Fine-tune a fake-quantized copy of `model` with `train` (e.g. `profile.finetune_config(
    epochs=profile.qat_epochs, lr=profile.qat_lr)`), convert it to INT8 and test it on the CPU.

    `data`: a `CifarData`, or (images, labels) training batches such as a DataLoader with optional `val` and `test`
    (a Split or batches), as `train.fit` takes them; without `test` the result's `test` is None."""
    train = dataclasses.replace(train, precision="fp32", compile=False, desc="QAT")
    if not isinstance(data, CifarData) and test is not None:
        test = reiterable(test)  # scored twice: the fake-quantized model in fit, the INT8 model here
    prepared = prepare_qat(model, config.int8)
    result = fit(prepared, data, train, device=device, step_hook=freeze_schedule(config), val=val, test=test)
    quantized = convert_int8(prepared, config.int8)
    test = data.test if isinstance(data, CifarData) else test
    scores = None if test is None else evaluate(quantized, test, train.eval_batch_size, device="cpu", predictions=True)
    return Quantized(quantized, config, fit=result, test=scores)


__all__ = ["QATConfig", "quantize_qat", "freeze_schedule"]
