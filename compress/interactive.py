"""Tune prune ratios by hand and see the pruned architecture at once, before spending any training.

`preview` is the engine: it prunes a copy of the model and measures it (params, MACs, size, channels per
layer) in well under a second for CIFAR models. `ratio_panel` wraps it in ipywidgets sliders (one per
ResNet18 block and residual stage, or one per VGG conv) with a button that fine-tunes and evaluates the
chosen ratios with the session's profile. People who prefer code pass a plain dict to `preview`.
"""
from __future__ import annotations

import copy

import pandas as pd
from torch import nn

from . import metrics
from .pruning import RESNET18_BLOCKS, RESNET18_STAGE_STREAMS, expand_ratios, prune


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
    from .importance import ratios_from_sensitivity

    derived = ratios_from_sensitivity(scan, max_drop)
    return {c: float(derived.get(c, 0.0)) for c in convs}


def preview(model: nn.Module, arch: str, ratios, *, criterion: str = "l1") -> dict:
    """What pruning `model` with `ratios` would give, measured on a copy (the model is untouched).

    Returns params, MACs, size (MB), their reduction factors against the unpruned model, and a table of
    output channels per conv layer before and after.
    """
    expand_ratios(arch, model, ratios)  # a bad name or ratio fails here, before any work
    before = metrics.conv_channels(model)
    pruned = prune(copy.deepcopy(model).cpu(), ratios, criterion=criterion if criterion != "taylor" else "l1")
    after = metrics.conv_channels(pruned)
    base_params, base_macs = metrics.count_params(model), metrics.count_macs(model)
    params, macs = metrics.count_params(pruned), metrics.count_macs(pruned)
    return {"params": params, "macs": macs, "size_mb": metrics.size_mb(pruned),
            "param_reduction": base_params / params, "mac_reduction": base_macs / macs,
            "channels": pd.DataFrame({"layer": list(before), "before": list(before.values()),
                                      "after": [after[n] for n in before]}), "model": pruned}


def _summary_html(p: dict) -> str:
    return (f"<b>params</b> {p['params'] / 1e6:.3f} M ({p['param_reduction']:.1f}x fewer) &nbsp; "
            f"<b>MACs</b> {p['macs'] / 1e6:.1f} M ({p['mac_reduction']:.1f}x fewer) &nbsp; "
            f"<b>size</b> {p['size_mb']:.2f} MB")


def ratio_panel(session, baseline: nn.Module, *, scan: pd.DataFrame | None = None, max_drop: float = 1.0):
    """Sliders over the prunable units, a live summary and channel chart, and a fine-tune button."""
    try:
        import ipywidgets as W
    except ImportError:  # e.g. a headless GPU box: the dict form still works
        print("ipywidgets is not installed: use interactive.preview(model, arch, {layer: ratio}) instead")
        return None
    import matplotlib.pyplot as plt
    from IPython.display import display

    from . import pipeline

    arch = session.arch
    labels = slider_layers(arch, baseline)
    start = seed_ratios(arch, baseline, scan, max_drop)
    sliders = {label: W.FloatSlider(value=start[conv], min=0.0, max=0.95, step=0.05, description=label,
                                    continuous_update=False, style={"description_width": "140px"},
                                    layout=W.Layout(width="420px"))
               for label, conv in labels.items()}
    summary, chart, trained = W.HTML(), W.Output(), W.Output()
    button = W.Button(description="fine-tune + evaluate", button_style="primary", icon="play")

    def ratios() -> dict[str, float]:
        return {labels[label]: s.value for label, s in sliders.items()}

    def refresh(_=None):
        try:
            p = preview(baseline, arch, ratios())
        except ValueError as e:
            summary.value = f"<span style='color:#b00'>{e}</span>"
            return
        summary.value = _summary_html(p)
        with chart:
            chart.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(9, 3))
            ch = p["channels"]
            ax.bar(ch.layer, ch.before, color="lightgray", label="unpruned")
            ax.bar(ch.layer, ch.after, color="C0", label="pruned")
            ax.set(ylabel="output channels (filters)", title="filters per conv layer")
            ax.tick_params(axis="x", rotation=75, labelsize=7)
            ax.legend(fontsize=7)
            display(fig)
            plt.close(fig)

    def train(_):
        with trained:
            trained.clear_output()
            print(f"fine-tuning with the {session.profile.name} profile ...")
            record = pipeline.finetune_ratios(session, baseline, ratios())
            print(f"test top-1 {record['test_top1']:.2f}% (final epoch), val top-1 {record['final_val_top1']:.2f}%, "
                  f"{record['params'] / 1e6:.3f} M params, {record['macs'] / 1e6:.1f} M MACs")

    for s in sliders.values():
        s.observe(refresh, names="value")
    button.on_click(train)
    refresh()
    panel = W.VBox([W.HBox([W.VBox(list(sliders.values())), W.VBox([summary, button, trained])]), chart])
    panel.refresh, panel.ratios, panel.sliders, panel.summary = refresh, ratios, sliders, summary  # for tests
    return panel
