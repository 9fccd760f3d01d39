"""Quantization: simulated fixed point, static INT8 (torch.ao), QAT, and ONNX deployment checks.

    quantize_fixed_point(model, FixedPointConfig(param_bits, fwd_bits, bn_bits, method), calib_batches)
    quantize_int8(model, Int8Config(preset, backend), calib_batches)      # CPU-only INT8 model
    quantize_qat(model, data, train_config, QATConfig(int8=Int8Config()))  # -> QATResult
    export_fp32_int8(model, folder, calib_batches)                       # ONNX FP32 + QDQ INT8
    fixed_point_table / compare_int8 / pruned_int8_table                 # tidy DataFrames

Each config is a small frozen dataclass validated on creation; each function returns a new model and
leaves its input untouched. All torch.ao calls live in `int8.py`.
"""
from .deploy import (export_fp32_int8, export_onnx, onnx_evaluate, onnx_latency, onnx_predict, onnx_session,
                     quantize_onnx)
from .fixed_point import METHODS, FixedPointConfig, fixed_point_table, quantize_fixed_point
from .int8 import BACKENDS, PRESETS, Int8Config, calibrate, convert_int8, prepare_int8, quantize_int8
from .qat import QATConfig, QATResult, quantize_qat
from .report import compare_int8, pruned_int8_table

__all__ = ["METHODS", "FixedPointConfig", "quantize_fixed_point", "fixed_point_table",
           "PRESETS", "BACKENDS", "Int8Config", "prepare_int8", "calibrate", "convert_int8", "quantize_int8",
           "QATConfig", "QATResult", "quantize_qat",
           "export_onnx", "quantize_onnx", "export_fp32_int8", "onnx_session", "onnx_predict", "onnx_evaluate",
           "onnx_latency", "compare_int8", "pruned_int8_table"]
