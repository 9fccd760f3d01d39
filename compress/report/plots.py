"""Every figure, drawn from results tables only (never from live models), so `python -m compress figures`
can regenerate the README's figures from committed tables without training anything.

Each function takes a tidy DataFrame and returns a matplotlib Figure with a title, labelled axes (with
units) and a legend; `save` writes it atomically.
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..files import atomic_write_bytes
from ..schema import model_kind
from .tables import budget_finals


def save(fig, path: str | Path, dpi: int = 120) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def log_ticks(axis) -> None:
    """Plain numbers on a log axis (30, 50, 100, 200; never 3x10^1), the minor ticks at 2x, 3x and 5x labelled
    too, so a span of less than a decade still reads."""
    def plain(v, _):
        return f"{v:g}"

    def some(v, _):
        mantissa = round(v / 10 ** np.floor(np.log10(v)), 6) if v > 0 else 0
        return f"{v:g}" if mantissa in (2.0, 3.0, 5.0) else ""

    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(plain))
    axis.set_minor_formatter(matplotlib.ticker.FuncFormatter(some))


def _legend(ax, **kw):
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=7, **kw)


def training_curves(history: pd.DataFrame, title: str = "Baseline training") -> plt.Figure:
    """Validation accuracy and training loss per epoch."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
    a1.plot(history.epoch, history.val_top1, marker=".", label="validation top-1")
    a1.plot(history.epoch, history.train_top1, marker=".", label="train top-1 (augmented)")
    a1.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    a2.plot(history.epoch, history.train_loss, marker=".", label="train loss")
    a2.plot(history.epoch, history.val_loss, marker=".", label="validation loss")
    a2.set(xlabel="epoch", ylabel="cross-entropy (nats)", title="loss")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        _legend(a)
    fig.suptitle(title)
    return fig


def l1_ranking(l1: pd.DataFrame, title: str = "Filters ranked by L1 norm (Li et al. 2017)") -> plt.Figure:
    """Per conv layer, its filters' L1 norms sorted and normalised by the largest, against the filter's rank."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    layers = list(dict.fromkeys(l1.layer))
    cmap = plt.get_cmap("viridis", max(2, len(layers)))
    for i, layer in enumerate(layers):
        d = l1[l1.layer == layer].sort_values("rank")
        ax.plot(100 * d["rank"] / max(1, d["rank"].max()), d.normalized, color=cmap(i), label=layer, lw=1.2)
    ax.set(xlabel="filter rank (% of the layer's filters, strongest first)", ylabel="L1 norm / largest L1 norm", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2, bbox_to_anchor=(1.02, 1), loc="upper left")
    return fig


def sensitivity(scan: pd.DataFrame, title: str = "Sensitivity: each conv layer pruned alone") -> plt.Figure:
    """Top-1 and top-5 validation accuracy against the fraction of filters removed, one line per layer."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    layers = list(dict.fromkeys(scan.layer))
    cmap = plt.get_cmap("viridis", max(2, len(layers)))
    for metric, ax in zip(("top1", "top5"), axes):
        for i, layer in enumerate(layers):
            d = scan[scan.layer == layer].sort_values("ratio")
            ax.plot(100 * d.ratio, d[metric], marker=".", color=cmap(i), label=layer, lw=1)
        ax.set(xlabel="filters pruned in the layer (%)", ylabel=f"validation {metric} accuracy (%)", title=metric)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=6, ncol=2, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.suptitle(title)
    return fig


