"""Static INT8 with PT2E (torchao) and Inductor: PyTorch's maintained CPU INT8 path.

torch.ao's FX flow (`int8.py`) is deprecated; PT2E is where PyTorch's static INT8 lives now. The flow:
`torch.export.export` captures the model with a *dynamic batch dimension* (an export at batch 1 fixes the
batch at 1, and calibrating or evaluating at 32 then fails with `Guard failed: x.size()[0] == 1`);
`prepare_pt2e` / `prepare_qat_pt2e` insert observers or fake quantizers chosen by `X86InductorQuantizer`;
`convert_pt2e` folds them into quantize/dequantize ops around int8 weights; `torch.compile` (Inductor) with
`freezing` turns those q/dq patterns into oneDNN int8 kernels. Freezing is essential: without it INT8 is
slower than FP32 (21 ms vs 3.6 ms, full-width ResNet18, batch 1, one thread). This file is the project's
only door to torchao, imported lazily so that `compress.quant` works without it; `pt2e_available()` says
whether (and why not) it can run here.

Presets (they differ only in PTQ activation observers; QAT always uses moving-average fake quantizers):

* `default` — torchao's x86 recipe: histogram activation observers (outlier clipping), per-channel weights.
* `minmax` — min-max activation observers: calibrates several times faster, clips nothing.

Weights are always per-channel symmetric int8: Inductor's int8 convolution lowering matches per-channel
weight patterns only (a per-tensor recipe would run its convolutions in float between q/dq ops).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import importlib.util
import logging
import math
import re
import time
import types
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from ..data import CifarData
from ..train import TrainConfig, evaluate, fit
from .result import Quantized

PT2E_PRESETS = ("default", "minmax")
MIN_TORCH = (2, 11)  # torchao 0.18 dropped its torch < 2.11 code paths (its release notes and import check)
MIN_TORCHAO = (0, 18)  # the pinned, tested release (requirements.txt)
INSTALL_HINT = "pip install torchao==0.18.0 (pinned in requirements.txt)"

# Inductor's oneDNN lowering copies a tensor with torch.tensor(t); harmless, and not ours to fix.
_WARNINGS = (r"(?s)To copy construct from a tensor",)


def _silence() -> None:
    for message in _WARNINGS:
        warnings.filterwarnings("ignore", message=message)


@dataclass(frozen=True)
class Pt2eConfig:
    """`preset`: 'default' (histogram activations) | 'minmax'; `reduce_range`: 7-bit activations, only for
    pre-VNNI x86 CPUs (AVX2 without VNNI can overflow u8*s8 products; torchao's default is the full 8 bits)."""

    preset: str = "default"
    reduce_range: bool = False

    def __post_init__(self):
        if self.preset not in PT2E_PRESETS:
            raise ValueError(f"unknown PT2E preset {self.preset!r}; choose one of {list(PT2E_PRESETS)}")
        if not isinstance(self.reduce_range, bool):
            raise ValueError(f"reduce_range must be True or False, got {self.reduce_range!r}")

    @property
    def name(self) -> str:
        return "pt2e-int8" if self.preset == "default" else f"pt2e-int8-{self.preset}"


# ----------------------------------------------------------------------------- availability
def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text.split("+")[0])[:2])


def _enum_constant_notice(record: logging.LogRecord) -> bool:
    """False for the one line torchao 0.18's import makes torch log ("<enum 'KernelPreference'> is an Enum subclass
    and is now natively supported ... register_constant() ... deprecated"): torchao's to fix, nothing a user can act
    on. Every other pytree message still shows."""
    return "is an Enum subclass and is now natively supported" not in record.getMessage()


