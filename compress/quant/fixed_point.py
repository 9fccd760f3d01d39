"""Simulated fixed-point quantization: what a model loses when every number is a `bits`-bit code.

Everything is rounded, in float32 arithmetic ("fake" quantization, so it runs on CPU or GPU):

* weights and biases to `param_bits`, once, per tensor;
* activations to `fwd_bits` EVERYWHERE: the network input and the output of every conv, linear, BN, ReLU,
  pooling layer and residual add (the graph is traced with torch.fx and a quantizer is inserted after each
  value-producing node, so nothing inside a residual block escapes);
* BatchNorm: folded into the preceding conv by default (`fold_bn=True`), so it is quantized with the conv
  weights at `param_bits`. Without folding, each BN becomes its inference-time per-channel affine
  `y = scale * x + shift` with `scale` and `shift` rounded to `bn_bits`. Rounding BN's raw running variance
  instead (as the seed did) sends small variances to zero and collapsed its 8-bit ResNet18 to 32%.

Three number formats (`method`):

* `linear` — signed fixed point with `sf = bits - 1 - ceil(log2(v))` fractional bits, where `v` is the
  magnitude exceeded by a fraction `overflow_rate` of the values (the classic pytorch-playground
  `linear_quantize`); values beyond the range saturate.
* `minmax` — `2**bits` uniform levels from the minimum to the maximum (asymmetric; ignores `overflow_rate`).
* `log` — sign plus a `(bits - 1)`-bit fixed-point base-2 exponent: `sign(x) * 2**e`, `e <= ceil(log2(v))` on
  a grid of step `2**-f`, with as many fractional bits `f` as the tensor's dynamic range leaves free (at low
  bits `f = 0`: plain power-of-two quantization); magnitudes below the smallest level become 0.

Activation ranges are calibrated on a few training batches, with all quantizers passing values through
unchanged, then frozen. At 32 bits every format reproduces the float model to float precision.
"""
from __future__ import annotations

import copy
import math
import operator
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .result import Quantized

METHODS = ("linear", "minmax", "log")
MIN_BITS, MAX_BITS = 2, 32


@dataclass(frozen=True)
class FixedPointConfig:
    """Bit widths (2..32) for parameters, forward activations and unfolded BN; the number format; options."""

    param_bits: int = 8
    fwd_bits: int = 8
    bn_bits: int = 8
    method: str = "linear"
    overflow_rate: float = 0.0  # fraction of values allowed to saturate when sizing the range (linear, log)
    fold_bn: bool = True

    def __post_init__(self):
        for name in ("param_bits", "fwd_bits", "bn_bits"):
            bits = getattr(self, name)
            if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
                raise ValueError(f"{name} must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")
        if self.method not in METHODS:
            raise ValueError(f"unknown fixed-point method {self.method!r}; choose one of {list(METHODS)}")
        if not 0.0 <= self.overflow_rate < 1.0:
            raise ValueError(f"overflow_rate must be in [0, 1), got {self.overflow_rate!r}")

    def replace(self, **changes) -> "FixedPointConfig":
        return replace(self, **changes)


# ----------------------------------------------------------------------------- tensor quantizers
def _abs_quantile(x: torch.Tensor, overflow_rate: float) -> torch.Tensor:
    """The magnitude exceeded by a fraction `overflow_rate` of the values (the max when it is 0)."""
    a = x.detach().abs().flatten().float()
    k = int(overflow_rate * a.numel())
    return a.max() if k == 0 else torch.kthvalue(a, a.numel() - k).values


