from types import SimpleNamespace

import pytest
import torch

from compress import interactive, metrics
from compress.models import build_model
from compress.pruning import prune


@pytest.mark.parametrize("arch, ratios", [
    ("resnet18", {"layer1.0.conv1": 0.5, "layer3.1.conv1": 0.25, "layer2.0.conv2": 0.5}),
    ("vgg16_bn", {"conv1_1": 0.5, "conv5_3": 0.75}),
])
def test_preview_matches_real_pruning_and_leaves_the_model(arch, ratios):
    model = build_model(arch, width=0.25)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    p = interactive.preview(model, arch, ratios)
    real = prune(build_model(arch, width=0.25), ratios)  # same init seed? compare structure, not weights
    assert p.params == metrics.count_params(real) and p.macs == metrics.count_macs(real)
    assert dict(zip(p.channels.layer, p.channels.after)) == metrics.conv_channels(real)
    assert p.param_reduction > 1 and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_preview_rejects_bad_ratios_before_work():
    with pytest.raises(ValueError, match="unknown conv layer"):
        interactive.preview(build_model("vgg16", width=0.125), "vgg16", {"conv9_9": 0.5})
    with pytest.raises(ValueError):
        interactive.preview(build_model("vgg16", width=0.125), "vgg16", {"conv1_1": 1.0})


def test_sliders_cover_blocks_and_stages_or_every_vgg_conv():
    assert len(interactive.slider_layers("resnet18", build_model("resnet18", width=0.125))) == 12
    assert len(interactive.slider_layers("vgg16", build_model("vgg16", width=0.125))) == 13


def test_seed_ratios_come_from_the_scan():
    import pandas as pd

    model = build_model("vgg16", width=0.125)
    scan = pd.DataFrame([{"layer": l, "ratio": r, "top1": 50 - (40 * r if l == "conv1_1" else 0)}
                         for l in interactive.slider_layers("vgg16", model) for r in (0.0, 0.5, 0.9)])
    seeded = interactive.seed_ratios("vgg16", model, scan, max_drop=1.0)
    assert seeded["conv1_1"] == 0.0 and seeded["conv5_3"] == 0.9


def test_panel_updates_its_summary_when_a_slider_moves(tiny_data):
    from compress.steps import Session

    s = Session.create("vgg16_bn", "smoke", data=tiny_data)
    panel = interactive.ratio_panel(s, build_model("vgg16_bn", width=0.125))
    first = panel.summary.value
    panel.sliders["conv3_1"].value = 0.5
    assert panel.summary.value != first and "fewer" in panel.summary.value


# ----------------------------------------------------------------------------- the panel, driven headless
def _panel(arch="vgg16_bn"):
    """A panel on a tiny model; the panel reads only `arch` and `profile.name` from the session."""
    from types import SimpleNamespace

    session = SimpleNamespace(arch=arch, profile=SimpleNamespace(name="smoke"))
    return interactive.ratio_panel(session, build_model(arch, width=0.125))


def _force_invalid(panel, label="conv1_1", value=0.99):
    """Past the slider's max, as a user cannot: the panel must still cope (e.g. a future arch or a bug)."""
    slider = panel.sliders[label]
    slider.max = value
    slider.value = value


def _descendants(widget):
    out = []
    for child in getattr(widget, "children", ()):
        out += [child, *_descendants(child)]
    return out


def test_panel_layout_keeps_sliders_readable_and_results_below():
    panel = _panel()
    for s in panel.sliders.values():
        assert s.readout_format == ".3f" and s.layout.width == s.layout.min_width and s.layout.width.endswith("px")
    box = panel.slider_box.layout
    assert box.width.endswith("px") and box.min_width == box.width and box.flex.startswith("0 0")
    top = panel.children[0]
    assert panel.slider_box in top.children
    for grows in (panel.result, panel.train_log):  # below the sliders and chart, never in a column beside them
        assert grows not in _descendants(top)
        assert panel.children.index(grows) > panel.children.index(panel.chart)
    assert panel.button.description == "Fine-tune & evaluate"
    assert int(panel.button.layout.width.removesuffix("px")) >= 190


