"""Tidy comparison tables: what INT8 buys (size, CPU latency) and costs (accuracy), per runtime.

`compare_int8` puts FP32, INT8 PTQ presets, QAT, the ONNX models and (optionally) PT2E INT8 under Inductor
side by side, timed in the same run at every requested thread count (latency depends on it as much as on
the model), in alternating blocks so that a change in the machine's speed cannot pose as a speedup.
`pruned_int8_table` stacks quantization on a pruned (and optionally a sparse) model, with gzip sizes: the
view of the seed's TF table.
"""
from __future__ import annotations

import copy
import gzip
import math
import tempfile
from pathlib import Path

import pandas as pd
import torch
import torch.nn.utils.prune  # makes torch.nn.utils.prune.remove (used below) available
from torch import nn

from ..data import CifarData, calibration_batches
from ..metrics import count_params, gzip_size_mb, interleaved_latency, size_mb
from ..paired import COLUMNS as PAIRED, paired_difference
from ..train import TrainConfig, evaluate
from . import deploy
from .fixed_point import FixedPointConfig, quantize_fixed_point, storage_bytes
from .int8 import PRESETS, Int8Config, quantize_int8
from .qat import QATConfig, quantize_qat

COLUMNS = ["variant", "runtime", "split", "top1", "top5", *PAIRED, "size_mb", "gzip_mb", "size_ratio", "threads",
           "batch_size", "latency_ms", "latency_p90_ms", "speedup", "others_cpu", "compile_s"]


def compare_int8(fp32_model: nn.Module, data: CifarData, *, presets=PRESETS, backend: str = "x86",
                 calib_batches: int = 8, calib_batch_size: int = 128, qat: TrainConfig | None = None,
                 onnx: bool = True, onnx_folder: str | Path | None = None, threads=(1, None), batch_size: int = 1,
                 runs: int = 50, warmup: int = 10, blocks: int = 10, split: str = "test", seed: int = 0,
                 pt2e: bool = False, qat_data: CifarData | None = None) -> pd.DataFrame:
    """One row per (variant, thread count): accuracy on `split`, file size, CPU latency at `batch_size`.

    Variants: `fp32`, `int8-<preset>` (torch.ao, `backend` kernels), `qat` (when a `qat` TrainConfig is
    given), `onnx-fp32` and `onnx-int8` (onnxruntime), and with `pt2e=True` (needs torchao) `fp32` and
    `pt2e-int8` in runtime `inductor`: torch.compile with freezing of the exported FP32 model and of the PT2E
    INT8 program (`quant.pt2e`, default preset, same calibration batches); their size is the file
    `torch.export.save` writes (`<onnx_folder>/model-{fp32,pt2e-int8}.pt2` when a folder is given) and
    `compile_s` the seconds of their first call after torch.compile (NaN for the other rows). Each thread
    count and batch size compiles once more (Inductor bakes the thread count in), in the untimed warm-up.
    With both `qat` and `pt2e`, `qat-pt2e` (torchao's QAT flow, the same fine-tune) joins the Inductor rows.
    `qat_data`: what the QAT fine-tunes train on (e.g. `data.with_train_subset(n)`; default `data`).
    `threads`: None means torch's default (all cores). At each thread count the torch and Inductor variants
    are timed in `blocks` alternating blocks (`metrics.interleaved_latency`), each onnxruntime session on its
    own (its thread pool would slow its neighbours); `others_cpu` is the share of the machine's CPU
    that other processes took meanwhile (`metrics.OthersCpu`; near 0 on a quiet machine, NaN off Linux).
    `size_ratio` and `speedup` are against FP32 in the same runtime at the same thread count; the paired
    columns (`compress.paired`) compare each row's predictions with FP32 PyTorch's on the same images.
    Columns: see COLUMNS.
    """
    fp32 = copy.deepcopy(fp32_model).float().eval()
    batches = [b.cpu() for b in calibration_batches(data.train, calib_batches, calib_batch_size, seed=seed)]
    target = getattr(data, split)

    models = {"fp32": fp32.cpu()}
    acc = {"fp32": evaluate(copy.deepcopy(fp32).to(data.device), target, device=data.device, predictions=True)}
    for preset in presets:
        cfg = Int8Config(preset, backend)
        name = cfg.name
        models[name] = quantize_int8(fp32, cfg, batches)
        acc[name] = evaluate(models[name], target, device="cpu", predictions=True)
    if qat is not None:
        res = quantize_qat(fp32, qat_data or data, qat, QATConfig(Int8Config("optimal", backend)))
        models["qat"] = res.model
        acc["qat"] = res.test if split == "test" else evaluate(res.model, target, device="cpu", predictions=True)
    sizes = {name: (size_mb(m), gzip_size_mb(m)) for name, m in models.items()}
    files = deploy.export_fp32_int8(fp32, onnx_folder, batches) if onnx else {}  # None: a temporary folder
    for name, path in files.items():
        sizes[name] = deploy.file_sizes_mb(path)
        acc[name] = deploy.onnx_evaluate(deploy.onnx_session(path), target, predictions=True)
    compiled = _inductor_variants(fp32, batches, onnx_folder, data=qat_data or data, qat=qat) if pt2e else {}
    for name, (res, path) in compiled.items():
        sizes[("inductor", name)] = deploy.file_sizes_mb(path)
        acc[("inductor", name)] = (res.test if res.test is not None and split == "test"
                                   else evaluate(res.model, target, device="cpu", predictions=True))
    reference = acc["fp32"]["pred"]
    for a in acc.values():
        a.update(paired_difference(a.pop("pred"), reference, target.labels))

    rows = []
    for n in dict.fromkeys(t or torch.get_num_threads() for t in threads):  # distinct counts, in order
        x = torch.randn(batch_size, 3, 32, 32)
        # variants on torch's thread pool (eager, FX, Inductor) alternate block by block; each onnxruntime
        # session has a pool of its own whose spinning threads slow whatever runs next to them (10-30% at 2
        # threads here), so each is timed on its own
        timed = {("torch", name): (lambda m=m.eval(): m(x)) for name, m in models.items()}
        for name, (res, _) in compiled.items():
            timed[("inductor", name)] = lambda m=res.model: m(x)
        lats = interleaved_latency(timed, threads=n, warmup=warmup, runs=runs, blocks=blocks)
        for name, path in files.items():
            runner = deploy.onnx_runner(deploy.onnx_session(path, n), batch_size)
            lats |= interleaved_latency({("onnxruntime", name): runner}, threads=n, warmup=warmup, runs=runs)
        for (runtime, name), lat in lats.items():
            key = name if runtime != "inductor" else (runtime, name)
            compile_s = compiled[name][0].compile_s if runtime == "inductor" else math.nan
            rows.append(_row(name, runtime, split, acc[key], sizes[key], {**lat, "batch_size": batch_size}, compile_s))
    df = pd.DataFrame(rows)
    base = df[df.variant.isin(["fp32", "onnx-fp32"])].set_index(["runtime", "threads"])
    key = list(zip(df.runtime, df.threads))
    df["size_ratio"] = [base.loc[k, "size_mb"] / s for k, s in zip(key, df.size_mb)]
    df["speedup"] = [base.loc[k, "latency_ms"] / lat for k, lat in zip(key, df.latency_ms)]
    return df[COLUMNS]


