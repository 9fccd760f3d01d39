"""Quantization and sparsity steps: fixed point, INT8 (PTQ presets, QAT, onnxruntime), the sparse model,
and pruned / sparse + INT8. Each is cached by the weights it starts from and its settings."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from torch import nn

from .. import metrics
from ..quant import METHODS as FIXED_POINT_METHODS, PRESETS as INT8_PRESETS, Int8Comparison, Int8Config, compare_int8, fixed_point_table, pruned_int8_table, pt2e_available
from ..quant.openvino import openvino_available
from .cache import fingerprint
from .keys import qat_config as _qat_config
from ..files import read_table, write_table
from ..schema import variant_precision
from ..train import TrainConfig, evaluate
from .session import Session

def _cached_table(s: Session, name: str, key: dict, make) -> tuple[pd.DataFrame, Path]:
    """Run `make()` -> DataFrame once per key; the table is stored with provenance in the step folder.
    Returns it with that folder."""
    def compute(folder: Path) -> None:
        own = {k: v for k, v in key.items() if k not in ("arch", "seed", "data")}
        write_table(folder / f"{name}.csv", make(), s.provenance({"step": name, **own}))

    folder, _ = s.run(name, key, compute)
    return read_table(folder / f"{name}.csv")[0], folder


def _calib(s: Session) -> dict:
    return {"calib_batches": s.profile.calib_batches, "calib_batch_size": s.profile.calib_batch_size}


def qat_config(s: Session) -> TrainConfig:
    return _qat_config(s.profile, s.seed)


def fixed_point(s: Session, model: nn.Module, bits=None, methods=FIXED_POINT_METHODS) -> pd.DataFrame:
    """Test accuracy of simulated fixed point at each bit width (default: the profile's) and method."""
    bits = tuple(s.profile.fixed_point_bits if bits is None else bits)
    key = s.key("fixed_point", baseline=fingerprint(model), methods=list(methods), **{**s.reads("fixed_point"), "bits": list(bits)})
    table, folder = _cached_table(s, "fixed_point", key, lambda: fixed_point_table(
        model, s.data, bits, methods, arch=s.arch, seed=s.seed, **_calib(s)))
    return s.record("fixed_point", table, steps=[folder])


def _rows_wanted(wanted: bool, available, what: str) -> bool:
    """A runtime's rows where asked for and its packages import; where they do not, one line says why."""
    if not wanted:
        return False
    ok, why = available()
    if not ok:
        print(f"{what} rows skipped: {why}", flush=True)
    return ok


def _int8_table(s: Session, model: nn.Module, step: str, presets=INT8_PRESETS, *, backend: str = "x86",
                qat: bool = True, onnx: bool = True, pt2e: bool | None = None,
                baseline: nn.Module | None = None) -> tuple[pd.DataFrame, Path]:
    cfg = qat_config(s) if qat else None
    p = s.profile
    pt2e = _rows_wanted(p.pt2e if pt2e is None else pt2e, pt2e_available, "PT2E")
    openvino = _rows_wanted(p.openvino, openvino_available, "OpenVINO")
    reads = {**s.reads(step), "pt2e": pt2e, "openvino": openvino, "qat": cfg.identity() if cfg else None}  # as asked and as available
    key = s.key(step, model=fingerprint(model), presets=list(presets), backend=backend,
                onnx=onnx, baseline=fingerprint(baseline) if baseline is not None else None, **reads)
    comparison = Int8Comparison(presets=presets, backend=backend, qat=cfg, onnx=onnx, openvino=openvino, pt2e=pt2e,
                                threads=p.latency_threads, runs=p.latency_runs, warmup=p.latency_warmup,
                                processes=p.latency_processes, seed=s.seed, **_calib(s))
    return _cached_table(s, step, key, lambda: compare_int8(
        model, s.data, comparison, qat_data=s.data.with_train_subset(p.qat_train_size, s.seed),
        baseline_pred=None if baseline is None else evaluate(baseline, s.data.test, predictions=True)["pred"]))


def _add_quant_models(s: Session, table: pd.DataFrame, base_name: str, family: str, costs: dict) -> None:
    """File each variant (at the largest thread count) as a model of the accuracy-vs-cost table.

    The FP32 PyTorch row is `base_name` itself (adding its measured latency); the others are
    `<base_name>+<variant>`, e.g. `pruned:aggressive+int8-optimal` (`@<runtime>` outside torch and onnxruntime).
    The table pairs each row with FP32 PyTorch on `base_name`: the models table keeps that pairing only when
    `base_name` is the baseline.
    """
    top = table[table.threads == table.threads.max()]
    for _, r in top.iterrows():
        name = base_name if r.variant == "fp32" and r.runtime == "torch" else f"{base_name}+{r.variant}"
        if r.runtime not in ("torch", "onnxruntime"):
            name = f"{base_name}+{r.variant}@{r.runtime}"
        if base_name == "baseline":
            paired = {c: r.get(c) for c in ("paired_ci95", "mcnemar_p")}
        elif name == base_name:  # the pruned FP32 model: keep its pairing against the baseline (its own step's)
            paired = {c: s.models.get(name, {}).get(c) for c in ("paired_ci95", "mcnemar_p")}
        elif "vs_baseline_ci95" in r and not pd.isna(r.vs_baseline_ci95):  # paired with the baseline in its step
            paired = {"paired_ci95": r.vs_baseline_ci95, "mcnemar_p": r.vs_baseline_p}
        else:  # a table from before `vs_baseline_*`: paired with the pruned FP32 model only, no interval here
            paired = {}
        s.add_model(name, family, {**costs, "top1": r.top1, "size_mb": r.size_mb, "gzip_mb": r.gzip_mb,
                                   "latency_ms": r.latency_ms, "latency_threads": r.threads, **paired},
                    precision=variant_precision(r.variant), runtime=r.runtime)


def int8(s: Session, model: nn.Module, *, backend: str = "x86", qat: bool = True, onnx: bool = True,
         pt2e: bool | None = None) -> pd.DataFrame:
    """FP32 vs INT8 PTQ (default and optimal presets) vs QAT, in PyTorch, onnxruntime and (PT2E, where torchao
    runs) Inductor, at 1 and all threads."""
    table, folder = _int8_table(s, model, "int8", backend=backend, qat=qat, onnx=onnx, pt2e=pt2e)
    s.record("int8", table, steps=[folder])
    costs = {"params": metrics.count_params(model), "macs": metrics.count_macs(model)}
    _add_quant_models(s, table, "baseline", "baseline", costs)
    return table


def pruned_int8(s: Session, pruned: nn.Module, config: str, *, backend: str = "x86", qat: bool = True,
                onnx: bool = True, pt2e: bool | None = None, baseline: nn.Module | None = None) -> pd.DataFrame:
    """The pruned model of configuration `config` against its INT8 versions (PTQ `optimal`, QAT, onnxruntime,
    PT2E), as `int8` does for the baseline; with `baseline`, each row is also paired with it (`vs_baseline_*`).
    Rows join the session's `pruned_int8` table under `config`
    (one table for every configuration quantized); returns this configuration's rows."""
    table, folder = _int8_table(s, pruned, "pruned_int8", presets=("optimal",), backend=backend, qat=qat,
                                onnx=onnx, pt2e=pt2e, baseline=baseline)
    table = table.assign(config=config)
    before = s.tables.get("pruned_int8")
    kept = before[before.config != config] if before is not None and "config" in before else None
    steps = [*s.table_steps.get("pruned_int8", []), folder.name] if kept is not None else [folder]
    s.record("pruned_int8", table if kept is None else pd.concat([kept, table], ignore_index=True), steps=steps)
    costs = {"params": metrics.count_params(pruned), "macs": metrics.count_macs(pruned)}
    _add_quant_models(s, table, f"pruned:{config}", "pruned", costs)
    return table


def combined(s: Session, baseline: nn.Module, pruned: nn.Module, config: str, sparse_model: nn.Module | None = None,
             *, backend: str = "x86") -> pd.DataFrame:
    """The pruned model `pruned` (configuration `config`) and the sparse model, each with INT8: the `combined`
    table (as the original project's: original / pruned / pruned+INT8 / pruned+float16 / int16-act int8-weight / sparse /
    sparse+INT8). The runtimes' comparison of the pruned model is `pruned_int8`, a step of its own."""
    key = s.key("combined", baseline=fingerprint(baseline), pruned=fingerprint(pruned),
                sparse=fingerprint(sparse_model) if sparse_model is not None else None,
                backend=backend, **s.reads("combined"))
    table, folder = _cached_table(s, "combined", key, lambda: pruned_int8_table(
        baseline, pruned, s.data, sparse=sparse_model, config=Int8Config("optimal", backend), seed=s.seed, **_calib(s)))
    return s.record("combined", table.assign(config=config), steps=[folder])