def observe_range(x: torch.Tensor, method: str, overflow_rate: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The (lo, hi) statistics `quantize_tensor` needs; ranges of several batches merge as (min lo, max hi).

    linear: (0, clip magnitude); minmax: (min, max); log: (smallest non-zero magnitude, clip magnitude).
    """
    x = x.detach().float()
    if method == "minmax":
        return x.min(), x.max()
    hi = _abs_quantile(x, overflow_rate)
    if method == "linear":
        return torch.zeros_like(hi), hi
    if method == "log":
        a = x.abs()
        return a.masked_fill(a == 0, float("inf")).min(), hi
    raise ValueError(f"unknown fixed-point method {method!r}; choose one of {list(METHODS)}")


def linear_fraction_bits(hi: torch.Tensor, bits: int) -> torch.Tensor:
    """Fractional bits of a signed `bits`-bit fixed-point format whose integer part holds `hi`."""
    return bits - 1 - torch.ceil(torch.log2(hi.float() + 1e-12))


# The quantizers work in place on their first fresh temporary: activations are large and this runs per layer.
def linear_quantize(x: torch.Tensor, bits: int, hi: torch.Tensor) -> torch.Tensor:
    step = torch.exp2(-linear_fraction_bits(hi, bits))
    bound = 2.0 ** (bits - 1)
    return torch.div(x, step).round_().clamp_(-bound, bound - 1).mul_(step)


def minmax_quantize(x: torch.Tensor, bits: int, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    levels = 2.0 ** bits - 1
    scale = torch.clamp((hi - lo) / levels, min=torch.finfo(torch.float32).tiny)
    return torch.sub(x, lo).div_(scale).add_(0.5).floor_().clamp_(0, levels).mul_(scale).add_(lo)


def log_fraction_bits(lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """Fractional bits of the exponent: the most that still let 2**(bits-1) - 1 levels span [lo, hi]."""
    levels = 2.0 ** (bits - 1) - 1
    span = torch.clamp(torch.ceil(torch.log2(hi.float())) - torch.log2(lo.float()), min=1.0)  # octaves below the top
    span = torch.where(torch.isfinite(span), span, torch.ones_like(span))  # empty or all-zero tensor
    return torch.clamp(torch.floor(math.log2(max(levels - 1, 1)) - torch.log2(span)), min=0)


def log_quantize(x: torch.Tensor, bits: int, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    levels = 2.0 ** (bits - 1) - 1
    step = torch.exp2(-log_fraction_bits(lo, hi, bits))
    top = torch.ceil(torch.log2(hi.float()))  # largest exponent: an integer, like linear's integer part
    j = torch.log2(x.abs()).neg_().add_(top).div_(step).round_()  # levels below the top (+inf for x = 0)
    flush = ~(j <= levels - 1)  # below the smallest level, zero, or NaN
    mag = j.clamp_(0, levels - 1).mul_(-step).add_(top).exp2_()
    return mag.mul_(torch.sign(x)).masked_fill_(flush, 0.0)


def quantize_tensor(x: torch.Tensor, bits: int, method: str, lo, hi) -> torch.Tensor:
    """`x` rounded to the `bits`-bit `method` format described by the range (lo, hi) of `observe_range`."""
    lo = torch.as_tensor(lo, dtype=torch.float32, device=x.device)
    hi = torch.as_tensor(hi, dtype=torch.float32, device=x.device)
    if method == "linear":
        out = linear_quantize(x.float(), bits, hi)
    elif method == "minmax":
        out = minmax_quantize(x.float(), bits, lo, hi)
    elif method == "log":
        out = log_quantize(x.float(), bits, lo, hi)
    else:
        raise ValueError(f"unknown fixed-point method {method!r}; choose one of {list(METHODS)}")
    return out.to(x.dtype)


def round_parameter(t: torch.Tensor, bits: int, method: str, overflow_rate: float = 0.0) -> torch.Tensor:
    """A weight or bias rounded with its own per-tensor range."""
    return quantize_tensor(t, bits, method, *observe_range(t, method, overflow_rate))


# ----------------------------------------------------------------------------- modules
class ActQuant(nn.Module):
    """Rounds the activation passing through it; while `calibrating`, only widens its range and passes it on."""

    def __init__(self, bits: int, method: str, overflow_rate: float = 0.0):
        super().__init__()
        self.bits, self.method, self.overflow_rate = bits, method, overflow_rate
        self.calibrating = True
        self.calibrated = False  # a Python flag, so the forward never syncs a GPU to check it
        self.register_buffer("lo", torch.tensor(float("inf")))
        self.register_buffer("hi", torch.tensor(float("-inf")))

    def forward(self, x):
        if self.calibrating:
            lo, hi = observe_range(x, self.method, self.overflow_rate)
            self.lo.copy_(torch.minimum(self.lo, lo))
            self.hi.copy_(torch.maximum(self.hi, hi))
            self.calibrated = True
            return x
        if not self.calibrated:
            raise RuntimeError("this ActQuant never saw data: quantize_fixed_point calibrates it on calib_batches")
        return quantize_tensor(x, self.bits, self.method, self.lo, self.hi)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, method={self.method!r}, lo={self.lo.item():.4g}, hi={self.hi.item():.4g}"


class Affine(nn.Module):
    """Inference-time BatchNorm as the per-channel `scale * x + shift` a fixed-point datapath applies."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale.detach().clone())
        self.register_buffer("shift", shift.detach().clone())

    @classmethod
    def from_bn(cls, bn: nn.modules.batchnorm._BatchNorm) -> "Affine":
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        shift = -bn.running_mean * scale + (bn.bias if bn.bias is not None else 0)
        return cls(scale, shift)

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.scale.view(shape) + self.shift.view(shape)


# ----------------------------------------------------------------------------- graph rewriting
# Nodes whose output is a new value to round; shape-only nodes (flatten, view, dropout) are left alone.
_VALUE_FUNCTIONS = {operator.add, operator.iadd, operator.sub, operator.mul, torch.add, torch.sub, torch.mul,
                    torch.cat, torch.relu, F.relu, F.relu6, F.hardtanh, F.avg_pool2d, F.adaptive_avg_pool2d,
                    F.max_pool2d, torch.mean, F.linear, F.conv2d}
_VALUE_METHODS = {"add", "add_", "sub", "mul", "mul_", "relu", "relu_", "mean"}
_SHAPE_MODULES = (nn.Flatten, nn.Identity, nn.Dropout, ActQuant)


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


def fold_batchnorm(gm: fx.GraphModule) -> fx.GraphModule:
    """Fold each BatchNorm that directly follows a conv used only by it into that conv (eval statistics)."""
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        bn = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(bn, nn.modules.batchnorm._BatchNorm):
            continue
        prev = node.args[0]
        conv = modules.get(prev.target) if isinstance(prev, fx.Node) and prev.op == "call_module" else None
        if isinstance(conv, nn.Conv2d) and len(prev.users) == 1:
            _set_module(gm, prev.target, fuse_conv_bn_eval(conv.eval(), bn.eval()))
            node.replace_all_uses_with(prev)
            gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def _round_parameters(gm: fx.GraphModule, cfg: FixedPointConfig) -> None:
    """Weights and biases to param_bits; any BatchNorm left becomes an `Affine` rounded to bn_bits."""
    for name, m in list(gm.named_modules()):
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            aff = Affine.from_bn(m)
            aff.scale.copy_(round_parameter(aff.scale, cfg.bn_bits, cfg.method, cfg.overflow_rate))
            aff.shift.copy_(round_parameter(aff.shift, cfg.bn_bits, cfg.method, cfg.overflow_rate))
            _set_module(gm, name, aff)
        elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            with torch.no_grad():
                for p in m.parameters(recurse=False):
                    p.copy_(round_parameter(p, cfg.param_bits, cfg.method, cfg.overflow_rate))


def _produces_value(node: fx.Node, modules: dict) -> bool:
    if node.op == "placeholder":
        return True
    if node.op == "call_module":
        return not isinstance(modules[node.target], _SHAPE_MODULES)
    if node.op == "call_function":
        return node.target in _VALUE_FUNCTIONS
    if node.op == "call_method":
        return node.target in _VALUE_METHODS
    return False


def insert_activation_quantizers(gm: fx.GraphModule, bits: int, method: str, overflow_rate: float = 0.0) -> fx.GraphModule:
    """An `ActQuant` named `<node>_act` after the input and every value-producing node."""
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if not _produces_value(node, modules):
            continue
        name = f"{node.name}_act"
        gm.add_submodule(name, ActQuant(bits, method, overflow_rate))
        with gm.graph.inserting_after(node):
            q = gm.graph.call_module(name, (node,))
        node.replace_all_uses_with(q, delete_user_cb=lambda user: user is not q)
    gm.graph.lint()
    gm.recompile()
    return gm


def activation_quantizers(model: nn.Module) -> dict[str, ActQuant]:
    return {name: m for name, m in model.named_modules() if isinstance(m, ActQuant)}


# ----------------------------------------------------------------------------- the one call
@torch.no_grad()
def quantize_fixed_point(model: nn.Module, config: FixedPointConfig, calib_batches) -> Quantized:
    """A fixed-point copy of `model` (left untouched), calibrated on `calib_batches`, on their device."""
    calib_batches = list(calib_batches)
    if not calib_batches:
        raise ValueError("quantize_fixed_point needs at least one calibration batch to size activation ranges")
    device = calib_batches[0].device
    gm = fx.symbolic_trace(copy.deepcopy(model).float().eval())
    if config.fold_bn:
        fold_batchnorm(gm)
    _round_parameters(gm, config)
    insert_activation_quantizers(gm, config.fwd_bits, config.method, config.overflow_rate)
    gm.to(device).eval()
    for x in calib_batches:
        gm(x.to(device))
    for q in activation_quantizers(gm).values():
        q.calibrating = False
    return Quantized(gm, config)


def storage_bytes(model: nn.Module, config: FixedPointConfig) -> bytes:
    """What a fixed-point model ships: each parameter as `param_bits` codes (`bn_bits` for unfolded BN)
    plus its codebook, and two float32 range numbers per activation quantizer; 32 bits stays float32."""
    parts = []
    for m in model.modules():
        if isinstance(m, ActQuant):
            parts.append(torch.stack([m.lo, m.hi]).float().cpu().numpy().tobytes())
            continue
        bits = config.bn_bits if isinstance(m, Affine) else config.param_bits
        tensors = list(m.buffers(recurse=False)) if isinstance(m, Affine) else list(m.parameters(recurse=False))
        for t in tensors:
            t = t.detach().float().cpu().flatten()
            if bits > 16:
                parts.append(t.numpy().tobytes())
                continue
            book, codes = torch.unique(t, return_inverse=True)
            parts += [book.numpy().tobytes(), codes.numpy().astype(np.uint8 if bits <= 8 else np.uint16).tobytes()]
    return b"".join(parts)


def fixed_point_table(model: nn.Module, data, bits_list=(4, 6, 8, 16, 32), methods=METHODS, *,
                      overflow_rate: float = 0.0, fold_bn: bool = True, calib_batches: int = 4,
                      calib_batch_size: int = 128, split: str = "test", arch: str | None = None,
                      device=None, seed: int = 0) -> pd.DataFrame:
    """Accuracy by (method, bits) with param_bits = fwd_bits = bn_bits = bits, next to the float model's.

    Columns: arch, method, bits, fold_bn, overflow_rate, split, top1, top5, float_top1, top1_drop, and the
    paired columns against the float model on the same images (`compress.paired`).
    """
    from ..data import calibration_batches
    from ..paired import paired_difference
    from ..train import evaluate

    device = torch.device(device) if device is not None else data.device
    batches = calibration_batches(data.train, calib_batches, calib_batch_size, seed=seed)
    target = getattr(data, split)
    model = copy.deepcopy(model).to(device).eval()
    ref = evaluate(model, target, device=device, predictions=True)
    rows = []
    for method in methods:
        for bits in bits_list:
            cfg = FixedPointConfig(bits, bits, bits, method, overflow_rate, fold_bn)
            res = evaluate(quantize_fixed_point(model, cfg, batches).model, target, device=device, predictions=True)
            rows.append({"arch": arch, "method": method, "bits": bits, "fold_bn": fold_bn,
                         "overflow_rate": overflow_rate, "split": split, "top1": res["top1"], "top5": res["top5"],
                         "float_top1": ref["top1"], "top1_drop": ref["top1"] - res["top1"],
                         **paired_difference(res["pred"], ref["pred"], target.labels)})
    return pd.DataFrame(rows)


__all__ = ["METHODS", "FixedPointConfig", "quantize_fixed_point", "fixed_point_table", "observe_range",
           "quantize_tensor", "round_parameter", "storage_bytes", "ActQuant", "Affine", "fold_batchnorm",
           "insert_activation_quantizers", "activation_quantizers", "linear_fraction_bits", "log_fraction_bits"]