def _api() -> types.SimpleNamespace:
    """The torchao calls used here, imported on first use (torchao is optional for the rest of the package)."""
    pytree_log = logging.getLogger("torch.utils._pytree")
    pytree_log.addFilter(_enum_constant_notice)
    try:
        from torchao.quantization.pt2e import (allow_exported_model_train_eval, disable_observer,
                                               move_exported_model_to_eval)
        from torchao.quantization.pt2e.observer import MinMaxObserver
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e, prepare_qat_pt2e
        from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
            X86InductorQuantizer, get_default_x86_inductor_quantization_config)
    finally:
        pytree_log.removeFilter(_enum_constant_notice)
    return types.SimpleNamespace(
        allow_exported_model_train_eval=allow_exported_model_train_eval, disable_observer=disable_observer,
        move_exported_model_to_eval=move_exported_model_to_eval, MinMaxObserver=MinMaxObserver,
        convert_pt2e=convert_pt2e, prepare_pt2e=prepare_pt2e, prepare_qat_pt2e=prepare_qat_pt2e,
        X86InductorQuantizer=X86InductorQuantizer,
        get_default_x86_inductor_quantization_config=get_default_x86_inductor_quantization_config)


def _torchao_version() -> str:
    try:
        return metadata.version("torchao")
    except metadata.PackageNotFoundError:
        return "unknown"


def pt2e_available() -> tuple[bool, str]:
    """(True, versions) when PT2E INT8 can run here, else (False, why not and what to do).

    Gates on torchao's documented floor: torchao 0.18 (pinned) supports torch >= 2.11 only. On an older
    torch, a missing or older torchao, or a pair whose PT2E API fails to import, every entry point raises
    one RuntimeError with this reason."""
    if _version(torch.__version__) < MIN_TORCH:
        return False, (f"torch {torch.__version__} is too old for torchao's PT2E flow: torchao 0.18 needs "
                       f"torch >= {'.'.join(map(str, MIN_TORCH))}")
    try:
        installed = importlib.util.find_spec("torchao") is not None
    except (ImportError, ValueError):
        installed = False
    if not installed:
        return False, f"torchao is not installed: {INSTALL_HINT}"
    tao = _torchao_version()
    if tao != "unknown" and _version(tao) < MIN_TORCHAO:
        return False, f"torchao {tao} is older than the tested {'.'.join(map(str, MIN_TORCHAO))}: {INSTALL_HINT}"
    try:
        _api()
    except Exception as e:  # an incompatible torch/torchao pair can fail in many ways
        return False, (f"torchao {tao} is installed but its PT2E API failed to import with torch "
                       f"{torch.__version__} ({type(e).__name__}: {e}); {INSTALL_HINT}")
    return True, f"torchao {tao}, torch {torch.__version__}"


def _require() -> types.SimpleNamespace:
    ok, why = pt2e_available()
    if not ok:
        raise RuntimeError(f"PT2E INT8 is unavailable: {why}. "
                           "The torch.ao FX path, compress.quant.quantize_int8, needs no torchao.")
    _silence()
    return _api()


# ----------------------------------------------------------------------------- export / prepare / convert
def _dynamic_batch() -> tuple[dict]:
    return ({0: torch.export.Dim("batch", min=1)},)


# The X86 quantizer finds convs and linears by the module each graph node came from. torch < 2.14 reads
# that only from `source_fn_stack`, which only strict (dynamo) export records: there a default (non-strict)
# export gets no annotation at all and "quantizes" to an FP32 graph (found on torch 2.11). 2.14 also reads
# `nn_module_stack`, so it keeps the faster non-strict export.
STRICT_EXPORT_BELOW = (2, 14)


def _export(model: nn.Module, example: torch.Tensor, *, for_quantizer: bool = False) -> nn.Module:
    """`model` captured by torch.export with a dynamic batch dimension (the example needs batch >= 2:
    an example of batch 1 specialises the batch to 1)."""
    if example.shape[0] < 2:
        example = example.expand(2, *example.shape[1:]).contiguous()
    strict = for_quantizer and _version(torch.__version__) < STRICT_EXPORT_BELOW
    return torch.export.export(model, (example,), dynamic_shapes=_dynamic_batch(), strict=strict).module()


