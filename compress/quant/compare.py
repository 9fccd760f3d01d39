"""Tidy comparison tables: what INT8 buys (size, CPU latency) and costs (accuracy), per runtime.

`compare_int8` puts FP32, INT8 PTQ presets, QAT, the ONNX models, OpenVINO and (optionally) PT2E INT8 under
Inductor side by side, each saved and timed at every requested thread count by fresh processes started in
rotation (`compress.quant.latency`), so that neither a change in the machine's speed nor this process's history
can pose as a speedup.
`pruned_int8_table` stacks quantization on a pruned (and optionally a sparse) model, with gzip sizes: the
view of the original project's TensorFlow table.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
import gzip
import math
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import torch
import torch.nn.utils.prune  # makes torch.nn.utils.prune.remove (used below) available
from torch import nn

from ..data import CifarData, calibration_batches
from . import latency
from ..metrics import count_params, gzip_size_mb, size_mb
from ..paired import COLUMNS as PAIRED, paired_difference
from ..schema import FP32_VARIANTS
from ..train import TrainConfig, evaluate
from . import deploy
from .fixed_point import FixedPointConfig, quantize_fixed_point, storage_bytes
from .int8 import BACKENDS, PRESETS, Int8Config, quantize_int8
from .qat import QATConfig, quantize_qat

COLUMNS = ["variant", "runtime", "split", "top1", "top5", *PAIRED, "size_mb", "gzip_mb", "size_ratio", "threads",
           "batch_size", "latency_ms", "latency_p90_ms", "min_ms", "max_ms", "spread", "processes", "flagged",
           "speedup", "compile_s", "vs_baseline_delta", "vs_baseline_ci95", "vs_baseline_p"]


@dataclass(frozen=True)
class Int8Comparison:
    """What `compare_int8` runs and how it times it, validated on creation. `qat`: the QAT fine-tune's recipe
    (None: no QAT rows); `onnx`, `openvino`, `pt2e`: which runtimes' rows beside torch; `threads` (None: all
    cores), `runs`, `warmup` and `processes`: the fresh-process timing (`latency.measure`); `split`: where
    accuracy is measured."""

    presets: tuple = PRESETS
    backend: str = "x86"
    calib_batches: int = 8
    calib_batch_size: int = 128
    qat: TrainConfig | None = None
    onnx: bool = True
    openvino: bool = False
    pt2e: bool = False
    threads: tuple = (1, None)
    runs: int = 50
    warmup: int = 10
    processes: int = 3
    split: str = "test"
    seed: int = 0

    def __post_init__(self):
        unknown = [p for p in self.presets if p not in PRESETS]
        if unknown:
            raise ValueError(f"unknown INT8 preset(s) {unknown}; choose from {list(PRESETS)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown INT8 backend {self.backend!r}; choose one of {list(BACKENDS)}")
        for name in ("calib_batches", "calib_batch_size", "runs", "processes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be 0 or more, got {self.warmup!r}")
        if self.split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {self.split!r}")
        object.__setattr__(self, "presets", tuple(self.presets))
        object.__setattr__(self, "threads", tuple(self.threads))


def compare_int8(fp32_model: nn.Module, data: CifarData, config: Int8Comparison = Int8Comparison(), *,
                 folder: str | Path | None = None, qat_data: CifarData | None = None,
                 baseline_pred: torch.Tensor | None = None) -> pd.DataFrame:
    """One row per (variant, thread count): accuracy on `split`, file size, batch-1 CPU latency.

    Variants: `fp32`, `int8-<preset>` (torch.ao, `backend` kernels), `qat` (when a `qat` TrainConfig is
    given), `onnx-fp32` and `onnx-int8` (onnxruntime), with `openvino=True` `openvino-fp32` and `openvino-int8`
    (OpenVINO, INT8 by NNCF PTQ: `quant.openvino`), and with `pt2e=True` (needs torchao) `fp32` and
    `pt2e-int8` in runtime `inductor`: torch.compile with freezing of the exported FP32 model and of the PT2E
    INT8 program (`quant.pt2e`, default preset, same calibration batches); their size is the file
    `torch.export.save` writes and `compile_s` the seconds of their first call after torch.compile (NaN for the
    other rows). With both `qat` and `pt2e`, `qat-pt2e` (torchao's QAT flow, the same fine-tune) joins them.
    `qat_data`: what the QAT fine-tunes train on (e.g. `data.with_train_subset(n)`; default `data`).

    Latency comes from `latency.measure`: every variant is saved to `folder` (default: a temporary one; the
    torch variants as TorchScript, FP32 and INT8 alike) and timed by `processes` fresh processes per thread
    count, started in rotation; the row keeps the median of their medians, their min-max `spread` and `flagged`
    where that spread exceeds `latency.SPREAD_LIMIT`. Timing inside this process measured the same model up to
    3x apart: whatever ran before (a QAT fine-tune, a compile) leaves the allocator and the thread pools in a
    state a deployed model never sees. `threads`: None means all cores. `size_ratio` and `speedup` are against
    FP32 in the same runtime at the same thread count; the paired columns (`compress.paired`) compare each row's
    predictions with FP32 PyTorch's on the same images; `baseline_pred` (the unpruned baseline's top-1 class per
    image of `split`, for a pruned `fp32_model`) adds `vs_baseline_*`: each row against the baseline, paired on the
    same images (NaN without it). Columns: see COLUMNS.
    """
    c = config
    presets, backend, qat, onnx, openvino, pt2e, split, seed = (c.presets, c.backend, c.qat, c.onnx, c.openvino, c.pt2e,
                                                                c.split, c.seed)
    fp32 = copy.deepcopy(fp32_model).float().eval()
    batches = [b.cpu() for b in calibration_batches(data.train, c.calib_batches, c.calib_batch_size, seed=seed)]
    target = getattr(data, split)
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="compress-int8-"))

    models = {"fp32": fp32.cpu()}
    acc = {("torch", "fp32"): evaluate(copy.deepcopy(fp32).to(data.device), target, device=data.device,
                                       predictions=True)}
    for preset in presets:
        cfg = Int8Config(preset, backend)
        models[cfg.name] = quantize_int8(fp32, cfg, batches).model
        acc[("torch", cfg.name)] = evaluate(models[cfg.name], target, device="cpu", predictions=True)
    if qat is not None:
        res = quantize_qat(fp32, qat_data or data, qat, QATConfig(Int8Config("optimal", backend)))
        models["qat"] = res.model
        acc[("torch", "qat")] = res.test if split == "test" else evaluate(res.model, target, device="cpu", predictions=True)
    saved = {("torch", name): _torchscript(m, folder / f"model-{name}.ts", batches[0][:1]) for name, m in models.items()}
    sizes = {("torch", name): (size_mb(m), gzip_size_mb(m)) for name, m in models.items()}
    files = deploy.export_fp32_int8(fp32, folder, batches) if onnx else {}
    for name, path in files.items():
        saved[("onnxruntime", name)] = path
        sizes[("onnxruntime", name)] = deploy.file_sizes_mb(path)
        acc[("onnxruntime", name)] = deploy.onnx_evaluate(deploy.onnx_session(path), target, predictions=True)
    if openvino:
        from . import openvino as ov

        for name, path in ov.export_openvino(fp32, folder, batches).items():
            saved[("openvino", name)] = path
            sizes[("openvino", name)] = ov.file_sizes_mb(path)
            acc[("openvino", name)] = ov.evaluate(ov.compiled(path), target, predictions=True)
    compiled = _inductor_variants(fp32, batches, folder, data=qat_data or data, qat=qat) if pt2e else {}
    for name, (res, path) in compiled.items():
        saved[("inductor", name)] = path
        sizes[("inductor", name)] = deploy.file_sizes_mb(path)
        acc[("inductor", name)] = (res.test if res.test is not None and split == "test"
                                   else evaluate(res.model, target, device="cpu", predictions=True))
    reference = acc[("torch", "fp32")]["pred"]
    for a in acc.values():
        pred = a.pop("pred")
        a.update(paired_difference(pred, reference, target.labels))
        vs = paired_difference(pred, baseline_pred, target.labels) if baseline_pred is not None else {}
        a.update(vs_baseline_delta=vs.get("paired_delta", math.nan), vs_baseline_ci95=vs.get("paired_ci95", math.nan),
                 vs_baseline_p=vs.get("mcnemar_p", math.nan))

    counts = list(dict.fromkeys(t or torch.get_num_threads() for t in c.threads))  # distinct counts, in order
    timed = latency.measure([latency.Variant(name, runtime, path) for (runtime, name), path in saved.items()],
                            threads=counts, processes=c.processes, warmup=c.warmup, runs=c.runs)
    rows = []
    for t in timed.itertuples():
        key = (t.runtime, t.variant)
        compile_s = compiled[t.variant][0].compile_s if t.runtime == "inductor" else math.nan
        rows.append(_row(t.variant, t.runtime, split, acc[key], sizes[key], t._asdict(), compile_s))
    df = pd.DataFrame(rows)
    base = df[df.variant.isin(FP32_VARIANTS)].set_index(["runtime", "threads"])
    key = list(zip(df.runtime, df.threads))
    df["size_ratio"] = [base.loc[k, "size_mb"] / s for k, s in zip(key, df.size_mb)]
    df["speedup"] = [base.loc[k, "latency_ms"] / lat for k, lat in zip(key, df.latency_ms)]
    return df[COLUMNS]


def _torchscript(model: nn.Module, path: Path, example: torch.Tensor) -> Path:
    """`model` traced and saved as TorchScript (code and weights, no pickle): the file a fresh timing process
    loads, and how torch.ao's INT8 models ship."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export, which FX INT8 lacks
        torch.jit.save(torch.jit.trace(copy.deepcopy(model).cpu().eval(), example.cpu()), str(path))
    return path


