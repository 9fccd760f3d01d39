import copy

import pandas as pd
import pytest

from compress.metrics import count_macs, count_params
from compress.models import build_model
from compress.pruning import prune
from compress.ratios import (DEFAULT_CONFIGS, channel_targets, check_ratio, default_configs, expand,
                             max_ratio, ratios_from_sensitivity, round_ratios, select_config)

# what the `aggressive` ratios must reach on the full-width models (times fewer MACs and parameters)
TARGET_REDUCTION = {"resnet18": {"macs": 19, "params": 50}, "vgg16": {"macs": 8, "params": 50},
                    "vgg16_bn": {"macs": 8, "params": 50}}


@pytest.mark.parametrize("arch", ["resnet18", "vgg16", "vgg16_bn"])
def test_full_width_aggressive_config_reaches_the_target_compression(arch):
    base = build_model(arch)
    pruned = prune(copy.deepcopy(base), DEFAULT_CONFIGS[arch]["aggressive"])
    target = TARGET_REDUCTION[arch]
    assert count_params(base) / count_params(pruned) >= target["params"]
    assert count_macs(base) / count_macs(pruned) >= target["macs"]



def test_round_ratios_follow_the_linear_schedule():
    steps = round_ratios({"a": 0.6, "b": 0.0}, 3)
    assert [round(s["a"], 6) for s in steps] == [0.2, 0.4, 0.6] and all(s["b"] == 0 for s in steps)
    with pytest.raises(ValueError):
        round_ratios({"a": 0.5}, 0)


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, float("nan"), "0.5", True])
def test_ratios_outside_zero_one_are_refused(bad):
    with pytest.raises(ValueError, match=r"ratio"):
        check_ratio("conv", bad)


def test_expand_accepts_each_form_and_names_what_is_wrong():
    convs, sets = ["a", "b", "c"], {"a": ("a",), "b": ("b", "c")}
    assert expand(None, convs, sets, 0.5) == {"a": 0.5, "b": 0.5, "c": 0.5}
    assert expand(None, convs, sets, {"c": 0.25}) == {"a": 0.0, "b": 0.25, "c": 0.25}  # the coupled set follows
    with pytest.raises(ValueError, match="unknown conv layer"):
        expand(None, convs, sets, {"z": 0.5})
    with pytest.raises(ValueError, match="coupled convs"):
        expand(None, convs, sets, {"b": 0.5, "c": 0.25})
    with pytest.raises(ValueError, match="takes 8 per-block ratios"):
        expand("resnet18", convs, sets, [0.5, 0.5])


def test_the_largest_accepted_ratio_is_the_one_the_message_names():
    for n in (1, 2, 8, 64):
        bound = max_ratio(n)
        assert channel_targets({"c": n}, {"c": bound - 1e-9})["c"] == 1
        with pytest.raises(ValueError, match=f"ratios below {bound:.10g} keep at least 1 of {n} filters"):
            channel_targets({"c": n}, {"c": min(bound, 0.999999)} if n == 1 else {"c": bound})


def test_ratios_from_sensitivity_stop_at_the_first_ratio_over_budget():
    scan = pd.DataFrame({"layer": ["a"] * 5 + ["b"] * 5 + ["c"] * 2,
                         "ratio": [0, 0.2, 0.4, 0.6, 0.8] * 2 + [0, 0.95],
                         "top1": [90, 89.5, 89.2, 80, 89.9, 90, 85, 89, 89, 89, 70, 70]})
    assert ratios_from_sensitivity(scan, 1.0) == {"a": 0.4, "b": 0.0, "c": 0.0}
    assert ratios_from_sensitivity(scan, 100, max_ratio=0.6) == {"a": 0.6, "b": 0.6, "c": 0.0}
    assert default_configs("vgg16", scan)["sensitivity"] == {"a": 0.4, "b": 0.0, "c": 0.0}
    with pytest.raises(ValueError, match="ratio-0"):
        ratios_from_sensitivity(scan[scan.ratio > 0], 1.0)
    with pytest.raises(ValueError, match="non-negative"):
        ratios_from_sensitivity(scan, -1)


def test_the_configuration_carried_forward_is_chosen_on_validation_not_test():
    rounds = pd.DataFrame({
        "config": ["a", "a", "b", "b", "c", "c"], "round": [0, 1, 0, 1, 0, 1], "macs": [100, 10, 100, 5, 100, 50],
        "final_val_top1": [80, 79.5, 80, 70, 80, 79.9], "test_top1": [80, 70, 80, 79.9, 80, 80]})
    assert select_config(rounds, max_drop=1.0) == "a"  # fewest MACs within budget; b tests better but fails validation
    assert select_config(rounds, max_drop=0.0) == "c"  # none within budget: the most accurate on validation
