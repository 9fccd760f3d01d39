"""Tune prune ratios by hand and see the pruned architecture at once, before spending any training.

`preview` is the engine: it prunes a copy of the model and measures it (params, MACs, size, channels per
layer) in well under a second for CIFAR models, and returns a `Preview` that displays as a few lines
(never the whole pruned model). `ratio_panel` wraps it in ipywidgets sliders (one per ResNet18 block and
residual stage, or one per VGG conv) with a button that fine-tunes and evaluates the chosen ratios with
the session's profile. People who prefer code pass a plain dict to `preview`.

A layer of n filters keeps round(n * (1 - ratio)) of them, so ratios below 1 - 0.5 / n keep at least one
(0.9375 for 8 filters). `check_ratios` states that exact bound, each slider's `max` stops below it, and
the panel shows invalid ratios as invalid (no stale chart or numbers, fine-tune button disabled).
"""
from __future__ import annotations

import copy
import html
import io
import textwrap
from dataclasses import dataclass, field

import pandas as pd
from torch import nn

from . import metrics
from .budget import allocate
from .pruning import expand_ratios, prune
from .ratios import RESNET18_BLOCKS, RESNET18_STAGE_STREAMS, channel_targets, max_ratio, ratios_from_sensitivity

SLIDER_STEP = 0.05
SLIDER_MAX = 0.95  # the top of the slider range for layers wide enough (1.0 would remove every filter)


