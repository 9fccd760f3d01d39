"""Pruning to a budget (compress/budget.py, compress/iterative.py): targets reached within 1% on every model,
coupled sets kept together, round_to respected, bad targets refused with one line."""
from __future__ import annotations

import copy
import random

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from torch import nn

from compress.budget import METHODS, CostModel, Target, allocate, drop_curves, prune_to_budget, schedule
from compress.iterative import iterative_prune, prune_step
from compress.metrics import count_macs, count_params
from compress.models import build_model, example_input
from compress.pruning import ChannelPruner


def torchvision_resnet18_cifar() -> nn.Module:
    """torchvision's ResNet18 adapted to 32x32 inputs the usual way: a 3x3 stem, no max-pool."""
    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model


def fake_scan(model: nn.Module, seed: int = 0) -> tuple[pd.DataFrame, dict[str, float]]:
    """A sensitivity-scan table for `model`: each set loses `k * ratio^2` points, k drawn per set."""
    pruner = ChannelPruner(model)
    rng = random.Random(seed)
    k = {s: rng.uniform(1, 40) for s in pruner.sets}
    rows = [{"layer": conv, "group": pruner.set_of[conv], "ratio": r, "top1": 90 - k[pruner.set_of[conv]] * r * r}
            for conv in pruner.convs for r in (0.0, 0.2, 0.4, 0.6, 0.8, 0.9)]
    return pd.DataFrame(rows), k


MODELS = {"resnet18": lambda: build_model("resnet18"), "vgg16": lambda: build_model("vgg16"),
          "vgg16_bn": lambda: build_model("vgg16_bn"), "torchvision_resnet18": torchvision_resnet18_cifar}


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: make().eval() for name, make in MODELS.items()}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("method", [m for m in METHODS if m != "torch-pruning"])  # the peer's: tests/test_peer.py
def test_targets_are_reached_within_one_percent(models, name, method):
    model = models[name]
    scan = fake_scan(model)[0] if method == "sensitivity" else None
    before = copy.deepcopy(model.state_dict())
    for factor in (2, 8, 32):
        a = allocate(model, factor, method, scan=scan)
        assert abs(a.mac_reduction - factor) / factor <= 0.01, (name, method, factor, a.mac_reduction)
        assert a.error() <= 0.01
    # the counted numbers are those of a real prune, and the model itself is untouched
    pruned, _ = prune_to_budget(copy.deepcopy(model), 32, method, scan=scan)
    assert count_macs(pruned) == a.macs and count_params(pruned) == a.params
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_parameter_and_absolute_targets(models):
    model = models["resnet18"]
    a = allocate(model, Target("params", 10), "global")
    assert abs(a.param_reduction - 10) / 10 <= 0.01
    b = allocate(model, "100M", "uniform")
    assert abs(b.macs - 100e6) / 100e6 <= 0.01


def test_coupled_sets_move_together_and_no_layer_is_emptied(models):
    model = models["resnet18"]
    a = allocate(model, 32, "global", max_ratio=0.9)
    pruner = ChannelPruner(model)
    for s, members in pruner.sets.items():
        assert len({a.channels[m] for m in members}) == 1
        assert a.keep[s] >= int(np.ceil(pruner.channels(s) * 0.1))  # the per-layer cap
    assert set(a.table.columns) >= {"layer", "channels_before", "channels_after", "mac_share"}
    assert a.table.mac_share.sum() < 1  # convs only: the classifier's MACs are the rest
    assert abs(a.table.macs_after.sum() / a.macs - 1) < 0.01


@pytest.mark.parametrize("round_to", [8, 16])
def test_round_to_keeps_multiples(models, round_to):
    a = allocate(models["vgg16_bn"], 4, "global", round_to=round_to)
    assert all(c % round_to == 0 for c in a.keep.values())
    assert abs(a.mac_reduction - 4) / 4 <= 0.01
    u = allocate(models["resnet18"], 4, "uniform", round_to=round_to)
    assert all(c % round_to == 0 for c in u.keep.values())


def test_sensitivity_takes_from_the_least_sensitive_sets(models):
    model = models["vgg16_bn"]
    scan, k = fake_scan(model, seed=3)
    a = allocate(model, 4, "sensitivity", scan=scan)
    ratio = {s: 1 - a.keep[s] / model.get_submodule(s).out_channels for s in a.keep}
    calm, touchy = min(k, key=k.get), max(k, key=k.get)
    assert ratio[calm] > ratio[touchy]