def pruning_rounds(rounds: pd.DataFrame, title: str = "Iterative pruning: cost and accuracy per round") -> plt.Figure:
    """Params, MACs, size and accuracy (final and mean over the fine-tune) per round, one line per config."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    panels = [("params", 1e6, "parameters (millions, log scale)"), ("macs", 1e6, "MACs per image (millions, log scale)"),
              ("size_mb", 1, "file size (MB, log scale)")]
    for (col, scale, label), ax in zip(panels, axes.flat):
        for name, d in rounds.groupby("config", sort=False):
            ax.plot(d["round"], d[col] / scale, marker="o", label=name)
        ax.set(xlabel="pruning round", ylabel=label, yscale="log", title=label.split(" (")[0])
        log_ticks(ax.yaxis)
    ax = axes.flat[3]
    for i, (name, d) in enumerate(rounds.groupby("config", sort=False)):
        ax.plot(d["round"], d["test_top1"], marker="o", color=f"C{i}", label=f"{name}: final")
        if "mean_val_top1" in d:
            ax.plot(d["round"], d["mean_val_top1"], ls="--", color=f"C{i}", label=f"{name}: mean val over fine-tune")
    ax.set(xlabel="pruning round", ylabel="top-1 accuracy (%)", title="accuracy (test: final epoch)")
    for a in axes.flat:
        a.grid(alpha=0.3)
        a.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    _legend(axes.flat[0])
    _legend(ax)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def channels_per_layer(channels: pd.DataFrame, config: str, title: str | None = None, arch: str = "") -> plt.Figure:
    """Filters kept in each conv layer after each round of one configuration (grouped bars).

    Every bar counts the output channels a layer still has (round 0: the unpruned model, all filters);
    the drop from one bar to the next is what that round removed.
    """
    d = channels[channels.config == config]
    layers = list(dict.fromkeys(d.layer))
    rounds = sorted(d["round"].unique())
    fig, ax = plt.subplots(figsize=(max(8, 0.45 * len(layers)), 4))
    w = 0.8 / max(1, len(rounds))
    x = np.arange(len(layers))
    for i, r in enumerate(rounds):
        row = d[d["round"] == r].set_index("layer").reindex(layers)
        ax.bar(x + i * w - 0.4 + w / 2, row.channels, w, label=f"kept after round {r}" if r else "before pruning (all)")
    ax.set_xticks(x, layers, rotation=60, ha="right", fontsize=7)
    ax.set(ylabel="output channels kept (filters)", xlabel="conv layer",
           title=title or f"{arch + ': ' if arch else ''}output channels kept per conv layer, configuration {config}")
    ax.grid(axis="y", alpha=0.3)
    _legend(ax)
    return fig


def fixed_point(table: pd.DataFrame, title: str = "Fixed-point quantization: accuracy by bit width") -> plt.Figure:
    """Top-1 accuracy against bit width (weights = activations = BN bits), one line per method."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for method, d in table.groupby("method", sort=False):
        d = d.sort_values("bits")
        ax.plot(d.bits, d.top1, marker="o", label=method)
    if "float_top1" in table:
        ax.axhline(table.float_top1.iloc[0], color="k", ls=":", label="float (FP32)")
    ax.set(xlabel="bits (weights / activations / BN)", ylabel="test top-1 accuracy (%)", title=title)
    ax.grid(alpha=0.3)
    _legend(ax)
    return fig


