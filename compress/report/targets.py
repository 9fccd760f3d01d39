"""The project's targets checked against the results tables: one row per target, its measured value, met or not.

Reads only the tables a run wrote (`results/<arch>/*.csv`), like the figures, so the verdicts regenerate with
them (`python -m compress figures` writes `results/targets.md`). A target whose table is missing says so
instead of passing. Accuracy differences are quoted as paired differences on the same test images
(`compress.paired`) where the table carries them.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..schema import quantized_variants
from .summary import figure_label
from .tables import load_tables

BASELINE_TOP1 = {"resnet18": 88.0, "vgg16_bn": 87.0, "vgg16": 84.0}  # final-epoch test top-1, JPEG copy
NOTEBOOK_HOURS = {"resnet18": 4.0, "vgg16_bn": 3.0, "vgg16": 3.0}
# (MAC reduction, parameter reduction, largest drop in points) of the most compressed model asked for
PRUNED = {"resnet18": (19.0, 50.0, 3.0), "vgg16_bn": (8.0, 50.0, 2.0), "vgg16": (8.0, 50.0, 3.0)}
SENSITIVITY = (2.0, 0.5)  # ResNet18: the sensitivity-chosen config's MAC reduction and largest drop
INT8 = (0.3, 3.9, 2.5)  # the carried PTQ preset (`optimal`): largest drop, file size ratio, batch-1 latency speed-up
FIXED_POINT_8 = 0.5  # 8/8/8 linear: largest drop
QAT = 0.1  # within this of FP32, or better than the carried PTQ preset
PRUNED_INT8 = {"resnet18": (150.0, 10.0)}  # file size ratio and batch-1 latency speed-up against FP32
PT2E = (0.3, 2.5, 0.1)  # PT2E INT8 drop, speed-up over FP32 eager (and no slower than FX INT8); PT2E QAT drop


def _delta(row) -> str:
    """`-0.12 ± 0.09` from a row's paired columns, else the plain difference the caller gives."""
    ci = row.get("paired_ci95", math.nan)
    return f"{row['paired_delta']:+.2f} ± {ci:.2f}" if not pd.isna(ci) else f"{row['paired_delta']:+.2f}"


BUSY = 0.1  # a latency timed while other processes took more than this share of the CPU is flagged


def _busy(*tables: pd.DataFrame) -> str:
    """A warning to append to a latency claim when its timing shared the machine (`others_cpu` column)."""
    shares = [v for t in tables if "others_cpu" in t for v in t.others_cpu if not pd.isna(v)]
    worst = max(shares, default=0.0)
    return f" (timed while other processes took {worst:.0%} of the CPU)" if worst > BUSY else ""


def _status(ok: bool | None) -> str:
    return "no data" if ok is None else ("**met**" if ok else "**missed**")


def _row(arch, target, measured, ok) -> dict:
    return {"arch": arch, "target": target, "measured": measured, "status": _status(ok)}


def _last_rounds(pruning: pd.DataFrame) -> pd.DataFrame:
    return pruning[pruning["round"] == pruning.groupby("config")["round"].transform("max")]


def _baseline(arch, t) -> list[dict]:
    goal = BASELINE_TOP1.get(arch)
    if "baseline" not in t or goal is None:
        return [_row(arch, f"baseline >= {goal}%", "no baseline table", None)]
    top1 = float(t["baseline"].test_top1.iloc[0])
    return [_row(arch, f"baseline >= {goal:.1f}%", f"{top1:.2f}%", top1 >= goal)]


def _wall_time(arch, t) -> list[dict]:
    goal = NOTEBOOK_HOURS.get(arch)
    if "timings" not in t:
        return [_row(arch, f"whole notebook <= {goal:g} h", "no timings table", None)]
    timings = t["timings"].drop_duplicates("folder")
    hours = timings.seconds.sum() / 3600
    if "baseline" in t and "wall_seconds" in t["baseline"]:  # a resumed baseline: its whole training
        base = timings[timings.step == "baseline"].seconds.sum()
        hours += max(0.0, float(t["baseline"].wall_seconds.iloc[0]) - base) / 3600
    return [_row(arch, f"whole notebook <= {goal:g} h", f"{hours:.2f} h (sum of step compute times)", hours <= goal)]