def test_uniform_is_one_ratio(models):
    a = allocate(models["vgg16"], 4, "uniform")
    ratios = np.array(list(a.ratios().values()))
    assert ratios.max() - ratios.min() < 0.05  # one ratio, up to rounding and the last few channels
    assert a.ratio == pytest.approx(0.5, abs=0.02)  # (1 - r)^2 = 1/4 on a chain of convs


def test_cost_model_matches_the_counters_for_random_allocations(models):
    rng = random.Random(0)
    for name in ("resnet18", "vgg16_bn", "torchvision_resnet18"):
        model = models[name]
        pruner = ChannelPruner(model)
        cost = CostModel(pruner, example_input(1))
        for _ in range(3):
            keep = {s: rng.randint(1, pruner.channels(s)) for s in pruner.sets}
            pruned = copy.deepcopy(model)
            prune_step(pruned, {c: keep[s] for s, members in pruner.sets.items() for c in members})
            assert cost.cost(keep) == (count_macs(pruned), count_params(pruned))


@pytest.mark.parametrize("bad, message", [
    (0.5, "below 1x"), ("abc", "factor such as 4x"), (1000, "unreachable"), ("1G", "above the model"),
])
def test_bad_targets_are_refused_with_one_line(models, bad, message):
    with pytest.raises(ValueError, match=message) as e:
        allocate(models["vgg16"], bad, "global")
    assert "\n" not in str(e.value)


def test_unknown_method_and_missing_scan_are_refused(models):
    with pytest.raises(ValueError, match="unknown allocation method 'magic'"):
        allocate(models["vgg16"], 2, "magic")
    with pytest.raises(ValueError, match="needs the validation sensitivity scan"):
        allocate(models["vgg16"], 2, "sensitivity")
    scan, _ = fake_scan(models["vgg16"])
    with pytest.raises(ValueError, match="no rows"):
        allocate(models["vgg16"], 2, "sensitivity", scan=scan[scan.group != "conv3_1"])
    with pytest.raises(ValueError, match="max_ratio"):
        allocate(models["vgg16"], 2, "global", max_ratio=1.0)


def test_drop_curves_are_monotone_and_clamped():
    scan = pd.DataFrame({"group": ["a"] * 4, "ratio": [0.0, 0.3, 0.6, 0.9], "top1": [80.0, 80.5, 70.0, 75.0]})
    x, y = drop_curves(scan, {"a": 10})["a"]
    assert list(y) == [0.0, 0.0, 10.0, 10.0]


def test_schedule_falls_geometrically_to_the_allocation(models):
    model = models["resnet18"]
    a = allocate(model, 16, "global")
    steps = schedule(model, a, 2)
    assert steps[-1] == a.channels
    middle = copy.deepcopy(model)
    prune_step(middle, steps[0])
    assert count_macs(model) / count_macs(middle) == pytest.approx(4, rel=0.03)  # sqrt(16)
    assert all(steps[0][c] >= steps[1][c] for c in steps[0])
    with pytest.raises(ValueError, match="steps"):
        schedule(model, a, 0)


def test_iterative_prune_fine_tunes_after_every_step():
    torch.manual_seed(0)
    model = build_model("resnet18", width=0.25)
    a = allocate(model, 4, "uniform")
    seen = []
    out = iterative_prune(model, schedule(model, a, 3), lambda m, k: seen.append((k, count_macs(m))) or k)
    assert out == [1, 2, 3] and [k for k, _ in seen] == [1, 2, 3]
    assert seen[0][1] > seen[1][1] > seen[2][1] == a.macs
    with pytest.raises(ValueError, match="empty"):
        iterative_prune(model, [], lambda m, k: None)


def test_prune_step_restores_scale_without_batchnorm():
    torch.manual_seed(0)
    model = build_model("vgg16", width=0.25).eval()
    x = torch.randn(8, 3, 32, 32)
    std = model(x).std().item()
    a = allocate(model, 8, "uniform")
    plain, rescaled = copy.deepcopy(model), copy.deepcopy(model)
    prune_step(plain, a.channels)
    prune_step(rescaled, a.channels, rescale_inputs=x)
    assert abs(rescaled(x).std().item() / std - 1) < abs(plain(x).std().item() / std - 1)
