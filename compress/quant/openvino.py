"""OpenVINO, the x86 deployment runtime CNN users reach for: the FP32 model converted, and INT8 by NNCF
post-training quantization on the same calibration batches as every other INT8 variant here.

FP32 is compiled with `INFERENCE_PRECISION_HINT=f32`: on CPUs with AMX or AVX512-BF16 OpenVINO would otherwise
run an "FP32" model in bf16, and the FP32 row would not be FP32. The INT8 model keeps f32 for what NNCF left
unquantized, for the same reason. Files are OpenVINO IR (`.xml` graph + `.bin` weights); their size is both.
"""
from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data import Split
from .deploy import evaluate_logits


def openvino_available() -> tuple[bool, str]:
    """(True, "") where openvino and nncf import, else (False, why): rows are skipped with the reason said."""
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError as e:
        return False, f"OpenVINO rows need openvino and nncf ({e})"
    return True, ""


def _quiet_import():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import nncf
        import openvino as ov
    nncf.set_log_level(40)  # errors only: its progress bars and INFO lines would bury the run's own
    return ov, nncf


def export_openvino(model: nn.Module, folder: str | Path, calib_batches, *, name: str = "model") -> dict[str, Path]:
    """`<folder>/<name>-openvino-fp32.xml` and `<name>-openvino-int8.xml` (NNCF PTQ, calibrated on
    `calib_batches`), both with a dynamic batch dimension."""
    ov, nncf = _quiet_import()
    if not calib_batches:
        raise ValueError("export_openvino needs calibration batches: NNCF sets activation ranges from data")
    model = model.float().cpu().eval()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # conversion traces with the deprecated torch.jit.trace
        fp32 = ov.convert_model(model, example_input=calib_batches[0][:1].cpu(), input=[(-1, 3, 32, 32)])
        batches = [b.detach().cpu().float().numpy() for b in calib_batches]
        int8 = nncf.quantize(fp32, nncf.Dataset(batches), subset_size=len(batches))
    out = {}
    for variant, graph in (("openvino-fp32", fp32), ("openvino-int8", int8)):
        path = folder / f"{name}-{variant}.xml"
        ov.save_model(graph, str(path), compress_to_fp16=False)  # FP32 weights stay FP32
        out[variant] = path
    return out


def compiled(path: str | Path, threads: int | None = None):
    """The IR at `path` compiled for the CPU: f32 inference precision, latency hint, `threads` threads."""
    ov, _ = _quiet_import()
    config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads())}
    return ov.Core().compile_model(str(path), "CPU", config)


def runner(model, batch_size: int = 1):
    """A no-argument callable running a compiled model once on a random batch: what latency timing calls."""
    request = model.create_infer_request()
    x = np.random.default_rng(0).standard_normal((batch_size, 3, 32, 32), dtype=np.float32)
    return lambda: request.infer({0: x})


def evaluate(model, split: Split, batch_size: int = 256, predictions: bool = False) -> dict:
    """Top-1 / top-5 (percent) and mean cross-entropy of a compiled model on `split`, as `train.evaluate`."""
    return evaluate_logits(lambda x: torch.from_numpy(model(x.float().numpy())[0]), split, batch_size, predictions)


def file_sizes_mb(xml: str | Path) -> tuple[float, float]:
    """(raw, gzip -9) size in MB of an IR: its .xml and .bin together."""
    blob = b"".join(p.read_bytes() for p in (Path(xml), Path(xml).with_suffix(".bin")))
    return len(blob) / 1e6, len(gzip.compress(blob, compresslevel=9)) / 1e6


__all__ = ["openvino_available", "export_openvino", "compiled", "runner", "evaluate", "file_sizes_mb"]