def test_fine_tune_button_is_disabled_while_ratios_are_invalid(monkeypatch):
    from compress import steps

    calls = []
    monkeypatch.setattr(steps, "finetune_ratios", lambda *a, **k: calls.append(a))
    panel = _panel()
    assert not panel.button.disabled
    _force_invalid(panel)
    assert panel.button.disabled
    panel.button.click()  # a click that slips through still validates before calling anything
    assert calls == [] and "invalid" in panel.result.value and "conv1_1" in panel.result.value
    assert "Traceback" not in panel.result.value and "\n" not in panel.result.value
    panel.sliders["conv1_1"].value = 0.5
    assert not panel.button.disabled


def test_fine_tune_failure_is_one_red_line_and_success_reports_accuracy(monkeypatch):
    from compress import steps

    def fails(*_a, **_k):
        raise RuntimeError("CUDA out of memory.\n  Tried to allocate 2.00 GiB")

    monkeypatch.setattr(steps, "finetune_ratios", fails)
    panel = _panel()
    panel.sliders["conv3_1"].value = 0.5
    panel.button.click()
    line = panel.result.value
    assert "RuntimeError: CUDA out of memory. Tried to allocate" in line and "#b00" in line and "Traceback" not in line
    assert "\n" not in line and "<br" not in line
    assert not panel.button.disabled  # the ratios are still valid: a retry is allowed

    record = {"test_top1": 61.234, "final_val_top1": 60.5, "params": 123456, "macs": 7_800_000}
    seen = []
    monkeypatch.setattr(steps, "finetune_ratios", lambda s, b, r: seen.append(r) or record)
    panel.button.click()
    assert seen[0]["conv3_1"] == 0.5 and "61.23%" in panel.result.value and "#b00" not in panel.result.value


def test_invalid_ratios_blank_the_chart_and_numbers():
    panel = _panel()
    assert panel.chart.value[:4] == b"\x89PNG" and "fewer" in panel.summary.value
    _force_invalid(panel)
    assert panel.chart.value == b"" and panel.chart.layout.display == "none"
    assert "invalid" in panel.summary.value and "fewer" not in panel.summary.value and " M " not in panel.summary.value
    assert "keeps 0 of 8" in panel.notes["conv1_1"].value
    panel.sliders["conv1_1"].value = 0.5
    assert panel.chart.value[:4] == b"\x89PNG" and panel.chart.layout.display is None and "fewer" in panel.summary.value


def test_bound_is_the_one_pruning_enforces_and_sliders_stop_below_it():
    from compress.pruning import channel_targets

    for n in (1, 2, 3, 7, 8, 16, 64, 512):
        bound = interactive.max_ratio(n)
        just_below = bound - 1e-9
        assert channel_targets({"c": n}, {"c": just_below})["c"] == 1 == interactive.kept(n, just_below)
        with pytest.raises(ValueError):
            channel_targets({"c": n}, {"c": bound})
        top = interactive.slider_max(n)
        assert interactive.kept(n, top) == 1 and top < bound  # the last position keeps exactly one filter
    assert interactive.bound_text(8) == "at most 0.93 keeps a filter (of 8)"
    for n in (1, 2, 3, 8, 64, 512):  # the ratio the sentence names keeps one filter; a hundredth more may not
        at_most = float(interactive.bound_text(n).split()[2])
        assert interactive.kept(n, at_most) >= 1 and at_most + 0.01 >= interactive.max_ratio(n)

    model = build_model("vgg16", width=0.125)  # conv1_1 has 8 filters
    p = interactive.preview(model, "vgg16", {"conv1_1": 0.92})  # accepted, though 0.92 > (n - 1) / n = 0.875
    assert dict(zip(p.channels.layer, p.channels.after))["conv1_1"] == 1
    with pytest.raises(ValueError, match=r"ratios below 0\.9375 keep at least 1 of 8 filters"):
        interactive.preview(model, "vgg16", {"conv1_1": 0.94})

    panel = _panel()
    s = panel.sliders["conv1_1"]
    assert s.max == 0.875 and s.step == 0.125 and "at most 0.93 keeps a filter" in s.tooltip
    assert panel.notes["conv1_1"].value.endswith("keeps 8 of 8 filters</small>")
    s.value = 0.95  # an impossible value cannot be chosen
    assert s.value == 0.875 and not panel.button.disabled and "keeps 1 of 8 filters" in panel.notes["conv1_1"].value
    _force_invalid(panel)
    assert "keeps 0 of 8</b>: at most 0.93 keeps a filter" in panel.notes["conv1_1"].value


