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
    assert p["params"] == metrics.count_params(real) and p["macs"] == metrics.count_macs(real)
    assert dict(zip(p["channels"].layer, p["channels"].after)) == metrics.conv_channels(real)
    assert p["param_reduction"] > 1 and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


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
    from compress.pipeline import Session

    s = Session.create("vgg16_bn", "smoke", data=tiny_data)
    panel = interactive.ratio_panel(s, build_model("vgg16_bn", width=0.125))
    first = panel.summary.value
    panel.sliders["conv3_1"].value = 0.5
    assert panel.summary.value != first and "fewer" in panel.summary.value