def _prepare(api, model: nn.Module, example: torch.Tensor, config: "Pt2eConfig", qat: bool) -> nn.Module:
    """Export `model` and insert the X86 quantizer's observers (`qat`: fake quantizers); refuses a graph in
    which the quantizer annotated nothing, which would otherwise convert silently to an FP32 model."""
    prepare = api.prepare_qat_pt2e if qat else api.prepare_pt2e
    prepared = prepare(_export(model, example, for_quantizer=True), _quantizer(api, config, qat=qat))
    if not any("quantization_annotation" in n.meta for n in prepared.graph.nodes):
        raise RuntimeError(f"PT2E: the X86 quantizer annotated no operator of this {type(model).__name__} "
                           f"(torch {torch.__version__}, torchao {_torchao_version()}), so nothing would be "
                           "quantized; use the FX INT8 path (`compress.quant.int8`) here")
    return prepared


def _quantizer(api, config: Pt2eConfig, qat: bool):
    qconfig = api.get_default_x86_inductor_quantization_config(is_qat=qat, reduce_range=config.reduce_range)
    if config.preset == "minmax" and not qat:
        act = dataclasses.replace(qconfig.input_activation,
                                  observer_or_fake_quant_ctr=api.MinMaxObserver.with_args(eps=2 ** -12))
        qconfig = dataclasses.replace(qconfig, input_activation=act, output_activation=act)
    return api.X86InductorQuantizer().set_global(qconfig)


def _drop_unused_attributes(gm: nn.Module) -> nn.Module:
    """Delete parameters and buffers that the graph no longer reads: `convert_pt2e` adds int8 copies of the
    weights and leaves the float originals registered, which would otherwise be exported and saved too."""
    used = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    for kind in ("_parameters", "_buffers"):
        for name in [n for n, _ in (gm.named_parameters() if kind == "_parameters" else gm.named_buffers())]:
            if name not in used:
                owner, _, leaf = name.rpartition(".")
                del getattr(gm.get_submodule(owner) if owner else gm, kind)[leaf]
    return gm


def _convert(api, prepared: nn.Module) -> nn.Module:
    with _skip_absent_conv_kinds():
        program = api.convert_pt2e(prepared)
    api.move_exported_model_to_eval(program)
    api.allow_exported_model_train_eval(program)  # .eval() / .train() are no-ops after convert, not errors
    return _drop_unused_attributes(program)


_CONV_KINDS = ("conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d")


@contextlib.contextmanager
def _skip_absent_conv_kinds():
    """Speed up torchao's QAT conv-bn fuse (in `prepare_qat_pt2e`) and fold (in `convert_pt2e`).

    Both build ~24 small pattern graphs with `torch.export` for each of conv1d, conv2d, conv_transpose1d and
    conv_transpose2d, whatever the model holds: ~100 exports, a minute on a busy 2-core CPU. A pattern of a
    conv kind the graph does not contain cannot match, so those kinds are skipped (same result, a quarter
    of the exports for a conv2d CNN). Patches torchao's private helpers for the duration only; a no-op if a
    later torchao renames them."""
    try:
        from torchao.quantization.pt2e import qat_utils
    except ImportError:
        qat_utils = None
    names = ("_fuse_conv_bn_qat_helper", "_fold_conv_bn_qat_helper")
    originals = {n: getattr(qat_utils, n, None) for n in names}
    if None in originals.values():
        yield
        return

    def only_present(helper):
        @functools.wraps(helper)
        def run(m, conv_fn, *args, **kwargs):
            kind = getattr(conv_fn, "__name__", None)
            if kind in _CONV_KINDS and not any(n.op == "call_function" and str(n.target).startswith(f"aten.{kind}.")
                                               for n in m.graph.nodes):
                return m
            return helper(m, conv_fn, *args, **kwargs)
        return run

    for name, helper in originals.items():
        setattr(qat_utils, name, only_present(helper))
    try:
        yield
    finally:
        for name, helper in originals.items():
            setattr(qat_utils, name, helper)


@torch.no_grad()
def _calibrate(prepared: nn.Module, batches) -> None:
    n = 0
    for x in batches:
        prepared(x.cpu())
        n += 1
    if n == 0:
        raise ValueError("quantize_pt2e needs calibration batches: static INT8 sets activation ranges from data "
                         "(e.g. compress.data.calibration_batches(data.train, 8, 128))")