def test_chart_legends_say_kept_and_removed():
    import pandas as pd

    ch = pd.DataFrame({"layer": ["a", "b"], "before": [8, 16], "after": [2, 16]})
    ax = interactive.channel_chart(ch).axes[0]
    kept, removed = ax.containers
    assert [ax.get_legend().texts[i].get_text() for i in (0, 1)] == ["kept", "removed"]
    assert [b.get_height() for b in kept] == [2, 16]
    assert [b.get_height() for b in removed] == [6, 0] and [b.get_y() for b in removed] == [2, 16]
    assert "output channels" in ax.get_ylabel() and ax.get_xlabel()


def test_round_chart_labels_kept_channels_not_pruned_ones():
    import matplotlib.pyplot as plt
    import pandas as pd

    from compress.report import plots

    rounds = pd.DataFrame({"config": ["x"] * 4, "round": [0, 0, 1, 1], "layer": ["a", "b"] * 2,
                           "channels": [8, 16, 2, 16]})
    fig = plots.channels_per_layer(rounds, "x")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().texts] == ["before pruning (all)", "kept after round 1"]
    assert "output channels" in ax.get_ylabel()
    plt.close(fig)


def test_preview_displays_in_a_few_lines_never_the_model():
    p = interactive.preview(build_model("resnet18", width=0.125), "resnet18",
                            {"layer3.0.conv1": 0.5, "layer4.0.conv2": 0.7})
    assert isinstance(p, interactive.Preview) and isinstance(p.model, torch.nn.Module)
    text = repr(p)
    assert len(text.splitlines()) <= 5 and "fewer" in text and "layer3.0.conv1 32->16" in text
    page = p._repr_html_()
    assert "<table" in page and "fewer" in page and "smaller" in page
    for shown in (text, page):
        assert "Conv2d" not in shown and "Sequential" not in shown and "BatchNorm" not in shown


@pytest.mark.parametrize("arch", ["resnet18", "vgg16_bn"])
def test_mac_target_fills_the_sliders_with_its_allocation(arch):
    panel = _panel(arch)
    panel.target.value = "3x"
    panel.fill_from_target()
    base = metrics.count_macs(build_model(arch, width=0.125))
    previewed = interactive.preview(build_model(arch, width=0.125), arch, panel.ratios())
    assert base / previewed.macs == pytest.approx(3, rel=0.02)
    assert "sliders set for 3x fewer MACs" in panel.fill_note.value
    assert not panel.button.disabled
    for s in panel.sliders.values():  # on the slider's grid: a knob click or an arrow key keeps the filled model
        steps = (s.value - s.min) / s.step
        assert steps == pytest.approx(round(steps), abs=1e-9) and s.min <= s.value <= s.max


def test_a_bad_mac_target_is_one_red_line_and_leaves_the_sliders():
    panel = _panel("vgg16")
    before = panel.ratios()
    panel.target.value = "half"
    panel.fill_from_target()
    assert "no allocation" in panel.fill_note.value and "#b00" in panel.fill_note.value
    assert panel.ratios() == before