def quant_comparison(table: pd.DataFrame, title: str = "FP32 vs INT8: size, accuracy and CPU latency") -> plt.Figure:
    """Bars per variant: file size, top-1 accuracy (with the paired difference to FP32 where the table has it)
    and batch-1 CPU latency (one bar per thread count)."""
    runtime = table["runtime"] if "runtime" in table else pd.Series("torch", index=table.index)
    suffix = runtime.map({"torch": "", "onnxruntime": " (ORT)", "inductor": " (Inductor)", "openvino": " (OpenVINO)"}
                         ).fillna(" (" + runtime + ")")
    label = table.variant + suffix
    fig, axes = plt.subplots(1, 3, figsize=(max(14, 1.5 * label.nunique()), 4.5))
    acc = table.assign(label=label).drop_duplicates("label")
    axes[0].bar(acc.label, acc.size_mb, color="C0")
    axes[0].set(ylabel="file size (MB)", title="size")
    bars = axes[1].bar(acc.label, acc.top1, color="C1")
    if "paired_delta" in acc:  # the difference to FP32 on the same images, with its paired 95% interval
        # vertical, inside the bar: side by side, horizontal labels of neighbouring bars overprint each other
        axes[1].bar_label(bars, [f"{t:.2f}" if pd.isna(d) else f"{t:.2f}  ({d:+.2f} ± {c:.2f})"
                                 for t, d, c in zip(acc.top1, acc.paired_delta, acc.paired_ci95)],
                          fontsize=6, rotation=90, label_type="center", color="white")
    else:
        axes[1].bar_label(bars, fmt="%.2f", fontsize=7)
    lo, hi = (np.nanmin(acc.top1), np.nanmax(acc.top1)) if len(acc) else (0, 100)
    axes[1].set(ylabel="test top-1 accuracy (%)", title="accuracy (axis zoomed)", ylim=(max(0, lo - 2), min(100, hi + 1)))
    lat = table.assign(label=label)
    threads = sorted(lat.threads.dropna().unique())
    labels = list(dict.fromkeys(lat.label))
    x = np.arange(len(labels))
    w = 0.8 / max(1, len(threads))
    for i, t in enumerate(threads):
        d = lat[lat.threads == t].set_index("label").reindex(labels)
        axes[2].bar(x + i * w - 0.4 + w / 2, d.latency_ms, w, label=f"{int(t)} thread{'s' if t > 1 else ''}")
    axes[2].set_xticks(x, labels)
    how = (f"median of {int(table.processes.max())} fresh processes" if "processes" in table
           else "median, timed inside the pipeline")  # tables from before `quant.latency`
    axes[2].set(ylabel=f"batch-1 latency (ms, {how})", title="CPU latency, by thread count")
    _legend(axes[2])
    for a in axes:
        a.tick_params(axis="x", rotation=45, labelsize=7)
        a.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


_PARETO_MARKERS = {"baseline": "o", "pruned": "s", "sparse": "^"}
_PARETO_COLORS = {("FP32", "torch"): "C0", ("INT8", "torch"): "C1", ("FP32", "inductor"): "C2", ("INT8", "inductor"): "C3",
                  ("FP32", "onnxruntime"): "C4", ("INT8", "onnxruntime"): "C5", ("FP32", "openvino"): "C6",
                  ("INT8", "openvino"): "C8"}


def pareto_style(family: str, precision: str, runtime: str) -> tuple[str, str]:
    """(color, marker) of a models-table row: the marker says which model (baseline, pruned, sparse), the color
    its precision and runtime, so a dozen kinds stay distinguishable (matplotlib's cycle repeats after ten)."""
    return _PARETO_COLORS.get((precision, runtime), "C7"), _PARETO_MARKERS.get(family, "D")


def pareto(models: pd.DataFrame, x: str = "macs", title: str | None = None) -> plt.Figure:
    """Accuracy against cost (MACs or CPU latency) for every model produced; up and left is better."""
    threads = sorted({int(t) for t in models.get("latency_threads", pd.Series(dtype=float)).dropna()})
    at = f", {'/'.join(map(str, threads))} thread{'s' if threads != [1] else ''}" if threads else ", all cores"
    xlabel = {"macs": "MACs per image (millions, log scale)", "latency_ms": f"batch-1 CPU latency (ms{at}, log scale)",
              "size_mb": "file size (MB, log scale)", "params": "parameters (millions, log scale)"}[x]
    scale = 1e6 if x in ("macs", "params") else 1
    fig, ax = plt.subplots(figsize=(8, 5))
    d = models.dropna(subset=[x, "top1"])
    labelled = []
    for (family, precision, runtime), g in d.groupby(["family", "precision", "runtime"], sort=False):
        color, marker = pareto_style(family, precision, runtime)
        ax.scatter(g[x] / scale, g.top1, s=40, color=color, marker=marker,
                   label=model_kind(family, precision, runtime), zorder=3)
        if precision != "FP32" or runtime != "torch":
            continue  # quantized and other-runtime twins sit near their FP32 model: the legend names them
        for _, r in g.iterrows():
            labelled.append((r[x] / scale, r.top1, r.model))
    ax.set(xscale="log", xlabel=xlabel, ylabel="test top-1 accuracy (%)",
           title=title or f"Accuracy vs {xlabel.split(' (')[0]}")
    _annotate_apart(ax, labelled)
    log_ticks(ax.xaxis)
    ax.grid(alpha=0.3, which="both")
    _legend(ax)
    return fig


