"""The README's first table: every architecture's baseline, its models pruned to 2-32x fewer MACs and its INT8
model on the official CIFAR-10, beside the literature's baselines, from the published tables alone.

The study is recomputed on the official CIFAR-10 and published table by table, so a cell shows a number only
once the table behind it names that data set in its provenance (`schema.OFFICIAL_DATA_NAME`) and says "not yet
published" until then: the earlier runs on a JPEG copy (docs/results.md) never stand in for it. `python -m
compress figures` rewrites the block, so the table fills in as the study publishes.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import published as pub
from ..schema import OFFICIAL_DATA_NAME as OFFICIAL_NAME
from ..models import ARCHS
from .literature import BASELINES
from .tables import budget_finals, chosen_curve, load_tables

FACTORS = (2, 4, 8, 16, 32)  # the budget points shown: times fewer MACs than the baseline
PENDING = "not yet published"
# one runtime and thread count for every latency of the table, so a row reads as speed-ups
RUNTIME, THREADS = "onnxruntime", 1
FP32_VARIANT, INT8_VARIANT = "onnx-fp32", "onnx-int8"  # the `int8` table's rows of the baseline in that runtime


def is_official(prov: dict) -> bool:
    """Whether a table was computed on the official CIFAR-10 (not the JPEG copy, not synthetic data)."""
    return prov.get("data_source") == OFFICIAL_NAME


def official_tables(results_dir: str | Path, arch: str) -> tuple[dict, dict]:
    """{name: table} and {name: provenance} of the architecture's tables computed on the official CIFAR-10."""
    tables, provs = load_tables(results_dir, arch, with_provenance=True)
    keep = [n for n in tables if is_official(provs[n])]
    return {n: tables[n] for n in keep}, {n: provs[n] for n in keep}


def _link(text: str, arch: str, file: str | None, results_dir: Path, link_from: Path) -> str:
    """`text` linked to the published model file it describes, where one is published."""
    if file is None:
        return text
    path = pub.models_dir(arch, results_dir) / file
    return f"[{text}]({Path(os.path.relpath(path, link_from)).as_posix()})" if path.is_file() else text


def _model_files(arch: str, results_dir: Path) -> dict[str, dict]:
    """{step folder: its manifest record's model} of every published model of `arch`."""
    steps = pub.read_manifest(arch, results_dir)["steps"]
    return {folder: rec["model"] for folder, rec in steps.items() if rec.get("model")}


def _delta(row) -> str:
    ci = row.get("paired_ci95", np.nan)
    return f"{row['paired_delta']:+.2f}" + ("" if pd.isna(ci) else f" ± {ci:.2f}")


def _latency(rows: pd.DataFrame) -> str:
    """`, 9.42 ms` from the one row of a latency table that matches, else that the latency is not yet published."""
    return f", {float(rows.latency_ms.iloc[0]):.2f} ms" if len(rows) else f", latency {PENDING}"


def _int8_rows(t: dict, variant: str) -> pd.DataFrame:
    d = t.get("int8")
    if d is None:
        return pd.DataFrame(columns=["latency_ms"])
    return d[(d.variant == variant) & (d.runtime == RUNTIME) & (d.threads == THREADS)]


def baseline_cell(arch: str, t: dict, provs: dict, models: dict, results_dir: Path, link_from: Path) -> str:
    """Our baseline's top-1, the epochs it trained and its latency."""
    if "baseline" not in t:
        return PENDING
    top1 = float(t["baseline"].test_top1.iloc[0])
    profile = provs["baseline"].get("config", {}).get("profile", {})
    epochs = (profile.get("arch_epochs") or {}).get(arch, profile.get("epochs"))
    # the published baseline file whose recorded top-1 is this one: the model the number comes from
    file = next((m["file"] for m in models.values() if m["file"] == "baseline.pt" and m.get("test_top1") is not None
                 and abs(float(m["test_top1"]) - top1) < 0.005), None)
    trained = f" ({epochs} epochs)" if epochs else ""
    return _link(f"{top1:.2f}", arch, file, results_dir, link_from) + trained + _latency(_int8_rows(t, FP32_VARIANT))