def _inductor_variants(fp32: nn.Module, batches, folder: Path, *, data: CifarData | None = None,
                       qat: TrainConfig | None = None) -> dict:
    """{variant: (Quantized, .pt2 file saved in `folder`)} for the FP32, PT2E INT8 and (with `qat`) PT2E QAT
    models under Inductor."""
    from . import pt2e  # torchao is imported only when asked for

    out = {"fp32": pt2e.export_fp32(fp32, example=batches[0]),
           "pt2e-int8": pt2e.quantize_pt2e(fp32, pt2e.Pt2eConfig(), batches)}
    if qat is not None and data is not None:
        out["qat-pt2e"] = pt2e.quantize_qat_pt2e(fp32, data, qat, pt2e.Pt2eConfig())
    for name, res in out.items():
        path = folder / f"model-{name}.pt2"
        pt2e.save_pt2e(res, path)
        out[name] = (res, path)
    return out


def _row(variant, runtime, split, acc, sizes, lat: dict, compile_s: float) -> dict:
    return {"variant": variant, "runtime": runtime, "split": split, "top1": acc["top1"], "top5": acc["top5"],
            **{c: acc[c] for c in PAIRED}, "size_mb": sizes[0], "gzip_mb": sizes[1], "threads": lat["threads"],
            "batch_size": 1, **{c: lat[c] for c in ("latency_ms", "latency_p90_ms", "min_ms", "max_ms", "spread",
                                                    "processes", "flagged")}, "compile_s": compile_s,
            **{c: acc[c] for c in ("vs_baseline_delta", "vs_baseline_ci95", "vs_baseline_p")}}


