"""Tune prune ratios by hand and see the pruned architecture at once, before spending any training.

`preview` is the engine: it prunes a copy of the model and measures it (params, MACs, size, channels per
layer) in well under a second for CIFAR models, and returns a `Preview` that displays as a few lines
(never the whole pruned model). `ratio_panel` wraps it in ipywidgets sliders (one per ResNet18 block and
residual stage, or one per VGG conv) with a button that fine-tunes and evaluates the chosen ratios with
the session's profile. People who prefer code pass a plain dict to `preview`.

A layer of n filters keeps round(n * (1 - ratio)) of them, so ratios below 1 - 0.5 / n keep at least one
(0.9375 for 8 filters). Each slider steps one filter at a time (step 1/n, up to (n - 1)/n), so every
position is a distinct model and a filled allocation (kept / n exactly) lies on the slider's grid: a click
on a knob or the arrow keys never drift off it. `check_ratios` states the exact bound, and the panel shows
invalid ratios as invalid (no stale chart or numbers, fine-tune button disabled).

Widgets live only in a running kernel: displayed, the panel first shows a static snapshot (its numbers and
channel chart at the starting ratios) as ordinary outputs, which a saved notebook keeps for a code-hosting
page or a reload without widget state.
"""
from __future__ import annotations

import copy
import functools
import html
import io
import math
import textwrap
from dataclasses import dataclass, field

import pandas as pd
from torch import nn

from . import metrics
from .budget import Target, allocate
from .pruning import expand_ratios, prune
from .ratios import RESNET18_BLOCKS, RESNET18_STAGE_STREAMS, channel_targets, max_ratio, ratios_from_sensitivity

ALLOCATION_CAP = 0.9  # the panel's default per-layer cap for filling from a MAC target (budget.allocate's)


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


def slider_ratios_for_target(arch: str, model: nn.Module, target, method: str = "global",
                             max_ratio: float = ALLOCATION_CAP) -> dict[str, float]:
    """Each slider's conv ratio for a MAC target (`4x`, `25M`): the allocation `budget.allocate` finds, as
    kept / n exactly (a point of the slider's grid)."""
    ratios = allocate(model, target, method, max_ratio=max_ratio).ratios()
    width = metrics.conv_channels(model)
    return {conv: on_grid(width[conv], ratios[conv]) for conv in slider_layers(arch, model).values()}


