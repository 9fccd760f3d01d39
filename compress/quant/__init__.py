"""Quantization: simulated fixed point, static INT8 (torch.ao; PT2E with torchao), QAT, and ONNX deployment checks.

    quantize_fixed_point(model, FixedPointConfig(param_bits, fwd_bits, bn_bits, method), calib_batches)  # -> Quantized
    quantize_int8(model, Int8Config(preset, backend), calib_batches)      # -> Quantized (CPU-only INT8 model)
    quantize_qat(model, data, train_config, QATConfig(int8=Int8Config()))  # -> Quantized with fit, test
    quantize_pt2e(model, Pt2eConfig(preset), calib_batches)              # -> Quantized (Inductor INT8, program)
    quantize_qat_pt2e(model, data, train_config, Pt2eConfig())           # -> Quantized with fit, test, program
    export_fp32_int8(model, folder, calib_batches)                       # ONNX FP32 + QDQ INT8
    fixed_point_table / compare_int8 / pruned_int8_table                 # tidy DataFrames

Each config is a small frozen dataclass validated on creation; each verb returns a `Quantized` (`.model`, `.config`,
and what only some have) and leaves its input untouched. All torch.ao calls live in `int8.py`; all torchao calls in `pt2e.py`, which
imports torchao only when used (`pt2e_available()` says whether it can run here).
"""
from .deploy import (export_fp32_int8, export_onnx, onnx_evaluate, onnx_latency, onnx_predict, onnx_runner,
                     onnx_session, quantize_onnx)
from .fixed_point import METHODS, FixedPointConfig, fixed_point_table, quantize_fixed_point
from .int8 import BACKENDS, PRESETS, Int8Config, calibrate, convert_int8, prepare_int8, quantize_int8
from .pt2e import (PT2E_PRESETS, Pt2eConfig, Pt2eModule, export_fp32, load_pt2e, pt2e_available,
                   quantize_pt2e, quantize_qat_pt2e, save_pt2e)
from .qat import QATConfig, quantize_qat
from .result import Quantized
from .compare import Int8Comparison, compare_int8, pruned_int8_table

__all__ = ["METHODS", "FixedPointConfig", "quantize_fixed_point", "fixed_point_table",
           "PRESETS", "BACKENDS", "Int8Config", "prepare_int8", "calibrate", "convert_int8", "quantize_int8",
           "QATConfig", "quantize_qat", "Quantized",
           "PT2E_PRESETS", "Pt2eConfig", "Pt2eModule", "pt2e_available", "quantize_pt2e",
           "quantize_qat_pt2e", "export_fp32", "save_pt2e", "load_pt2e",
           "export_onnx", "quantize_onnx", "export_fp32_int8", "onnx_session", "onnx_predict", "onnx_evaluate",
           "onnx_latency", "onnx_runner", "Int8Comparison", "compare_int8", "pruned_int8_table"]