def _annotate_apart(ax, points) -> None:
    """Label each (x, y, text) beside its point, moving a label down a line where it would overprint one
    already placed near it (log x: within 15%; y: within 4% of the axis height)."""
    lo, hi = ax.get_ylim()
    span = max(hi - lo, 1e-9)
    placed = []  # (log x, label height as a fraction of the axis)
    for x, y, text in sorted(points, key=lambda p: (-p[1], p[0])):
        lx, fy = np.log(x), (y - lo) / span
        shift = next(k for k in range(8) if k == 7 or not any(
            abs(lx - px) < 0.15 and abs(fy - 0.045 * k - py) < 0.04 for px, py in placed))
        placed.append((lx, fy - 0.045 * shift))
        ax.annotate(text, (x, y), fontsize=6, xytext=(4, 3 - 9 * shift), textcoords="offset points")


BUDGET_STYLE = {"global": ("o", "tab:blue"), "sensitivity": ("s", "tab:orange"), "uniform": ("^", "tab:purple")}


def budget_curve(table: pd.DataFrame, baseline_top1: float | None = None,
                 title: str = "Pruning to a budget: accuracy vs MACs") -> plt.Figure:
    """Test top-1 of each budget's final model against its MACs (log scale), one line per allocation method,
    the seed repeats as open markers, the controls (equal-budget baseline, pruned architecture trained from
    scratch) as their own markers, and the baseline as a line. Error bars: the paired 95% interval against
    the baseline, placed on the point."""
    last = budget_finals(table)
    fig, ax = plt.subplots(figsize=(8, 4.8))
    main_seed = last.seed.min()
    pruned = last[last.kind == "pruned"]
    for method, d in pruned.groupby("method", sort=True):
        line = d[d.seed == main_seed].sort_values("macs")
        marker, color = BUDGET_STYLE.get(method, ("o", "0.3"))
        ax.errorbar(line.macs / 1e6, line.test_top1, yerr=line.paired_ci95, marker=marker, color=color,
                    capsize=2, lw=1.2, ms=5, label=f"pruned + fine-tuned ({method})")
        repeats = d[d.seed != main_seed]
        if len(repeats):
            ax.scatter(repeats.macs / 1e6, repeats.test_top1, facecolors="none", edgecolors=color, s=30, zorder=3,
                       label=f"{method}, other fine-tune seeds")
    scratch = last[last.kind == "scratch"]
    if len(scratch):
        ax.errorbar(scratch.macs / 1e6, scratch.test_top1, yerr=scratch.paired_ci95, fmt="D", color="tab:red",
                    capsize=2, ms=5, label="same architecture, trained from scratch")
    equal = last[last.kind == "equal_budget"]
    if len(equal):
        ax.errorbar(equal.macs / 1e6, equal.test_top1, yerr=equal.paired_ci95, fmt="*", color="tab:green", ms=10,
                    capsize=2, label="baseline fine-tuned as long (equal budget)")
    if baseline_top1 is not None and np.isfinite(baseline_top1):
        ax.axhline(baseline_top1, color="0.5", ls="--", lw=1, label=f"baseline {baseline_top1:.2f}%")
    ax.set_xscale("log")
    ticks = sorted(set(np.round(last.macs / 1e6, 1)))
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.0f}" if v >= 10 else f"{v:.1f}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    ax.set(xlabel="MACs per 32x32 image (millions, log scale)", ylabel="test top-1 (%), final epoch", title=title)
    if len(equal):  # the same axis read as "times fewer MACs than the unpruned model"
        base = float(equal.macs.iloc[0]) / 1e6
        top = ax.secondary_xaxis("top", functions=(lambda m: base / np.maximum(m, 1e-9), lambda f: base / np.maximum(f, 1e-9)))
        top.set_xlabel("times fewer MACs than the baseline")
        top.set_xticks(sorted({1.0, *last.target.astype(float)}))
        top.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
        top.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        top.tick_params(axis="x", labelsize=7)
    ax.grid(alpha=0.3, which="both")
    _legend(ax, loc="lower right")
    return fig