def slider_layers(arch: str, model: nn.Module) -> dict[str, str]:
    """Slider label -> the conv whose ratio it sets: ResNet18 blocks and residual stages, or every VGG conv."""
    if arch == "resnet18":
        out = {f"{b} (inner)": f"{b}.conv1" for b in RESNET18_BLOCKS}
        out.update({f"stage {i + 1} (residual)": conv for i, conv in enumerate(RESNET18_STAGE_STREAMS)})
        return out
    return {name: name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def seed_ratios(arch: str, model: nn.Module, scan: pd.DataFrame | None, max_drop: float = 1.0) -> dict[str, float]:
    """Starting ratios for the sliders: from a sensitivity scan's accuracy budget, else all zero."""
    convs = slider_layers(arch, model).values()
    if scan is None:
        return {c: 0.0 for c in convs}
    derived = ratios_from_sensitivity(scan, max_drop)
    return {c: float(derived.get(c, 0.0)) for c in convs}


def slider_ratios_for_target(arch: str, model: nn.Module, target, method: str = "global") -> dict[str, float]:
    """Each slider's conv ratio for a MAC target (`4x`, `25M`): the allocation `budget.allocate` finds."""
    ratios = allocate(model, target, method).ratios()
    return {conv: round(ratios[conv], 6) for conv in slider_layers(arch, model).values()}


# ----------------------------------------------------------------------------- the keep-one-filter bound
def kept(n: int, ratio: float) -> int:
    """Filters a layer of `n` keeps at `ratio`: the rule `ratios.channel_targets` applies."""
    return int(round(n * (1 - ratio)))


def bound_text(n: int) -> str:
    """The exact bound as a sentence, e.g. 'ratios below 0.9375 keep at least 1 of 8 filters'.

    `max_ratio(n)` = 1 - 0.5 / n is exclusive: there n * (1 - r) is 0.5, which Python rounds to 0.
    """
    return f"ratios below {max_ratio(n):.10g} keep at least 1 of {n} filters"


def slider_max(n: int, step: float = SLIDER_STEP, top: float = SLIDER_MAX) -> float:
    """The largest slider position (a multiple of `step`, at most `top`) that keeps a filter of `n`."""
    k = int(round(top / step))
    while k > 0 and kept(n, round(k * step, 10)) < 1:
        k -= 1
    return round(k * step, 10)


def check_ratios(arch: str, model: nn.Module, ratios) -> dict[str, float]:
    """Every conv's ratio (as `expand_ratios` gives it), or the ValueError of `ratios.channel_targets` (the
    rule pruning applies, with its exact keep-one bound). Runs before any pruning or training, so a bad panel
    state never reaches the step cache."""
    expanded = expand_ratios(arch, model, ratios)
    channel_targets(metrics.conv_channels(model), expanded)
    return expanded


# ----------------------------------------------------------------------------- preview
@dataclass(frozen=True, eq=False)
class Preview:
    """What pruning with some ratios gives, measured on a copy. Displays as a few lines, never the model."""
    arch: str
    params: int
    macs: int
    size_mb: float
    param_reduction: float
    mac_reduction: float
    size_reduction: float
    channels: pd.DataFrame  # layer, before, after: output channels per conv
    model: nn.Module = field(repr=False)  # the pruned copy

    def summary(self) -> str:
        return (f"{self.params / 1e6:.3f} M params ({self.param_reduction:.1f}x fewer), "
                f"{self.macs / 1e6:.1f} M MACs ({self.mac_reduction:.1f}x fewer), "
                f"{self.size_mb:.2f} MB ({self.size_reduction:.1f}x smaller)")

    def pruned_layers(self, limit: int = 8) -> str:
        """'conv1_1 8->4, ...' for the convs that lose filters (at most `limit`), and how many keep all."""
        ch = self.channels
        changed = ch[ch.after < ch.before]
        items = [f"{r.layer} {r.before}->{r.after}" for r in changed.head(limit).itertuples()]
        if len(changed) > limit:
            items.append(f"{len(changed) - limit} more")
        head = ", ".join(items) if items else "none"
        return f"{head} ({len(ch) - len(changed)} of {len(ch)} convs keep every filter)"

    def __repr__(self) -> str:
        text = self.pruned_layers().replace(" ", "\xa0").replace(",\xa0", ", ")  # wrap between layers only
        lines = [line.replace("\xa0", " ") for line in textwrap.wrap(f"pruned: {text}", 110, subsequent_indent="  ")]
        return "\n".join([f"Preview({self.arch}): {self.summary()}", *lines,
                          "  (p.channels: every conv's output channels; p.model: the pruned copy)"])

    def _repr_html_(self) -> str:
        table = self.channels.to_html(index=False, border=0)
        return (f"<div><b>{html.escape(self.arch)} pruned</b>: {_summary_html(self)}<br>"
                f"<small>pruned: {html.escape(self.pruned_layers())}</small>"
                f"<details><summary>output channels per conv layer (before, after)</summary>{table}</details></div>")


def preview(model: nn.Module, arch: str, ratios) -> Preview:
    """What pruning `model` with `ratios` would give, measured on a copy (the model is untouched).

    Returns a `Preview`: params, MACs, size (MB), their reduction factors against the unpruned model,
    the output channels per conv layer before and after, and the pruned copy (L1-ranked filters: the costs
    depend only on how many filters go, not on which, so no criterion needs data here).
    """
    check_ratios(arch, model, ratios)  # a bad name or ratio fails here, before any work
    before = metrics.conv_channels(model)
    pruned = prune(copy.deepcopy(model).cpu(), ratios, criterion="l1")
    after = metrics.conv_channels(pruned)
    base_params, base_macs = metrics.count_params(model), metrics.count_macs(model)
    params, macs, size = metrics.count_params(pruned), metrics.count_macs(pruned), metrics.size_mb(pruned)
    return Preview(arch=arch, params=params, macs=macs, size_mb=size, param_reduction=base_params / params,
                   mac_reduction=base_macs / macs, size_reduction=metrics.size_mb(model) / size,
                   channels=pd.DataFrame({"layer": list(before), "before": list(before.values()),
                                          "after": [after[n] for n in before]}), model=pruned)


def _summary_html(p: Preview) -> str:
    return (f"<b>params</b> {p.params / 1e6:.3f} M ({p.param_reduction:.1f}x fewer) &nbsp; "
            f"<b>MACs</b> {p.macs / 1e6:.1f} M ({p.mac_reduction:.1f}x fewer) &nbsp; "
            f"<b>size</b> {p.size_mb:.2f} MB ({p.size_reduction:.1f}x smaller)")


def channel_chart(channels: pd.DataFrame, title: str = "Output channels per conv layer"):
    """Stacked bars per conv: kept filters at the bottom, removed ones on top (the two add up to `before`).

    A bare `Figure` (not pyplot), so nothing lingers for the inline backend to display a second time.
    """
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(channels))
    after = channels.after.to_numpy()
    ax.bar(x, after, color="C0", label="kept")
    ax.bar(x, channels.before.to_numpy() - after, bottom=after, color="lightgray", label="removed")
    ax.set_xticks(x, list(channels.layer), rotation=60, ha="right", fontsize=7)
    ax.set(xlabel="conv layer", ylabel="output channels (filters)", title=title,
           ylim=(0, 1.08 * max(1, channels.before.max())))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _red(text: str) -> str:
    return f"<span style='color:#b00'>{html.escape(text)}</span>"


