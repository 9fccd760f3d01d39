"""Static INT8 post-training quantization (and the QAT graph calls) with torch.ao FX graph mode.

This module is the project's only door to `torch.ao.quantization` (FX graph mode, deprecated upstream in
torch 2.14; `pt2e.py` holds the maintained torchao flow beside it). torch.ao's deprecation warnings are silenced here, in `_silence_torch_ao`, for
its own messages only.

FX traces the model, fuses conv-bn(-relu) and add-relu, inserts observers; `calibrate` runs a few training
batches through them; `convert_int8` packs int8 weights for the backend's kernels. Presets:

* `default` — per-tensor min-max weights, min-max activations (the plain recipe).
* `optimal` — per-channel weights, histogram activation observers (clips outliers by minimising the
  quantization error; the best static recipe for CNNs in torch.ao).

Backends: `x86` (fbgemm/oneDNN kernels; activations use 7 bits, `reduce_range`, to avoid the u8*s8
overflow of pre-VNNI AVX2 kernels, as torch.ao recommends) and `qnnpack` (ARM / mobile kernels, full range).
Converted models run on the CPU only: torch.ao has no GPU int8 kernels (export to ONNX / TensorRT for that).
"""
from __future__ import annotations

import contextlib
import copy
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.ao.nn.intrinsic import qat as _nniqat
from torch.ao.quantization import (FakeQuantize, HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver,
                                   MovingAveragePerChannelMinMaxObserver, PerChannelMinMaxObserver, QConfig,
                                   disable_observer, get_default_qat_qconfig_mapping, get_default_qconfig_mapping)
from torch.ao.quantization.observer import ObserverBase
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx, prepare_qat_fx

from .result import Quantized

PRESETS = ("default", "optimal")
BACKENDS = ("x86", "qnnpack")

# torch.ao's own deprecation messages: the FX API, reduce_range, and quantized-tensor creation (2.10+).
_AO_WARNINGS = (r"(?s).*torch\.ao\.quantization is deprecated", r"(?s)Please use quant_min and quant_max",
                r"(?s).*quantized tensor creation functions")


def _silence_torch_ao() -> None:
    """Ignore torch.ao's deprecation warnings, and only those. Called at import (the first quantized forward
    warns from C++, outside our calls) and again by each entry point, because pytest resets filters per test;
    re-adding an identical filter only moves it to the front."""
    for message in _AO_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


_silence_torch_ao()


@dataclass(frozen=True)
class Int8Config:
    """`preset`: 'default' | 'optimal'; `backend`: 'x86' | 'qnnpack' (which CPU kernels run it)."""

    preset: str = "optimal"
    backend: str = "x86"

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"unknown INT8 preset {self.preset!r}; choose one of {list(PRESETS)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown INT8 backend {self.backend!r}; choose one of {list(BACKENDS)}")
        if self.backend not in torch.backends.quantized.supported_engines:
            raise ValueError(f"this torch build has no {self.backend!r} quantized engine "
                             f"(supported: {torch.backends.quantized.supported_engines})")

    @property
    def name(self) -> str:
        return f"int8-{self.preset}"


# ----------------------------------------------------------------------------- qconfigs
def _act_range(backend: str) -> dict:
    return {"dtype": torch.quint8, "quant_min": 0, "quant_max": 127 if backend == "x86" else 255}


def qconfig(config: Int8Config, qat: bool = False) -> QConfig:
    """The observer (PTQ) or fake-quant (QAT) recipe of a preset, for signed-int8 weights, uint8 activations."""
    act = _act_range(config.backend)
    per_channel = config.preset == "optimal"
    w = {"dtype": torch.qint8, "quant_min": -128, "quant_max": 127,
         "qscheme": torch.per_channel_symmetric if per_channel else torch.per_tensor_symmetric}
    if qat:
        w_obs = MovingAveragePerChannelMinMaxObserver if per_channel else MovingAverageMinMaxObserver
        a_obs = MovingAverageMinMaxObserver
        return QConfig(activation=FakeQuantize.with_args(observer=a_obs, **act),
                       weight=FakeQuantize.with_args(observer=w_obs, **w))
    w_obs = PerChannelMinMaxObserver if per_channel else MinMaxObserver
    a_obs = HistogramObserver if config.preset == "optimal" else MinMaxObserver
    return QConfig(activation=a_obs.with_args(**act), weight=w_obs.with_args(**w))


def _mapping(config: Int8Config, qat: bool):
    base = get_default_qat_qconfig_mapping if qat else get_default_qconfig_mapping
    return base(config.backend).set_global(qconfig(config, qat))  # keeps torch's fixed-qparams op entries


# ----------------------------------------------------------------------------- prepare / calibrate / convert
def prepare_int8(model: nn.Module, config: Int8Config = Int8Config(), example_inputs=None) -> nn.Module:
    """An observed copy of `model` (eval mode, on the model's device) ready for `calibrate`."""
    model = copy.deepcopy(model).eval()
    example = example_inputs if example_inputs is not None else (_example(model),)
    _silence_torch_ao()
    prepared = prepare_fx(model, _mapping(config, qat=False), example)
    prepared.meta["int8_config"] = config
    return prepared