def count_text(n: float) -> str:
    """A count as a MAC target is typed: 1.2M, 350k, 2.5G."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2g}{unit}"
    return f"{n:.0f}"


# ----------------------------------------------------------------------------- the keep-one-filter bound
def kept(n: int, ratio: float) -> int:
    """Filters a layer of `n` keeps at `ratio`: the rule `ratios.channel_targets` applies."""
    return int(round(n * (1 - ratio)))


def bound_text(n: int) -> str:
    """The keep-one bound as a user reads it, e.g. 'at most 0.93 keeps a filter (of 8)'.

    `max_ratio(n)` = 1 - 0.5 / n is exclusive (there n * (1 - r) is 0.5, which Python rounds to 0): the
    largest two-decimal ratio below it is what a user can type.
    """
    return f"at most {(math.ceil(max_ratio(n) * 100 - 1e-9) - 1) / 100:.2f} keeps a filter (of {n})"


def slider_step(n: int) -> float:
    """One filter of `n`: each slider position is a distinct kept count."""
    return 1.0 / n


def slider_max(n: int) -> float:
    """The largest slider position: one filter of `n` kept (0 for a single-filter layer)."""
    return (n - 1) / n


def on_grid(n: int, ratio: float) -> float:
    """The slider position (a multiple of 1/n) that keeps as many of `n` filters as `ratio` does: the same model,
    at a value a knob click or an arrow key reaches. Ratios past the keep-one bound land on `slider_max`."""
    return min(1.0 - kept(n, ratio) / n, slider_max(n))


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
def static_snapshot(p: Preview, caption: str) -> list:
    """The panel's numbers and channel chart as plain outputs (HTML, PNG): what a page without a running
    kernel shows in place of the widgets (a code-hosting page, a reload, a notebook saved without widget state)."""
    from IPython.display import HTML, Image

    return [HTML(f"<div><small style='color:#666'>{html.escape(caption)}</small><br>{_summary_html(p)}<br>"
                 f"<small>pruned: {html.escape(p.pruned_layers())}</small></div>"),
            Image(data=_png(channel_chart(p.channels, "Output channels per conv layer (snapshot at the starting ratios)")),
                  format="png")]


@functools.cache
def _panel_class():
    """A VBox that, displayed in a notebook, shows its static snapshot before the live widgets."""
    import ipywidgets as W

    class RatioPanel(W.VBox):
        snapshot: list = []

        def _ipython_display_(self):
            from IPython.display import display

            for output in self.snapshot:
                display(output)
            display(self._repr_mimebundle_(), raw=True)

    return RatioPanel


def ratio_panel(session, baseline: nn.Module, *, scan: pd.DataFrame | None = None, max_drop: float = 1.0):
    """Sliders over the prunable units, a live summary and channel chart, a MAC target that fills the
    sliders, and a fine-tune button.

    Layout: a fixed-width slider column (each slider with its live filter count) beside the summary, button
    and MAC target, then the chart, then the fine-tune result and log, which may grow without squeezing the
    sliders. Moving a slider clears what described the old ratios (a fine-tune result, a fill note).
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
        if kept(n, start[conv]) < 1:
            lowered.append(f"{label} {start[conv]:g} -> {top:.3f}")
        sliders[label] = W.FloatSlider(
            value=on_grid(n, start[conv]), min=0.0, max=top, step=slider_step(n), description=label,
            readout_format=".3f", continuous_update=False, disabled=n == 1,
            tooltip=f"one step = one of {n} filters; {bound_text(n)}",
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
    base_macs = metrics.count_macs(baseline)
    # Enter (or leaving the box) submits: with continuous_update off, the value changes only then
    target = W.Text(value="4x", description="MAC target", placeholder=f"4x or {count_text(base_macs / 4)}",
                    continuous_update=False, style={"description_width": "80px"}, layout=W.Layout(width="210px"),
                    tooltip=f"a factor (4x: 4 times fewer MACs) or MACs in all (the model has {count_text(base_macs)})")
    cap = W.BoundedFloatText(value=ALLOCATION_CAP, min=0.05, max=0.99, step=0.05, description="per-layer cap",
                             style={"description_width": "80px"}, layout=W.Layout(width="210px"),
                             tooltip="max_ratio: the largest share of any one layer's filters the allocation removes")
    fill = W.Button(description="Fill sliders", icon="bullseye", layout=W.Layout(width="210px", min_width="210px"),
                    tooltip="set the sliders to the allocation budget.allocate finds for this target (global method)")
    fill_note = W.HTML()
    side = W.VBox([summary, button, seeded, target, cap, fill, fill_note],
                  layout=W.Layout(flex="1 1 auto", min_width="0"))
    chart = W.Image(format="png", layout=W.Layout(max_width="100%"))
    chart_note = W.HTML()
    result, log = W.HTML(), W.Output()
    state = {"error": None}
    allocations = {}  # (target, cap) -> slider ratios: Enter, then a click on Fill, allocate once

    def ratios() -> dict[str, float]:
        return {labels[label]: round(float(s.value), 6) for label, s in sliders.items()}

    def update_notes() -> None:
        for label, s in sliders.items():
            n = width[labels[label]]
            k = kept(n, s.value)
            text = f"keeps {k} of {n} filters" if k >= 1 else f"<b>keeps 0 of {n}</b>: {bound_text(n)}"
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
            return None
        state["error"] = None
        summary.value = _summary_html(p)
        chart.value, chart.layout.display = _png(channel_chart(p.channels)), None
        chart_note.value = ""
        button.disabled = False
        return p

    def forget_results() -> None:
        """The ratios changed: a fine-tune result (and its log) or a fill note would describe other ratios."""
        result.value, fill_note.value = "", ""
        log.clear_output()

    def slider_moved(_=None):
        forget_results()
        refresh()

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
        key = (target.value.strip(), float(cap.value))
        try:
            wanted = Target.parse(key[0])
            if key not in allocations:
                allocations[key] = slider_ratios_for_target(arch, baseline, wanted, max_ratio=key[1])
        except Exception as e:
            fill_note.value = _red(f"no allocation: {_one_line(e)}")
            return
        for s in sliders.values():
            s.unobserve(slider_moved, names="value")
        try:
            for label, s in sliders.items():
                s.value = min(allocations[key][labels[label]], s.max)
        finally:
            for s in sliders.values():
                s.observe(slider_moved, names="value")
        forget_results()
        p = refresh()
        asked = wanted.describe() + ("" if wanted.factor else " in all")
        reached = f": now {p.macs:,} MACs ({p.mac_reduction:.2f}x fewer)" if p is not None else ""
        fill_note.value = f"<small style='color:#666'>sliders set for {html.escape(asked)}{reached}</small>"

    for s in sliders.values():
        s.observe(slider_moved, names="value")
    button.on_click(train)
    fill.on_click(fill_from_target)
    target.observe(fill_from_target, names="value")
    first = refresh()
    panel = _panel_class()([W.HBox([slider_box, side]), chart, chart_note, result, log])
    panel.snapshot = [] if first is None else static_snapshot(
        first, f"{arch}: snapshot at the panel's starting ratios (the live panel below needs a running kernel)")
    for name, value in dict(refresh=refresh, ratios=ratios, sliders=sliders, notes=notes, summary=summary,
                            target=target, cap=cap, fill=fill, fill_note=fill_note, fill_from_target=fill_from_target,
                            button=button, chart=chart, result=result, train_log=log,
                            slider_box=slider_box).items():
        setattr(panel, name, value)  # for tests and for driving the panel from code
    return panel