def _pruned(arch, t) -> list[dict]:
    macs_x, params_x, drop = PRUNED[arch]
    target = f"a pruned model >= {macs_x:g}x fewer MACs and >= {params_x:g}x fewer params within {drop:g} points"
    if "pruning" not in t:
        return [_row(arch, target, "no pruning table", None)]
    last = _last_rounds(t["pruning"])
    last = last[last["round"] > 0]
    small = last[(last.mac_reduction >= macs_x) & (last.param_reduction >= params_x)]
    if len(small):  # the qualifying configuration most accurate on VALIDATION (test accuracy never picks)
        r = small.sort_values(["final_val_top1", "config"]).iloc[-1]
        ok = r.paired_delta >= -drop
    else:
        r, ok = last.sort_values("macs").iloc[0], False
    rows = [_row(arch, target, f"`{r.config}`: {r.mac_reduction:.1f}x MACs, {r.param_reduction:.1f}x params, "
                 f"{_delta(r)} points", ok)]
    if arch == "resnet18":
        macs_x, drop = SENSITIVITY
        sens = last[last.config == "sensitivity"]
        target = f"the sensitivity-chosen config >= {macs_x:g}x fewer MACs within {drop:g} points"
        if len(sens):
            r = sens.iloc[0]
            rows.append(_row(arch, target, f"{r.mac_reduction:.2f}x MACs, {r.param_reduction:.1f}x params, "
                             f"{_delta(r)} points", r.mac_reduction >= macs_x and r.paired_delta >= -drop))
        else:
            rows.append(_row(arch, target, "no `sensitivity` configuration", None))
    return rows


CARRIED_PRESET = "int8-optimal"  # per-channel weights, histogram activations: the preset the pipeline carries


def _int8(arch, t) -> list[dict]:
    drop, size_x, speed_x = INT8
    target = f"INT8 PTQ (the `optimal` preset, fixed in advance) within {drop:g} points, file >= {size_x:g}x smaller, latency >= {speed_x:g}x lower"
    if "int8" not in t:
        return [_row(arch, target, "no int8 table", None)]
    d = t["int8"]
    ptq = d[d.variant.str.startswith("int8-") & (d.runtime == "torch")]
    if not len(ptq):
        return [_row(arch, target, "no PTQ rows", None)]
    # the preset fixed in advance (the one carried to pruned + INT8), never the one that scored best on test
    best_variant = CARRIED_PRESET if (ptq.variant == CARRIED_PRESET).any() else sorted(ptq.variant)[0]
    rows = ptq[ptq.variant == best_variant].sort_values("threads")
    r = rows.iloc[0]
    speed = ", ".join(f"{s:.1f}x at {int(n)} thread{'s' if n > 1 else ''}" for n, s in zip(rows.threads, rows.speedup))
    ok = r.paired_delta >= -drop and r.size_ratio >= size_x and (rows.speedup >= speed_x).all()
    out = [_row(arch, target, f"`{best_variant}`: {_delta(r)} points, {r.size_ratio:.2f}x smaller, {speed}{_busy(d)}",
                ok)]
    qat = d[(d.variant == "qat") & (d.runtime == "torch")]
    target = f"QAT within {QAT:g} points of FP32, or better than PTQ"
    if len(qat):
        q = qat.iloc[0]
        out.append(_row(arch, target, f"{_delta(q)} points (PTQ {r.paired_delta:+.2f})",
                        q.paired_delta >= -QAT or q.top1 > r.top1))
    else:
        out.append(_row(arch, target, "no QAT row", None))
    return out


def _fixed_point(arch, t) -> list[dict]:
    target = f"fixed point 8/8/8 linear within {FIXED_POINT_8:g} points"
    if "fixed_point" not in t:
        return [_row(arch, target, "no fixed_point table", None)]
    d = t["fixed_point"]
    r = d[(d.method == "linear") & (d.bits == 8)]
    if not len(r):
        return [_row(arch, target, "no 8-bit linear row", None)]
    r = r.iloc[0]
    if "paired_delta" not in r or pd.isna(r.paired_delta):
        r = r.copy()
        r["paired_delta"] = -r.top1_drop
    return [_row(arch, target, f"{_delta(r)} points", r.paired_delta >= -FIXED_POINT_8)]


def _pruned_int8(arch, t) -> list[dict]:
    if arch not in PRUNED_INT8:
        return []
    size_x, speed_x = PRUNED_INT8[arch]
    target = f"pruned + INT8: file >= {size_x:g}x smaller, batch-1 latency >= {speed_x:g}x lower (best runtime)"
    if "pruned_int8" not in t or "int8" not in t or "pruning" not in t or "config" not in t["pruned_int8"]:
        return [_row(arch, target, "no pruned_int8 table with configurations", None)]
    base = t["int8"][(t["int8"].variant == "fp32") & (t["int8"].runtime == "torch")].set_index("threads")
    p = t["pruned_int8"]
    last = _last_rounds(t["pruning"]).set_index("config")
    config = min(p.config.unique(), key=lambda c: last.macs.get(c, math.inf))  # the most compressed one quantized
    q = p[(p.config == config) & quantized_variants(p.variant)]
    torch_int8 = q[(q.variant == "int8-optimal") & (q.runtime == "torch")]
    if not len(torch_int8) or not len(base):
        return [_row(arch, target, f"no INT8 rows for `{config}`", None)]
    size = base.size_mb.iloc[0] / torch_int8.size_mb.iloc[0]
    speeds = []
    for n, g in q.groupby("threads"):
        best = g.sort_values("latency_ms").iloc[0]
        speeds.append((int(n), base.latency_ms[n] / best.latency_ms, f"{best.variant} ({best.runtime})"))
    drop = float(torch_int8.top1.iloc[0] - base.top1.iloc[0])
    text = (f"`{config}` + int8-optimal: {size:.0f}x smaller; "
            + ", ".join(f"{s:.1f}x at {n} thread{'s' if n > 1 else ''} ({how})" for n, s, how in speeds)
            + f"; top-1 {drop:+.2f} points against the FP32 baseline" + _busy(t["int8"], p))
    return [_row(arch, target, text, size >= size_x and all(s >= speed_x for _, s, _ in speeds))]


