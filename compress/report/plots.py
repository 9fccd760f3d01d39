"""Every figure, drawn from results tables only (never from live models), so `python -m compress figures`
can regenerate the documents' figures from committed tables without training anything.

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
from .tables import budget_finals, chosen_curve


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
# one colour per runtime and precision: a hue per runtime, dark for FP32 and light for INT8, so a runtime's two
# precisions read as a pair and no two kinds share a colour (matplotlib's cycle repeats after ten)
_PARETO_COLORS = {("FP32", "torch"): "#08519c", ("INT8", "torch"): "#6baed6",
                  ("FP32", "onnxruntime"): "#a63603", ("INT8", "onnxruntime"): "#fd8d3c",
                  ("FP32", "inductor"): "#006d2c", ("INT8", "inductor"): "#74c476",
                  ("FP32", "openvino"): "#54278f", ("INT8", "openvino"): "#9e9ac8"}
_PRECISION_LINES = {"FP32": "-", "INT8": "--"}


def pareto_style(family: str, precision: str, runtime: str) -> tuple[str, str]:
    """(color, marker) of a models-table row: the marker says which model (baseline, pruned, sparse), the color
    its precision and runtime."""
    return _PARETO_COLORS.get((precision, runtime), "0.5"), _PARETO_MARKERS.get(family, "D")


def pareto_front(points: pd.DataFrame, x: str, y: str = "top1") -> pd.DataFrame:
    """The rows no other row beats on both cost and accuracy (lower `x`, higher `y`), cheapest first."""
    front, best = [], -np.inf
    for i, r in points.sort_values([x, y], ascending=[True, False]).iterrows():
        if r[y] > best:
            front.append(i)
            best = r[y]
    return points.loc[front]


def _short_model(name: str) -> str:
    """`sensitivity` for `pruned:sensitivity`: the point label, beside a marker that already says "pruned"."""
    return name.split(":", 1)[-1]


def pareto(models: pd.DataFrame, x: str = "macs", title: str | None = None) -> plt.Figure:
    """Accuracy against cost (MACs or CPU latency) for every model produced; up and left is better.

    Colour: runtime and precision; marker: which model (baseline, pruned, sparse); each colour's Pareto front
    (the models of it that no other beats on both axes) joined by a line. Two short legends sit outside the axes,
    and only the FP32 PyTorch models are labelled: the other colours are the same models converted."""
    threads = sorted({int(t) for t in models.get("latency_threads", pd.Series(dtype=float)).dropna()})
    at = f", {'/'.join(map(str, threads))} thread{'s' if threads != [1] else ''}" if threads else ", all cores"
    xlabel = {"macs": "MACs per image (millions, log scale)", "latency_ms": f"batch-1 CPU latency (ms{at}, log scale)",
              "size_mb": "file size (MB, log scale)", "params": "parameters (millions, log scale)"}[x]
    scale = 1e6 if x in ("macs", "params") else 1
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    d = models.dropna(subset=[x, "top1"]).assign(cost=lambda t: t[x] / scale)
    labelled, colours, families = [], [], []
    for (precision, runtime), g in d.groupby(["precision", "runtime"], sort=False):
        color = _PARETO_COLORS.get((precision, runtime), "0.5")
        front = pareto_front(g, "cost")
        labelled_kind = (precision, runtime) == ("FP32", "torch")  # drawn on top: converted twins often coincide
        ax.plot(front.cost, front.top1, color=color, ls=_PRECISION_LINES.get(precision, ":"), lw=1.2,
                zorder=2.5 if labelled_kind else 2)
        for family, f in g.groupby("family", sort=False):
            marker = _PARETO_MARKERS.get(family, "D")
            ax.scatter(f.cost, f.top1, s=36, color=color, marker=marker, edgecolors="white", linewidths=0.5,
                       zorder=4 if family == "sparse" else 3.5 if labelled_kind else 3)
            families.append(family)
        colours.append((precision, runtime))
        if labelled_kind:
            labelled += [(r.cost, r.top1, _short_model(r.model)) for r in g.itertuples() if r.family != "sparse"]
    ax.set(xscale="log", xlabel=xlabel, ylabel="test top-1 accuracy (%)",
           title=title or f"Accuracy vs {xlabel.split(' (')[0]}")
    ax.margins(x=0.08, y=0.08)
    _annotate_apart(ax, labelled)
    log_ticks(ax.xaxis)
    ax.grid(alpha=0.3, which="both")
    order = [k for k in _PARETO_COLORS if k in colours] + [k for k in dict.fromkeys(colours) if k not in _PARETO_COLORS]
    colour_handles = [matplotlib.lines.Line2D([], [], color=_PARETO_COLORS.get(k, "0.5"), ls=_PRECISION_LINES.get(k[0], ":"),
                                              marker="o", ms=5, label=f"{k[1]} {k[0]}") for k in order]
    family_handles = [matplotlib.lines.Line2D([], [], color="0.35", ls="", marker=_PARETO_MARKERS.get(f, "D"), ms=6, label=f)
                      for f in [f for f in _PARETO_MARKERS if f in families] + [f for f in dict.fromkeys(families)
                                                                               if f not in _PARETO_MARKERS]]
    if colour_handles:  # two short legends right of the axes (kept by the tight crop, unlike an added artist)
        ax.legend(handles=colour_handles, title="runtime, precision", fontsize=7, title_fontsize=7,
                  loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, alignment="left")
        fig.legend(handles=family_handles, title="model", fontsize=7, title_fontsize=7, loc="lower left",
                   bbox_to_anchor=(1.01, 0.0), bbox_transform=ax.transAxes, frameon=False, alignment="left")
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
        ax.annotate(text, (x, y), fontsize=7, xytext=(5, 4 - 9 * shift), textcoords="offset points")


PEER_METHOD = "torch-pruning"  # the `method` of the peer's rows in `budget.csv`: Torch-Pruning's own pruner
PEER_LABEL = "Torch-Pruning's pruner (peer)"
BUDGET_STYLE = {"global": ("o", "tab:blue"), "sensitivity": ("s", "tab:orange"), "uniform": ("^", "tab:purple"),
                PEER_METHOD: ("v", "tab:brown")}


_CONFIG_COLORS = ("tab:purple", "tab:cyan", "tab:olive", "tab:pink")


def accuracy_vs_macs(panels: dict[str, dict[str, pd.DataFrame]],
                     title: str = "Accuracy against MACs, every architecture") -> plt.Figure:
    """The headline figure: one panel per architecture (`panels`: arch -> its tables), test top-1 against MACs
    (log scale), y shared so the architectures compare at a glance.

    Each panel draws what its tables hold: the baseline (a point and a dotted line at its accuracy), each
    iterative-pruning configuration's rounds joined from the baseline (`pruning.csv`), and, where
    `budget.csv` exists, the budget curve of the method chosen on validation (main seed, paired 95% interval
    against the baseline), the peer (Torch-Pruning's pruner) on the same budgets, the equal-budget control
    (the baseline fine-tuned as long) and the pruned architectures trained from scratch."""
    archs = [a for a, t in panels.items() if "pruning" in t or "budget" in t or "models" in t]
    if not archs:
        raise ValueError("no architecture has a pruning, budget or models table to draw")
    fig, axes = plt.subplots(1, len(archs), figsize=(4.2 * len(archs) + 0.5, 3.8), sharex=True,
                             sharey=True, squeeze=False)
    for arch, ax in zip(archs, axes[0]):
        _accuracy_vs_macs_panel(ax, panels[arch], arch)
    axes[0][0].set_ylabel("test top-1 accuracy (%)")
    handles = {}
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    rows = (len(handles) + 2) // 3
    fig.tight_layout(rect=(0, 0, 1, 0.93 - 0.05 * rows))
    top = max(a.get_position().y1 for a in axes[0])
    fig.legend(handles.values(), handles.keys(), loc="lower center", bbox_to_anchor=(0.5, top + 0.07),
               ncol=min(3, len(handles)), fontsize=8, frameon=False)
    fig.suptitle(title, y=top + 0.08 + 0.06 * rows, va="bottom")
    return fig


def _accuracy_vs_macs_panel(ax, t: dict, arch: str) -> None:
    models = t.get("models")
    base = None
    if models is not None and len(models):
        b = models[(models.family == "baseline") & (models.precision == "FP32") & (models.runtime == "torch")]
        base = (float(b.macs.iloc[0]) / 1e6, float(b.top1.iloc[0])) if len(b) else None
    rounds = t.get("pruning")
    if base is None and rounds is not None and len(rounds):
        first = rounds[rounds["round"] == 0].iloc[0]
        base = (float(first.macs) / 1e6, float(first.test_top1))
    budget = t.get("budget")
    faint = budget is not None and len(budget)  # the budget curves lead where they exist; the rounds stay behind them
    for i, (config, d) in enumerate(() if rounds is None else rounds.groupby("config", sort=False)):
        d = d.sort_values("round")
        color = _CONFIG_COLORS[i % len(_CONFIG_COLORS)]
        ax.plot(d.macs / 1e6, d.test_top1, marker="s", ms=4, lw=1.0 if faint else 1.2, alpha=0.5 if faint else 1.0, color=color,
                label=f"iterative pruning, {config} (each round)")
        last = d.iloc[-1]
        if base is not None:  # how far the last round got, read without the log axis
            ax.annotate(f"{base[0] * 1e6 / last.macs:.1f}x fewer MACs", (last.macs / 1e6, last.test_top1), xytext=(3, -11),
                        textcoords="offset points", fontsize=7, ha="left", color=color)
    if faint:
        last = budget_finals(budget)
        main_seed = last.seed.min()
        curves = []
        if "selected" in last:
            chosen = chosen_curve(last)
            if len(chosen):
                curves.append((chosen, "pruned to a MAC budget (method chosen on validation)", "tab:blue", "o", "-"))
        peer = last[(last.kind == "pruned") & (last.method == PEER_METHOD) & (last.seed == main_seed)]
        if len(peer):
            curves.append((peer.sort_values("macs"), PEER_LABEL, "tab:brown", "v", "--"))
        for d, label, color, marker, ls in curves:
            ax.errorbar(d.macs / 1e6, d.test_top1, yerr=d.get("paired_ci95"), color=color, marker=marker, ms=5,
                        ls=ls, lw=1.4, capsize=2, label=label, zorder=3)
        equal = last[last.kind == "equal_budget"]
        if len(equal):
            ax.errorbar(equal.macs / 1e6, equal.test_top1, yerr=equal.get("paired_ci95"), fmt="*", ms=11,
                        color="tab:green", capsize=2, label="baseline fine-tuned as long (equal budget)", zorder=4)
        scratch = last[last.kind == "scratch"]
        if len(scratch):
            ax.errorbar(scratch.macs / 1e6, scratch.test_top1, yerr=scratch.get("paired_ci95"), fmt="D", ms=5,
                        color="tab:red", capsize=2, label="same architecture from scratch", zorder=3)
    if base is not None:
        ax.axhline(base[1], color="0.4", ls=":", lw=1)
        ax.scatter([base[0]], [base[1]], color="black", s=45, zorder=5, label="baseline (unpruned)")
        ax.annotate(f"{base[1]:.2f}%", base, xytext=(6, 3), textcoords="offset points", fontsize=7, ha="left")
    ax.set(xscale="log", xlabel="MACs per image (millions, log scale)", title=arch)
    ax.margins(x=0.12, y=0.1)
    log_ticks(ax.xaxis)
    ax.grid(alpha=0.3, which="both")


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
                    capsize=2, lw=1.2, ms=5, ls="--" if method == PEER_METHOD else "-",
                    label=PEER_LABEL if method == PEER_METHOD else f"pruned + fine-tuned ({method})")
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
    _legend(ax, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig
