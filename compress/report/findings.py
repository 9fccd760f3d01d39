"""The results prose of docs/results.md, written from the committed tables alone: every number a sentence quotes is a
cell of a results table or a ratio of two cells named beside it, so the prose can never drift from the tables
(`python -m compress figures` rewrites it with the figures; a test checks the committed page against it).

What it cannot know (why a layer is sensitive, what a caveat means) stays outside the generated block, in
words without numbers.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .tables import budget_finals, chosen_curve, load_tables


FP32_VARIANTS = ("fp32", "onnx-fp32", "openvino-fp32")


def _pm(delta, ci) -> str:
    """`-0.19 ± 0.24`, or the bare difference where no interval exists (never a silent point estimate)."""
    if pd.isna(delta):
        return "no difference recorded"
    return f"{delta:+.2f}" + ("" if pd.isna(ci) else f" ± {ci:.2f}")


def _baseline(t: dict) -> str | None:
    b = t.get("baseline")
    if b is None or not len(b):
        return None
    r = b.iloc[0]
    epochs = len(t["history"]) if "history" in t else None
    return f"**Baseline {r.test_top1:.2f}%**" + (f" after {epochs} epochs" if epochs else "") + " (`baseline.csv`)."


def _pruning(t: dict) -> str | None:
    rounds = t.get("pruning")
    if rounds is None or not len(rounds):
        return None
    parts = []
    for config, d in rounds.groupby("config", sort=False):
        last = d[d["round"] == d["round"].max()].iloc[0]
        chosen = " (carried forward on validation)" if bool(last.get("selected", False)) else ""
        parts.append(f"`{config}`{chosen} {last.test_top1:.2f}% ({_pm(last.paired_delta, last.paired_ci95)}) at "
                     f"{last.param_reduction:.1f}x fewer parameters and {last.mac_reduction:.2f}x fewer MACs after "
                     f"{int(last['round'])} rounds")
    return "**Pruning** (`pruning.csv`, last round against the baseline): " + "; ".join(parts) + "."


def _distillation(t: dict) -> str | None:
    d = t.get("distillation")
    if d is None or not len(d) or "vs_other_delta" not in d:
        return None
    last = d[(d["round"] == d["round"].max()) & (d.distill.astype(str).str.lower() == "true")]
    if not len(last):
        return None
    r = last.iloc[0]
    return (f"**Distillation** from the baseline, with against without, same ratios and rounds (`distillation.csv`): "
            f"{_pm(r.vs_other_delta, r.vs_other_ci95)} points (p {r.vs_other_p:.2f}).")


def _timing(r) -> str:
    """What a latency is worth: flagged where its fresh processes disagreed by more than the limit."""
    if "flagged" in r._fields and bool(r.flagged):
        return f", spread {r.spread:.0%}: flagged"
    return ""


def _int8(t: dict) -> str | None:
    d = t.get("int8")
    if d is None or not len(d):
        return None
    one = d[d.threads == d.threads.min()]
    parts = []
    for r in one.itertuples():
        if r.variant in FP32_VARIANTS:
            continue
        parts.append(f"{r.variant} ({r.runtime}) {_pm(r.paired_delta, r.paired_ci95)}, {r.size_ratio:.1f}x smaller, "
                     f"{r.latency_ms:.2f} ms ({r.speedup:.1f}x FP32 in {r.runtime}{_timing(r)})")
    fp32 = one[one.variant.isin(FP32_VARIANTS)]
    ref = ", ".join(f"{r.runtime} {r.latency_ms:.2f} ms" for r in fp32.itertuples())
    threads = int(one.threads.min())
    how = ("the median of fresh processes" if "processes" in one
           else "timed inside the pipeline, before latency came from fresh processes")
    return (f"**INT8** (`int8.csv`; accuracy paired with FP32 PyTorch; latency batch 1 at {threads} thread"
            f"{'s' if threads > 1 else ''}, {how}; speed-ups in the same runtime): FP32 {ref}; " + "; ".join(parts) + ".")


def _fixed_point(t: dict) -> str | None:
    d = t.get("fixed_point")
    if d is None or not len(d):
        return None
    parts = [f"{bits} bits " + ", ".join(f"{r.method} {_pm(r.paired_delta, r.paired_ci95)}"
                                         for r in d[d.bits == bits].itertuples())
             for bits in sorted(d.bits.unique(), reverse=True) if bits < 32]
    return "**Fixed point** (`fixed_point.csv`, each against float on the same images): " + "; ".join(parts) + "."


def _sparse(t: dict) -> str | None:
    d = t.get("sparse")
    if d is None or not len(d):
        return None
    r = d.iloc[0]
    return (f"**Sparsity** {r.sparsity:.0%} unstructured (`sparse.csv`): {r.test_top1:.2f}% "
            f"({_pm(r.paired_delta, r.paired_ci95)}); the gzip file {r.gzip_reduction:.1f}x smaller.")


def _pruned_int8(t: dict) -> str | None:
    d, base = t.get("pruned_int8"), t.get("int8")
    if d is None or not len(d) or base is None:
        return None
    one, ref = d[d.threads == d.threads.min()], base[base.threads == base.threads.min()].set_index(["variant", "runtime"])
    parts = []
    for config, g in one.groupby("config", sort=False):
        for r in g.itertuples():
            if r.variant != "onnx-int8" or ("onnx-fp32", "onnxruntime") not in ref.index:
                continue
            b = ref.loc[("onnx-fp32", "onnxruntime")]
            vs = (f" ({_pm(r.vs_baseline_delta, r.vs_baseline_ci95)} against the baseline)"
                  if "vs_baseline_delta" in g and not pd.isna(r.vs_baseline_delta)
                  else " (paired only with the pruned FP32 model in this run)")
            parts.append(f"`{config}` + onnxruntime INT8 {r.top1:.2f}%{vs}, {r.size_mb:.3f} MB "
                         f"({b.size_mb / r.size_mb:.0f}x smaller than the baseline's FP32 .onnx), {r.latency_ms:.3f} ms "
                         f"({b.latency_ms / r.latency_ms:.0f}x faster than the baseline FP32 in onnxruntime{_timing(r)})")
    return ("**Pruned + INT8** (`pruned_int8.csv` against `int8.csv`, same runtime, batch 1 at 1 thread): "
            + "; ".join(parts) + ".") if parts else None


def _budget(t: dict) -> str | None:
    d = t.get("budget")
    if d is None or not len(d):
        return None
    last = budget_finals(d)
    chosen = chosen_curve(last)
    parts = [f"{r.target:g}x: {r.test_top1:.2f}% ({_pm(r.paired_delta, r.paired_ci95)}; against the equal-budget "
             f"model {_pm(r.vs_equal_delta, r.vs_equal_ci95)}) at {r.mac_reduction:.2f}x fewer MACs"
             for r in chosen.itertuples()]
    method = chosen.method.iloc[0] if len(chosen) else "?"
    sweep = t.get("_budget_sweep") or {}
    partial = (f"; a partial sweep, {sweep['runs_done']} of its {sweep['runs_planned']} runs finished"
               if sweep and sweep["runs_done"] < sweep["runs_planned"] else "")
    out = [f"**Pruning to a budget** (`budget.csv`, method `{method}` chosen on validation{partial}; each against the "
           f"baseline): " + "; ".join(parts) + "."]
    others = last[(last.kind == "pruned") & ~last.selected.astype(bool)]
    if len(others):
        out.append("Other methods: " + "; ".join(f"{r.method} {r.target:g}x {r.test_top1:.2f}% "
                                                 f"({_pm(r.paired_delta, r.paired_ci95)})" for r in others.itertuples()) + ".")
    scratch, equal = last[last.kind == "scratch"], last[last.kind == "equal_budget"]
    if len(equal):
        r = equal.iloc[0]
        out.append(f"Equal budget (the baseline fine-tuned as long, unpruned): {r.test_top1:.2f}% "
                   f"({_pm(r.paired_delta, r.paired_ci95)}).")
    if len(scratch):
        out.append("From scratch: " + "; ".join(f"{r.target:g}x {r.test_top1:.2f}% ({_pm(r.paired_delta, r.paired_ci95)})"
                                                for r in scratch.itertuples()) + ".")
    repeats = last[(last.kind == "pruned") & last.selected.astype(bool)]
    for target, g in repeats.groupby("target"):
        if g.seed.nunique() > 1:
            out.append(f"Seed spread at {target:g}x ({g.seed.nunique()} fine-tune seeds): standard deviation "
                       f"{g.test_top1.std(ddof=1):.2f} points.")
    return " ".join(out)


SECTIONS = (_baseline, _budget, _pruning, _distillation, _int8, _fixed_point, _sparse, _pruned_int8)


def _written(section, tables: dict, arch: str) -> str | None:
    """One section's bullet, or None with one line saying why where a table lacks what it reads (an older schema)."""
    try:
        return section(tables)
    except (KeyError, AttributeError) as e:
        print(f"findings: {arch} {section.__name__.lstrip('_')} skipped: its table lacks {e}")
        return None


def findings_markdown(results_dir: str | Path, archs, heading: str = "####") -> str:
    """Per architecture with results: one bullet per finding, each naming the table it reads."""
    out = []
    for arch in archs:
        tables, provs = load_tables(results_dir, arch, with_provenance=True)
        tables["_budget_sweep"] = (provs.get("budget") or {}).get("sweep")
        bullets = [b for b in (_written(f, tables, arch) for f in SECTIONS) if b]
        if bullets:
            out += [f"{heading} What {arch} shows", "", *[f"* {b}" for b in bullets], ""]
    return "\n".join(out)