# ----------------------------------------------------------------------------- compiled module
class Pt2eModule(nn.Module):
    """The deployable INT8 callable: a converted PT2E program, compiled by Inductor with freezing (or run
    eagerly as q/dq reference ops when built with compile=False). CPU only; always runs in inference mode
    (outputs are inference tensors: fine for evaluation, not for autograd).

    The program is held outside the module tree (exported graphs are not ordinary modules: their `.train()`
    and `.eval()` raise or rewrite ops), so `.eval()` and `.to("cpu")` on this wrapper are harmless no-ops.
    """

    def __init__(self, program: nn.Module, compile: bool = True):
        super().__init__()
        self.__dict__["program"] = program
        self.__dict__["_fn"] = torch.compile(program) if compile else program
        self.compiled = compile
        if compile:
            from torch._inductor import config as inductor_config
            self.__dict__["_freezing"] = lambda: inductor_config.patch(freezing=True)
        else:
            self.__dict__["_freezing"] = contextlib.nullcontext

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            raise RuntimeError(f"PT2E INT8 models run on the CPU only, got a {x.device.type} input: call "
                               "model(x.cpu()) or evaluate(..., device='cpu')")
        # freezing must be on for every compile (a new batch size or thread count recompiles): a scoped patch
        # instead of the global `torch._inductor.config.freezing = True`. (torch.compile(options={"freezing":
        # True}) is not enough: the batch-1 oneDNN weight prepack then fails to trace.)
        # inference mode (not just no_grad): one grad state for callers in either, so no recompiles between them
        with torch.inference_mode(), self._freezing():
            return self._fn(x)


def _compiled(program: nn.Module, example: torch.Tensor, compile: bool) -> tuple[nn.Module, float]:
    """Wrap `program`; when compiling, run one image through it now and return the seconds it took."""
    module = Pt2eModule(program, compile)
    if not compile:
        return module, math.nan
    t0 = time.perf_counter()
    module(example[:1].cpu())
    return module, time.perf_counter() - t0


# ----------------------------------------------------------------------------- one-call entry points
def quantize_pt2e(model: nn.Module, config: Pt2eConfig = Pt2eConfig(), calib_batches=(), *,
                  compile: bool = True) -> Quantized:
    """Static INT8 PTQ in one call: export a CPU eval copy of `model` (dynamic batch), prepare it with the
    X86 Inductor quantizer, calibrate on `calib_batches` (normalised float images, any batch sizes), convert,
    and compile with Inductor + freezing. `compile=False` skips Inductor (the q/dq graph runs eagerly: same
    predictions, no speed-up, no compile wait). `model` is left untouched."""
    api = _require()
    calib_batches = [b.detach().cpu().float() for b in calib_batches]
    if not calib_batches:
        raise ValueError("quantize_pt2e needs calibration batches: static INT8 sets activation ranges from data")
    model = copy.deepcopy(model).float().cpu().eval()
    prepared = _prepare(api, model, calib_batches[0][:2], config, qat=False)
    _calibrate(prepared, calib_batches)
    program = _convert(api, prepared)
    module, seconds = _compiled(program, calib_batches[0], compile)
    return Quantized(module, config, program=program, compile_s=seconds)