def _inductor_variants(fp32: nn.Module, batches, folder, *, data: CifarData | None = None,
                       qat: TrainConfig | None = None) -> dict:
    """{variant: (Pt2eResult, saved .pt2 file)} for the FP32, PT2E INT8 and (with `qat`) PT2E QAT models
    under Inductor."""
    from . import pt2e  # torchao is imported only when asked for

    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="compress-pt2e-"))
    out = {"fp32": pt2e.export_fp32(fp32, example=batches[0]),
           "pt2e-int8": pt2e.quantize_pt2e(fp32, pt2e.Pt2eConfig(), batches)}
    if qat is not None and data is not None:
        out["qat-pt2e"] = pt2e.quantize_qat_pt2e(fp32, data, qat, pt2e.Pt2eConfig())
    for name, res in out.items():
        path = folder / f"model-{name}.pt2"
        pt2e.save_pt2e(res, path)
        out[name] = (res, path)
    return out


def _row(variant, runtime, split, acc, sizes, lat, compile_s: float) -> dict:
    return {"variant": variant, "runtime": runtime, "split": split, "top1": acc["top1"], "top5": acc["top5"],
            **{c: acc[c] for c in PAIRED}, "size_mb": sizes[0], "gzip_mb": sizes[1], "threads": lat["threads"],
            "batch_size": lat["batch_size"], "latency_ms": lat["median_ms"], "latency_p90_ms": lat["p90_ms"],
            "others_cpu": math.nan if lat["others_cpu"] is None else lat["others_cpu"], "compile_s": compile_s}


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
        q = quantize_int8(_plain(m), config, cpu_batches)
        return {"variant": name, **_acc(evaluate(q, target, device="cpu", predictions=True)),
                "params": count_params(_plain(m)), "size_mb": size_mb(q), "gzip_mb": gzip_size_mb(q)}

    rows = [fp("original", original), fp("pruned", pruned), int8("pruned+int8", pruned)]
    half = _plain(pruned).half()
    rows.append({"variant": "pruned+float16",
                 **_acc(evaluate(copy.deepcopy(half).float().to(dev), target, device=dev, predictions=True)),
                 "params": count_params(half), "size_mb": size_mb(half), "gzip_mb": gzip_size_mb(half)})
    cfg = FixedPointConfig(param_bits=8, fwd_bits=16, bn_bits=16)
    sim = quantize_fixed_point(_plain(pruned).to(dev), cfg, batches)
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
