"""Deployment check: the same model as ONNX, FP32 and INT8, run and timed in onnxruntime on the CPU.

INT8 ONNX is made the way onnxruntime recommends, not by exporting torch.ao's model (whose quantized ops
the exporters no longer support): the float model is exported, pre-processed (shape inference, graph
optimisation, so BN folds into the convs), then statically quantized to QDQ format with per-channel int8
weights and uint8 activations whose ranges come from the same calibration batches as torch's INT8;
onnxruntime fuses the QDQ pairs into integer kernels (QLinearConv / MatMulInteger) when the session loads.
Export uses the TorchScript exporter (`dynamo=False`): the dynamo one needs onnxscript, not a dependency here.
"""
from __future__ import annotations

import copy
import gzip
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import Batches, Split
from ..metrics import latency_stats, time_callable

INPUT, OUTPUT = "input", "logits"


def export_onnx(model: nn.Module, path: str | Path, *, opset: int = 17) -> Path:
    """The float model (eval mode, CPU copy) as ONNX with a dynamic batch dimension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).float().cpu().eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")  # its internals' notices
        torch.onnx.export(model, (torch.randn(1, 3, 32, 32),), str(path), dynamo=False, opset_version=opset,
                          input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
    return path


def quantize_onnx(fp32_path: str | Path, int8_path: str | Path, calib_batches, *, per_channel: bool = True,
                  reduce_range: bool = False) -> Path:
    """Static QDQ INT8 ONNX from an FP32 ONNX file, calibrated (min-max) on `calib_batches`.

    `reduce_range` (7-bit weights) avoids u8*s8 saturation on pre-VNNI x86 CPUs at a small accuracy cost.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = [x.detach().cpu().float().numpy() for x in calib_batches]
    if not batches:
        raise ValueError("quantize_onnx needs calibration batches: static INT8 sets activation ranges from data")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter({INPUT: b} for b in batches)

        def get_next(self):
            return next(self._it, None)

    int8_path = Path(int8_path)
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "preprocessed.onnx"
        quant_pre_process(str(fp32_path), str(pre))
        quantize_static(str(pre), str(int8_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return int8_path


def onnx_session(path: str | Path, threads: int | None = None):
    """A CPU onnxruntime session with `threads` intra-op threads (None: torch's thread count), all graph
    optimisations, sequential execution."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or torch.get_num_threads()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def onnx_predict(session, x: torch.Tensor) -> torch.Tensor:
    """Logits of a normalised float batch, through onnxruntime."""
    return torch.from_numpy(session.run([OUTPUT], {INPUT: x.detach().cpu().float().numpy()})[0])


def onnx_evaluate(session, split: Split, batch_size: int = 256, predictions: bool = False) -> dict:
    """Top-1 / top-5 accuracy (percent) and mean cross-entropy of an onnxruntime session on `split`
    (`predictions=True`: also `pred`, as in `train.evaluate`)."""
    return evaluate_logits(lambda x: onnx_predict(session, x), split, batch_size, predictions)


def evaluate_logits(predict, split: Split, batch_size: int = 256, predictions: bool = False) -> dict:
    """`train.evaluate` for a runtime outside torch: `predict(x)` maps a normalised CPU float batch to logits."""
    correct1 = correct5 = 0
    loss_sum = 0.0
    preds = []
    split = split.to("cpu")
    for x, y in Batches(split, batch_size, train=False):
        logits = predict(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        top5 = logits.topk(min(5, logits.shape[1]), 1).indices
        correct1 += (top5[:, 0] == y).sum().item()
        correct5 += (top5 == y[:, None]).any(1).sum().item()
        preds.append(top5[:, 0])
    n = max(1, len(split))
    out = {"top1": 100.0 * correct1 / n, "top5": 100.0 * correct5 / n, "loss": loss_sum / n}
    if predictions:
        out["pred"] = torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)
    return out


def onnx_runner(session, batch_size: int = 1):
    """A no-argument callable running `session` once on a random batch: what latency timing calls."""
    feed = {INPUT: np.random.default_rng(0).standard_normal((batch_size, 3, 32, 32), dtype=np.float32)}
    return lambda: session.run([OUTPUT], feed)


def onnx_latency(session, *, batch_size: int = 1, warmup: int = 20, runs: int = 200) -> dict:
    """Median and p90 latency (ms) of one session run at `batch_size`, like `metrics.measure_latency`."""
    times = time_callable(onnx_runner(session, batch_size), warmup=warmup, runs=runs)
    threads = session.get_session_options().intra_op_num_threads
    return {**latency_stats(times), "batch_size": batch_size, "device": "cpu", "threads": threads}


def file_sizes_mb(path: str | Path) -> tuple[float, float]:
    """(raw, gzip -9) size of a file in MB."""
    blob = Path(path).read_bytes()
    return len(blob) / 1e6, len(gzip.compress(blob, compresslevel=9)) / 1e6


def export_fp32_int8(model: nn.Module, folder: str | Path | None, calib_batches, *, name: str = "model",
                     per_channel: bool = True) -> dict[str, Path]:
    """`<folder>/<name>-fp32.onnx` and `<name>-int8.onnx`, ready for onnxruntime."""
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="compress-onnx-"))
    fp32 = export_onnx(model, folder / f"{name}-fp32.onnx")
    int8 = quantize_onnx(fp32, folder / f"{name}-int8.onnx", calib_batches, per_channel=per_channel)
    return {"onnx-fp32": fp32, "onnx-int8": int8}


__all__ = ["export_onnx", "quantize_onnx", "onnx_session", "onnx_predict", "onnx_evaluate", "evaluate_logits", "onnx_runner",
           "onnx_latency",
           "file_sizes_mb", "export_fp32_int8"]