def _distillation(arch, t) -> list[dict]:
    target = "distillation: with and without the teacher, same ratios (difference reported)"
    if "distillation" not in t or "vs_other_delta" not in t["distillation"]:
        return [_row(arch, target, "no paired distillation table", None)]
    d = t["distillation"]
    final = d[(d["round"] == d["round"].max()) & d.distill.astype(bool)]
    if not len(final):
        return [_row(arch, target, "no distilled final round", None)]
    r = final.iloc[0]
    return [_row(arch, target, f"`{r.config}`, with minus without: {r.vs_other_delta:+.2f} ± {r.vs_other_ci95:.2f} "
                 f"points (McNemar p {r.vs_other_p:.2g})", True)]


def _pt2e(arch, t) -> list[dict]:
    drop, speed_x, qat_drop = PT2E
    target = (f"PT2E INT8 within {drop:g} points, latency >= {speed_x:g}x lower than FP32 eager and no higher "
              f"than FX INT8; PT2E QAT within {qat_drop:g}")
    if "int8" not in t or "pt2e-int8" not in set(t["int8"].variant):
        return [_row(arch, target, "no PT2E rows", None)]
    d = t["int8"].set_index(["variant", "runtime", "threads"])
    present = set(d.index.droplevel(2))

    def rows(variant, runtime):  # that variant's rows by thread count, or None
        return d.xs((variant, runtime), level=("variant", "runtime")) if (variant, runtime) in present else None

    pt2e, eager, fx = rows("pt2e-int8", "inductor"), rows("fp32", "torch"), rows("int8-optimal", "torch")
    r = pt2e.iloc[0]
    parts, ok = [f"{_delta(r)} points"], r.paired_delta >= -drop
    for n in pt2e.index:
        s = eager.latency_ms[n] / pt2e.latency_ms[n]
        vs_fx = "" if fx is None else f", FX {fx.latency_ms[n]:.2f} ms"
        parts.append(f"{pt2e.latency_ms[n]:.2f} ms at {int(n)} thread{'s' if n > 1 else ''} ({s:.1f}x FP32 eager{vs_fx})")
        ok = ok and s >= speed_x and (fx is None or pt2e.latency_ms[n] <= fx.latency_ms[n])
    if rows("qat-pt2e", "inductor") is not None:
        q = rows("qat-pt2e", "inductor").iloc[0]
        parts.append(f"QAT {_delta(q)} points")
        ok = ok and q.paired_delta >= -qat_drop
    return [_row(arch, target, "; ".join(parts) + _busy(t["int8"]), bool(ok))]


CHECKS = (_baseline, _wall_time, _pruned, _int8, _fixed_point, _pruned_int8, _distillation, _pt2e)


def targets_table(results_dir: str | Path, arch: str) -> pd.DataFrame:
    """Every target of `arch` with its measured value and status, from `results_dir/arch/*.csv`."""
    tables = load_tables(results_dir, arch)
    if not tables:
        return pd.DataFrame(columns=["arch", "target", "measured", "status"])
    rows = []
    for check in CHECKS:
        try:
            rows += check(arch, dict(tables))
        except (KeyError, AttributeError, IndexError, ValueError) as e:  # a table of another schema: say so
            rows.append(_row(arch, check.__name__.strip("_").replace("_", " "),
                             f"unreadable table ({type(e).__name__}: {e})", None))
    return pd.DataFrame(rows, columns=["arch", "target", "measured", "status"])


def targets_markdown(results_dir: str | Path, archs, heading: str = "###") -> str:
    """A markdown table per architecture with results: target, measured, status (under `heading` titles)."""
    out = []
    for arch in archs:
        df = targets_table(results_dir, arch)
        if not len(df):
            continue
        provs = load_tables(results_dir, arch, with_provenance=True)[1]
        source = figure_label(provs.get("models") or next(iter(provs.values())))
        out += [f"{heading} {arch}", "", f"Source: {source}.", "", "| target | measured | status |", "| --- | --- | --- |"]
        out += [f"| {r.target} | {r.measured} | {r.status} |" for r in df.itertuples()]
        out.append("")
    return "\n".join(out)