def quantize_qat_pt2e(model: nn.Module, data: CifarData, train: TrainConfig, config: Pt2eConfig = Pt2eConfig(), *,
                      freeze_observers_at: float = 0.6, device="cpu", compile: bool = True) -> Quantized:
    """QAT with PT2E: export a train-mode copy of `model`, insert the X86 quantizer's fake quantizers
    (`prepare_qat_pt2e`; conv-bn folded into the fake-quantized weight), fine-tune it with
    `compress.train.fit` (float32, no torch.compile), freeze the quantization ranges after
    `freeze_observers_at` of the steps, convert, compile, and test on the CPU.

    `fit` drives the exported GraphModule unchanged: it needs only parameters, `.to`, `.train()` / `.eval()`
    (enabled with torchao's `allow_exported_model_train_eval`, which swaps the graph's batch-norm and dropout
    ops) and calls at any batch size (the dynamic batch). Unlike `quant/qat.py` the BN running statistics are
    not frozen for the last steps: an exported graph has no fused QAT modules to freeze, and the per-epoch
    `.eval()` / `.train()` switches in `fit` would undo a graph edit. Exactly-zero BN weights (zero-initialised
    residual branches) are set to 1e-6 first, as in `quant/qat.py`. `device`: where to fine-tune; the CPU by
    default (the X86 recipe targets it, and exported graphs may hold CPU constants); the result is CPU-only.
    """
    api = _require()
    if not 0.0 <= freeze_observers_at <= 1.0:
        raise ValueError("freeze_observers_at is a fraction of the training steps in [0, 1], "
                         f"got {freeze_observers_at!r}")
    train = dataclasses.replace(train, precision="fp32", compile=False, desc="QAT-pt2e")
    model = copy.deepcopy(model).float().cpu().train()
    with torch.no_grad():  # the QAT conv-bn fusion divides by gamma / std: exact zeros would give 0/0 = NaN
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None:
                m.weight.masked_fill_(m.weight == 0, 1e-6)
    example = torch.randn(2, *data.train.images.shape[1:])  # shape only: export traces, it does not learn
    with _skip_absent_conv_kinds():
        prepared = _prepare(api, model, example, config, qat=True)
    api.allow_exported_model_train_eval(prepared)
    frozen = []

    def freeze(m: nn.Module, step: int, total: int) -> None:
        if not frozen and step >= freeze_observers_at * total:
            m.apply(api.disable_observer)
            frozen.append(step)

    result = fit(prepared, data, train, device=device, step_hook=freeze)
    prepared.cpu()
    prepared.eval()
    program = _convert(api, prepared)
    module, seconds = _compiled(program, example, compile)
    test = evaluate(module, data.test, train.eval_batch_size, device="cpu", predictions=True)
    return Quantized(module, config, fit=result, test=test, program=program, compile_s=seconds)


def export_fp32(model: nn.Module, *, example: torch.Tensor | None = None, compile: bool = True) -> Quantized:
    """The FP32 baseline in the same runtime: a CPU eval copy of `model` exported with a dynamic batch and
    compiled by Inductor with freezing (`config` is None). Needs no torchao. `example`: one input batch
    (default: a random 3x32x32 image), used for the shape and the timed first call."""
    _silence()
    example = torch.randn(2, 3, 32, 32) if example is None else example.detach().float().cpu()
    program = _export(copy.deepcopy(model).float().cpu().eval(), example[:2])
    module, seconds = _compiled(program, example, compile)
    return Quantized(module, None, program=program, compile_s=seconds)


# ----------------------------------------------------------------------------- shipping
def _program_of(program) -> nn.Module:
    return program.program if isinstance(program, (Quantized, Pt2eModule)) else program


def save_pt2e(program, path: str | Path) -> int:
    """Write what a user ships and return its size in bytes: the *converted* INT8 program (int8 weights,
    q/dq ops, dynamic batch), re-exported and written with `torch.export.save` — the artefact before
    Inductor compilation, since compiled kernels are machine-specific and rebuilt on load (`load_pt2e`).
    `program`: a Quantized, Pt2eModule or the converted GraphModule (or `export_fp32`'s, for the FP32 file)."""
    gm = _program_of(program)
    example = torch.randn(2, 3, 32, 32)
    placeholder = next((n for n in gm.graph.nodes if n.op == "placeholder" and "val" in n.meta), None)
    if placeholder is not None and hasattr(placeholder.meta["val"], "shape"):
        example = torch.randn(2, *(int(s) for s in placeholder.meta["val"].shape[1:]))
    exported = torch.export.export(gm, (example,), dynamic_shapes=_dynamic_batch())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(exported, path)
    return path.stat().st_size


def load_pt2e(path: str | Path, *, compile: bool = True) -> Pt2eModule:
    """A file written by `save_pt2e`, ready to call (compiled with Inductor + freezing on its first call)."""
    _require()
    program = torch.export.load(Path(path)).module()
    return Pt2eModule(program, compile)


__all__ = ["PT2E_PRESETS", "Pt2eConfig", "Pt2eModule", "pt2e_available", "quantize_pt2e",
           "quantize_qat_pt2e", "export_fp32", "save_pt2e", "load_pt2e"]