def pruned_int8_table(original: nn.Module, pruned: nn.Module, data: CifarData, *, sparse: nn.Module | None = None,
                      config: Int8Config = Int8Config(), calib_batches: int = 8, calib_batch_size: int = 128,
                      split: str = "test", seed: int = 0) -> pd.DataFrame:
    """Original / pruned / pruned+INT8 / pruned+float16 / pruned int16-activation int8-weight fixed point,
    and sparse / sparse+INT8 when `sparse` is given: accuracy, parameters, raw and gzip size.

    float16 stores weights in half precision and computes in float32 (as TFLite's float16 quantization does
    on CPUs); its size is `model.half()`'s. The int16/int8 row is simulated (`FixedPointConfig(param_bits=8,
    fwd_bits=16)`, BN folded); its size is the packed 8-bit weight codes (`fixed_point.storage_bytes`).
    Columns: variant, top1, top5, the paired columns against the original (`compress.paired`), params,
    size_mb, gzip_mb, size_ratio, gzip_ratio (vs the original).
    """
    batches = calibration_batches(data.train, calib_batches, calib_batch_size, seed=seed)
    cpu_batches = [b.cpu() for b in batches]
    target = getattr(data, split)
    dev = data.device

    def fp(name, m):
        m = _plain(m)
        return {"variant": name, **_acc(evaluate(m.to(dev), target, device=dev, predictions=True)),
                "params": count_params(m), "size_mb": size_mb(m), "gzip_mb": gzip_size_mb(m)}

    def int8(name, m):
        q = quantize_int8(_plain(m), config, cpu_batches).model
        return {"variant": name, **_acc(evaluate(q, target, device="cpu", predictions=True)),
                "params": count_params(_plain(m)), "size_mb": size_mb(q), "gzip_mb": gzip_size_mb(q)}

    rows = [fp("original", original), fp("pruned", pruned), int8("pruned+int8", pruned)]
    half = _plain(pruned).half()
    rows.append({"variant": "pruned+float16",
                 **_acc(evaluate(copy.deepcopy(half).float().to(dev), target, device=dev, predictions=True)),
                 "params": count_params(half), "size_mb": size_mb(half), "gzip_mb": gzip_size_mb(half)})
    cfg = FixedPointConfig(param_bits=8, fwd_bits=16, bn_bits=16)
    sim = quantize_fixed_point(_plain(pruned).to(dev), cfg, batches).model
    blob = storage_bytes(sim, cfg)
    rows.append({"variant": "pruned+int16act-int8w", **_acc(evaluate(sim, target, device=dev, predictions=True)),
                 "params": count_params(_plain(pruned)), "size_mb": len(blob) / 1e6,
                 "gzip_mb": len(gzip.compress(blob, compresslevel=9)) / 1e6})
    if sparse is not None:
        rows += [fp("sparse", sparse), int8("sparse+int8", sparse)]
    reference = rows[0]["pred"]
    for r in rows:
        r.update(paired_difference(r.pop("pred"), reference, target.labels))
    df = pd.DataFrame(rows)
    df["size_ratio"] = df.size_mb.iloc[0] / df.size_mb
    df["gzip_ratio"] = df.gzip_mb.iloc[0] / df.gzip_mb
    return df


def _acc(res: dict) -> dict:
    return {"top1": res["top1"], "top5": res["top5"], "pred": res["pred"]}


def _plain(model: nn.Module) -> nn.Module:
    """A float32 eval copy with torch.nn.utils.prune masks baked in (sparse models keep their zeros)."""
    # a masked weight is a computed (non-leaf) attribute that deepcopy refuses; prune.remove recomputes it
    memo = {id(v): None for m in model.modules() for v in vars(m).values() if torch.is_tensor(v) and not v.is_leaf}
    model = copy.deepcopy(model, memo).float().eval()
    for m in model.modules():
        for name in [k[:-5] for k, _ in list(m.named_buffers(recurse=False)) if k.endswith("_mask")]:
            if hasattr(m, f"{name}_orig"):
                torch.nn.utils.prune.remove(m, name)
    return model


__all__ = ["COLUMNS", "compare_int8", "pruned_int8_table"]