def budget_cells(arch: str, t: dict, models: dict, results_dir: Path, link_from: Path) -> list[str]:
    """Per factor of `FACTORS`: the final model of the method chosen on validation (main seed) at that budget,
    its top-1, paired drop and latency, or `PENDING` where the sweep has not reached it."""
    if "budget" not in t:
        return [PENDING] * len(FACTORS)
    chosen = chosen_curve(budget_finals(t["budget"]))
    timed = t.get("budget_latency")
    out = []
    for factor in FACTORS:
        rows = chosen[np.isclose(chosen.target.astype(float), factor)]
        if not len(rows):
            out.append(PENDING)
            continue
        r = rows.iloc[0]
        lat = pd.DataFrame(columns=["latency_ms"]) if timed is None else timed[
            (timed.kind == "pruned") & (timed.method == r.method) & np.isclose(timed.target.astype(float), factor)
            & (timed.variant == "fp32") & (timed.runtime == RUNTIME) & (timed.threads == THREADS)]
        file = (models.get(str(r.get("step"))) or {}).get("file")
        out.append(f"{_link(f'{r.test_top1:.2f}', arch, file, results_dir, link_from)} ({_delta(r)}){_latency(lat)}")
    return out


def int8_cell(t: dict) -> str:
    """The baseline in static INT8 (onnxruntime): top-1, paired drop against FP32, latency."""
    rows = _int8_rows(t, INT8_VARIANT)
    if not len(rows):
        return PENDING
    r = rows.iloc[0]
    return f"{r.top1:.2f} ({_delta(r)}){_latency(rows)}"


def literature_cell(arch: str) -> str:
    """Each published baseline recorded for `arch` (`literature.BASELINES`) with its epochs, or that none is."""
    found = [b for b in BASELINES if b.arch == arch]
    if not found:
        return "none recorded (`compress/report/literature.py`)"
    return "<br>".join(f"{b.top1:.2f}: {b.model}, {b.work} ({b.epochs})" for b in found)


def study_markdown(results_dir: str | Path, archs=ARCHS, link_from: str | Path | None = None) -> str:
    """The table, one row per architecture, and the lines that say how to read it and where each number ran."""
    results_dir = Path(results_dir)
    link_from = Path(link_from) if link_from is not None else results_dir.parent
    head = ["architecture", "baseline top-1 %", "literature's baseline", *[f"{f}x fewer MACs" for f in FACTORS], "INT8"]
    out = ["| " + " | ".join(head) + " |", "| --- | ---: | --- | " + " | ".join(["---:"] * (len(FACTORS) + 1)) + " |"]
    devices = {}
    for arch in archs:
        t, provs = official_tables(results_dir, arch)
        models = _model_files(arch, results_dir)
        cells = [baseline_cell(arch, t, provs, models, results_dir, link_from), literature_cell(arch),
                 *budget_cells(arch, t, models, results_dir, link_from), int8_cell(t)]
        out.append(f"| {arch} | " + " | ".join(cells) + " |")
        timed = [provs[n].get("device") for n in ("int8", "budget_latency") if n in provs]
        if timed:
            devices[arch] = "; ".join(dict.fromkeys(str(d) for d in timed))
    pilot = Path(os.path.relpath(results_dir.parent / "docs" / "results.md", link_from)).as_posix()
    out += ["", f"Test top-1 % on the official CIFAR-10 (final epoch); in brackets the difference to the baseline in "
                f"points ± its paired 95% interval on the same test images. A budget point is the model pruned to that "
                f"many times fewer MACs by the allocation method chosen on validation, then fine-tuned; INT8 is the "
                f"baseline in static INT8. Latency: {RUNTIME}, batch 1, {THREADS} thread, median"
                + (": " + "; ".join(f"{a} on {d}" for a, d in devices.items()) if devices else "") + ".", "",
            f"\"{PENDING}\": the study is being recomputed on the official CIFAR-10 and each cell fills in as its "
            f"table is published (`python -m compress figures`); the earlier runs on a JPEG copy of CIFAR-10, a "
            f"harder data set, are in [docs/results.md]({pilot}). The literature's figures are as their sources give "
            f"them, often the best test epoch (`compress/report/literature.py` names each source)."]
    return "\n".join(out)