def _one_line(e: Exception, limit: int = 300) -> str:
    """An exception as one short line: its type (unless a plain ValueError) and message, whitespace folded."""
    text = " ".join(str(e).split()) or "(no message)"
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return text if type(e) is ValueError else f"{type(e).__name__}: {text}"


# ----------------------------------------------------------------------------- the panel
def ratio_panel(session, baseline: nn.Module, *, scan: pd.DataFrame | None = None, max_drop: float = 1.0):
    """Sliders over the prunable units, a live summary and channel chart, and a fine-tune button.

    Layout: a fixed-width slider column (each slider with its live filter count and keep-one bound)
    beside the summary and button, then the chart, then the fine-tune result and log, which may grow
    without squeezing the sliders.
    """
    try:
        import ipywidgets as W
    except ImportError:  # e.g. a headless GPU box: the dict form still works
        print("ipywidgets is not installed: use interactive.preview(model, arch, {layer: ratio}) instead")
        return None

    arch = session.arch
    labels = slider_layers(arch, baseline)
    width = metrics.conv_channels(baseline)
    start = seed_ratios(arch, baseline, scan, max_drop)
    sliders, notes, lowered = {}, {}, []
    for label, conv in labels.items():
        n = width[conv]
        top = slider_max(n)
        if start[conv] > top:
            lowered.append(f"{label} {start[conv]:g} -> {top:.2f}")
        sliders[label] = W.FloatSlider(
            value=min(start[conv], top), min=0.0, max=top, step=SLIDER_STEP, description=label,
            readout_format=".2f", continuous_update=False, tooltip=bound_text(n),
            style={"description_width": "140px"}, layout=W.Layout(width="430px", min_width="430px"))
        notes[label] = W.HTML(layout=W.Layout(width="200px", min_width="200px"))
    rows = [W.HBox([sliders[label], notes[label]]) for label in labels]
    slider_box = W.VBox(rows, layout=W.Layout(width="640px", min_width="640px", flex="0 0 640px"))
    summary = W.HTML(layout=W.Layout(width="auto"))
    seeded = W.HTML(f"<small style='color:#666'>seeded ratios lowered to keep a filter: {'; '.join(lowered)}"
                    "</small>" if lowered else "")
    button = W.Button(description="Fine-tune & evaluate", button_style="primary", icon="play",
                      tooltip="prune a copy with these ratios, fine-tune with the session's profile, evaluate",
                      layout=W.Layout(width="210px", min_width="210px"))
    target = W.Text(value="4x", description="MAC target", placeholder="4x or 25M", style={"description_width": "80px"},
                    layout=W.Layout(width="210px"))
    fill = W.Button(description="Fill sliders", icon="bullseye", layout=W.Layout(width="210px", min_width="210px"),
                    tooltip="set the sliders to the allocation budget.allocate finds for this target (global method)")
    fill_note = W.HTML()
    side = W.VBox([summary, button, seeded, target, fill, fill_note], layout=W.Layout(flex="1 1 auto", min_width="0"))
    chart = W.Image(format="png", layout=W.Layout(max_width="100%"))
    chart_note = W.HTML()
    result, log = W.HTML(), W.Output()
    state = {"error": None}

    def ratios() -> dict[str, float]:
        return {labels[label]: round(float(s.value), 6) for label, s in sliders.items()}

    def update_notes() -> None:
        for label, s in sliders.items():
            n = width[labels[label]]
            k = kept(n, s.value)
            text = (f"keeps {k}/{n} &middot; r &lt; {max_ratio(n):.10g}" if k >= 1
                    else f"<b>keeps 0/{n}</b>: r must be &lt; {max_ratio(n):.10g}")
            notes[label].value = f"<small style='color:{'#666' if k >= 1 else '#b00'}'>{text}</small>"

    def refresh(_=None):
        """Redraw from the sliders; an invalid state blanks the chart and numbers and disables the button."""
        update_notes()
        try:
            p = preview(baseline, arch, ratios())
        except Exception as e:  # ValueError for bad ratios; anything else must not leave a stale chart either
            state["error"] = _one_line(e)
            summary.value = (f"{_red('invalid: ' + state['error'])}<br><span style='color:#999'>params &mdash; "
                             "&nbsp; MACs &mdash; &nbsp; size &mdash; (no preview for invalid ratios)</span>")
            chart.value, chart.layout.display = b"", "none"
            chart_note.value = "<span style='color:#999'>chart hidden while the ratios are invalid</span>"
            button.disabled = True
            return
        state["error"] = None
        summary.value = _summary_html(p)
        chart.value, chart.layout.display = _png(channel_chart(p.channels)), None
        chart_note.value = ""
        button.disabled = False

    def train(_=None):
        """Validate, then fine-tune; any failure is one red line, never a traceback in the panel."""
        log.clear_output()
        try:
            chosen = ratios()
            check_ratios(arch, baseline, chosen)  # before anything touches the step cache
        except Exception as e:
            result.value = _red(f"not fine-tuned: invalid ratios: {_one_line(e)}")
            button.disabled = True
            return
        button.disabled = True  # no second run while this one trains
        result.value = f"fine-tuning with the {html.escape(session.profile.name)} profile ..."
        with log:  # try inside the `with`: an exception leaving an Output context is shown as a traceback
            try:
                from . import steps  # here, not at panel build: the panel itself needs no training code

                record = steps.finetune_ratios(session, baseline, chosen)
                result.value = (f"<b>test top-1 {record['test_top1']:.2f}%</b> (final epoch), val top-1 "
                                f"{record['final_val_top1']:.2f}%, {record['params'] / 1e6:.3f} M params, "
                                f"{record['macs'] / 1e6:.1f} M MACs")
            except Exception as e:
                result.value = _red(f"fine-tune failed: {_one_line(e)}")
        button.disabled = state["error"] is not None

    def fill_from_target(_=None):
        """The sliders take the allocation for the typed target; a bad target is one red line, sliders untouched."""
        try:
            ratios_for = slider_ratios_for_target(arch, baseline, target.value)
        except Exception as e:
            fill_note.value = _red(f"no allocation: {_one_line(e)}")
            return
        for s in sliders.values():
            s.unobserve(refresh, names="value")
        try:
            for label, s in sliders.items():
                s.value = min(ratios_for[labels[label]], s.max)
        finally:
            for s in sliders.values():
                s.observe(refresh, names="value")
        fill_note.value = f"<small style='color:#666'>sliders set for {html.escape(target.value.strip())} fewer MACs</small>"
        refresh()

    for s in sliders.values():
        s.observe(refresh, names="value")
    button.on_click(train)
    fill.on_click(fill_from_target)
    refresh()
    panel = W.VBox([W.HBox([slider_box, side]), chart, chart_note, result, log])
    for name, value in dict(refresh=refresh, ratios=ratios, sliders=sliders, notes=notes, summary=summary,
                            target=target, fill=fill, fill_note=fill_note, fill_from_target=fill_from_target,
                            button=button, chart=chart, result=result, train_log=log,
                            slider_box=slider_box).items():
        setattr(panel, name, value)  # for tests and for driving the panel from code
    return panel
