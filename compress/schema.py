"""The typed facts the tables carry, declared once: writers fill these columns and readers (the report) select
on them, so nothing is ever recovered by parsing a display label such as "pruned (INT8, onnxruntime)".

A model of the accuracy-vs-cost table is a `family` (what was done to the baseline), a `precision` and a
`runtime`; its `kind` is only the label drawn from those three (`model_kind`). The INT8 tables name each
`variant` from a closed set whose precision is declared here (`VARIANT_PRECISION`).
"""
from __future__ import annotations

import pandas as pd

# the name every table's provenance gives the official CIFAR-10 (`data_source`), however it was read
OFFICIAL_DATA_NAME = "CIFAR-10 (official)"

FAMILIES = ("baseline", "pruned", "sparse")
PRECISIONS = ("FP32", "INT8")
RUNTIMES = ("torch", "onnxruntime", "inductor", "openvino")

# paired_ci95 / mcnemar_p: of the difference to the baseline on the same test images (`compress.paired`),
# where the step that made the model paired it with the baseline; empty otherwise
MODEL_COLUMNS = ["model", "family", "precision", "runtime", "kind", "top1", "paired_ci95", "mcnemar_p", "params",
                 "macs", "size_mb", "gzip_mb", "latency_ms", "latency_threads"]

# every variant `compare_int8` writes (`int8-<preset>` for each of `quant.int8.PRESETS`), with its precision; the FP32 ones are each runtime's reference row
VARIANT_PRECISION = {"fp32": "FP32", "onnx-fp32": "FP32", "openvino-fp32": "FP32",
                     "int8-default": "INT8", "int8-optimal": "INT8", "qat": "INT8", "onnx-int8": "INT8",
                     "openvino-int8": "INT8", "pt2e-int8": "INT8", "qat-pt2e": "INT8"}
FP32_VARIANTS = tuple(v for v, p in VARIANT_PRECISION.items() if p == "FP32")


def variant_precision(variant: str) -> str:
    """FP32 or INT8 for a variant of an INT8 table; an unknown variant is an error, not a guess."""
    try:
        return VARIANT_PRECISION[variant]
    except KeyError:
        raise ValueError(f"unknown INT8-table variant {variant!r}; known: {sorted(VARIANT_PRECISION)}") from None


def quantized_variants(variants: pd.Series) -> pd.Series:
    """Which rows of an INT8 table hold a quantized model."""
    return variants.map(variant_precision) == "INT8"


def model_kind(family: str, precision: str, runtime: str) -> str:
    """The display label of a models-table row, e.g. `pruned (INT8, onnxruntime)`: drawn, never read back."""
    if family not in FAMILIES or precision not in PRECISIONS or runtime not in RUNTIMES:
        raise ValueError(f"not a model kind: family {family!r} ({FAMILIES}), precision {precision!r} "
                         f"({PRECISIONS}), runtime {runtime!r} ({RUNTIMES})")
    return f"{family} ({precision}{'' if runtime == 'torch' else ', ' + runtime})"