def prepare_qat(model: nn.Module, config: Int8Config = Int8Config(), example_inputs=None) -> nn.Module:
    """A fake-quantized copy of `model` in train mode, with conv-bn(-relu) fused into QAT modules.

    The fused QAT conv-bn divides by gamma / std, so exactly-zero BN weights (zero-initialised residual
    branches, dead channels) would give 0/0 = NaN: they are set to 1e-6 first (a negligible change).
    """
    model = copy.deepcopy(model).train()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None:
                m.weight.masked_fill_(m.weight == 0, 1e-6)
    example = example_inputs if example_inputs is not None else (_example(model),)
    _silence_torch_ao()
    prepared = prepare_qat_fx(model, _mapping(config, qat=True), example)
    prepared.meta["int8_config"] = config
    return prepared


@torch.no_grad()
def calibrate(prepared: nn.Module, batches) -> nn.Module:
    """Run `batches` (normalised float images) through the observers of a prepared model, in eval mode."""
    device = _device(prepared)
    was_training = prepared.training
    prepared.eval()
    n = 0
    _silence_torch_ao()
    for x in batches:
        prepared(x.to(device))
        n += 1
    prepared.train(was_training)
    if n == 0:
        raise ValueError("calibrate needs at least one batch (e.g. compress.data.calibration_batches(data.train, 8, 128))")
    return prepared


def uncalibrated_observers(prepared: nn.Module) -> list[str]:
    """Names of activation observers that have not seen any data (their range is still empty)."""
    names = []
    for name, m in prepared.named_modules():
        if isinstance(m, ObserverBase) and hasattr(m, "min_val"):
            mn = m.min_val
            if mn.numel() == 0 or not bool(torch.isfinite(mn).all()):
                names.append(name)
    return names


def convert_int8(prepared: nn.Module, config: Int8Config | None = None) -> nn.Module:
    """The INT8 model of a calibrated (or QAT-trained) prepared model; it runs on the CPU only."""
    config = config or prepared.meta.get("int8_config") or Int8Config()
    missing = uncalibrated_observers(prepared)
    if missing:
        raise RuntimeError(f"cannot convert to INT8: {len(missing)} observer(s) saw no data (e.g. {missing[:3]}). "
                           "Calibrate first: calibrate(prepared, batches) with a few training batches, "
                           "or use quantize_int8(model, config, batches).model")
    prepared = copy.deepcopy(prepared).cpu().eval()
    _silence_torch_ao()
    with _engine(config.backend):
        quantized = convert_fx(prepared)
    quantized.meta["int8_config"] = config
    quantized.register_forward_pre_hook(_CpuOnly(config.backend))
    return quantized


def quantize_int8(model: nn.Module, config: Int8Config = Int8Config(), calib_batches=()) -> Quantized:
    """Static INT8 PTQ in one call: prepare a copy, calibrate on `calib_batches`, convert. CPU-only model."""
    calib_batches = list(calib_batches)
    if not calib_batches:
        raise ValueError("quantize_int8 needs calibration batches: static INT8 sets activation ranges from data")
    prepared = prepare_int8(model, config, (calib_batches[0][:1].to(_device(model)),))
    return Quantized(convert_int8(calibrate(prepared, calib_batches), config), config)


# ----------------------------------------------------------------------------- QAT controls
def freeze_observers(model: nn.Module) -> None:
    """Stop updating quantization ranges (scales stay fixed; fake quantization continues)."""
    model.apply(disable_observer)


def freeze_bn_stats(model: nn.Module) -> None:
    """Stop updating the running statistics of fused conv-bn QAT modules (train with the final ones)."""
    model.apply(_nniqat.freeze_bn_stats)


# ----------------------------------------------------------------------------- inspection and helpers
def is_quantized(model: nn.Module) -> bool:
    """True when `model` holds torch.ao quantized (int8) modules."""
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules())


def quantized_module_names(model: nn.Module) -> dict[str, str]:
    """{module name: class name} of every int8 kernel module: what actually runs in int8."""
    return {name: type(m).__name__ for name, m in model.named_modules()
            if type(m).__module__.startswith(("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized"))}


def _example(model: nn.Module) -> torch.Tensor:
    return torch.randn(1, 3, 32, 32, device=_device(model))


def _device(model: nn.Module) -> torch.device:
    t = next(iter(model.parameters()), None)
    return t.device if t is not None else torch.device("cpu")


@contextlib.contextmanager
def _engine(backend: str):
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = backend
    try:
        yield
    finally:
        torch.backends.quantized.engine = old


class _CpuOnly:
    """Forward pre-hook of converted models: a clear error for non-CPU inputs; selects the packing engine."""

    def __init__(self, backend: str):
        self.backend = backend

    def __call__(self, module, args):
        for a in args:
            if torch.is_tensor(a) and a.device.type != "cpu":
                raise RuntimeError(f"INT8 torch.ao models run on the CPU only, got a {a.device.type} input: "
                                   "call model(x.cpu()), evaluate(..., device='cpu'); for GPU int8 export to ONNX")
        if torch.backends.quantized.engine != self.backend:
            torch.backends.quantized.engine = self.backend


__all__ = ["PRESETS", "BACKENDS", "Int8Config", "qconfig", "prepare_int8", "prepare_qat", "calibrate",
           "convert_int8", "quantize_int8", "uncalibrated_observers", "freeze_observers", "freeze_bn_stats",
           "is_quantized", "quantized_module_names"]