def test_slider_positions_are_filter_counts_and_seeds_land_on_them():
    import pandas as pd

    model = build_model("vgg16", width=0.125)
    width = metrics.conv_channels(model)
    for n in (1, 3, 8, 64):
        positions = [k * interactive.slider_step(n) for k in range(n)]  # 0 .. slider_max
        assert positions[-1] == pytest.approx(interactive.slider_max(n))
        assert [interactive.kept(n, r) for r in positions] == list(range(n, 0, -1))  # one filter per step
        assert all(interactive.on_grid(n, r) == pytest.approx(r) for r in positions)
    scan = pd.DataFrame([{"layer": l, "ratio": r, "top1": 50.0} for l in width for r in (0.0, 0.3)])
    panel = interactive.ratio_panel(SimpleNamespace(arch="vgg16", profile=SimpleNamespace(name="smoke")), model, scan=scan)
    for label, s in panel.sliders.items():  # seeded at 0.3: on the grid, keeping what 0.3 keeps
        n = width[label]
        assert s.step == pytest.approx(1 / n) and (s.value * n) == pytest.approx(round(s.value * n))
        assert interactive.kept(n, s.value) == interactive.kept(n, 0.3)


def test_moving_a_slider_clears_the_old_result_and_fill_note(monkeypatch):
    from compress import steps

    record = {"test_top1": 61.234, "final_val_top1": 60.5, "params": 123456, "macs": 7_800_000}
    monkeypatch.setattr(steps, "finetune_ratios", lambda *a: record)
    panel = _panel()
    panel.target.value = "2x"  # a fill
    panel.button.click()
    assert "61.23%" in panel.result.value and "sliders set for 2x" in panel.fill_note.value
    moved = panel.sliders["conv1_1"]
    moved.value = 0.25 if moved.value != 0.25 else 0.5
    assert panel.result.value == "" and panel.fill_note.value == ""
    assert "fewer" in panel.summary.value  # the numbers describe the new ratios


def test_the_target_box_submits_and_its_hint_fits_the_model():
    from compress.budget import Target

    panel = _panel("vgg16")
    base = metrics.count_macs(build_model("vgg16", width=0.125))
    hint = panel.target.placeholder.split(" or ")[-1]
    assert 0 < Target.parse(hint).count(base) < base  # a count the model can reach
    assert panel.target.continuous_update is False  # its value changes on Enter (or leaving the box)
    before = panel.ratios()
    panel.target.value = "3x"  # what Enter does: the new value reaches the kernel, the sliders fill
    assert panel.ratios() != before and "sliders set for 3x fewer MACs" in panel.fill_note.value


def test_a_mac_count_target_says_in_all_and_errors_say_MACs():
    panel = _panel("vgg16")
    base = metrics.count_macs(build_model("vgg16", width=0.125))
    panel.target.value = f"{base // 2 / 1e6:.3f}M"
    assert "MACs in all" in panel.fill_note.value and "fewer MACs in all" not in panel.fill_note.value
    panel.target.value = f"{2 * base / 1e6:.1f}M"
    assert "above the model" in panel.fill_note.value and "MACs" in panel.fill_note.value
    assert "macs" not in panel.fill_note.value


def test_an_unreachable_target_names_the_cap_the_panel_offers():
    panel = _panel("vgg16")
    panel.target.value = "60x"  # beyond the default cap of 0.9 on this model
    assert "unreachable" in panel.fill_note.value and "per-layer cap" in panel.fill_note.value
    assert panel.cap.description == "per-layer cap"
    panel.cap.value = 0.97
    panel.fill.click()
    assert "sliders set for 60x fewer MACs" in panel.fill_note.value


def test_displayed_panel_shows_a_static_snapshot_before_the_widgets(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw)))
    panel = _panel()
    panel.sliders["conv3_1"].value = 0.5  # the snapshot stays at the starting ratios
    panel._ipython_display_()
    (page, _), (image, _), (bundle, raw) = shown
    assert "fewer" in page._repr_html_() and "snapshot" in page._repr_html_()
    assert image.data[:4] == b"\x89PNG" and image.format == "png"
    assert raw and "application/vnd.jupyter.widget-view+json" in bundle
