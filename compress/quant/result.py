"""`Quantized`: what every quantization verb returns, PTQ and QAT, torch.ao, fixed point and PT2E alike, so a
caller handles one type: the model to run, the config that made it, and what only some verbs have."""
from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from ..train import FitResult


@dataclass
class Quantized:
    """`model`: what to run (an fx fixed-point module, a torch.ao INT8 model: CPU only, or PT2E's Inductor-compiled
    `Pt2eModule`). `config`: the verb's config (None: `export_fp32`'s FP32 reference). QAT only: `fit` (the
    fake-quantized fine-tune) and `test` (the INT8 model's test top1 / top5 / loss and per-image pred, on the CPU).
    PT2E only: `program` (the converted q/dq graph before compilation, what `save_pt2e` writes) and `compile_s`
    (seconds of the first call after torch.compile; NaN when not compiled)."""

    model: nn.Module
    config: object | None
    fit: FitResult | None = None
    test: dict | None = None
    program: nn.Module | None = None
    compile_s: float = math.nan
