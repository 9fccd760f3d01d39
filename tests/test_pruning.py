import copy
import json

import pytest
import torch
from torch import nn

from compress.checkpoint import load_checkpoint, save_checkpoint
from compress.metrics import conv_channels, count_macs, count_params
from compress.models import build_model
from compress.pruning import (CRITERIA, DEFAULT_CONFIGS, TARGET_REDUCTION, ChannelPruner, expand_ratios, prune,
                              prune_rounds, resnet18_ratios, round_ratios)
from compress.results import read_table

BLOCKS = [0.25, 0.5, 0.25, 0.5, 0.25, 0.5, 0.25, 0.5]


def _model(arch, width=0.125, seed=0):
    """A tiny model with random BN scales, so channels differ in importance and pruning changes outputs."""
    torch.manual_seed(seed)
    model = build_model(arch, width=width)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.2, 1.5)
            nn.init.uniform_(m.running_mean, -0.1, 0.1)
    return model.eval()


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape and torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("arch,criterion", [(a, c) for a in ("resnet18", "vgg16_bn", "vgg16") for c in CRITERIA
                                            if not (a == "vgg16" and c == "bn_scale")])
def test_every_criterion_gives_a_runnable_model_with_the_expected_channels(arch, criterion, tiny_data):
    model = _model(arch)
    before = conv_channels(model)
    prune(model, 0.5, criterion=criterion, data_for_taylor=tiny_data.train.subset(range(64)))
    assert conv_channels(model) == {n: round(c * 0.5) for n, c in before.items()}
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)  # the classifier keeps its 10 outputs
    assert all(p.grad is None for p in model.parameters())  # taylor leaves no stale gradients behind


def test_resnet_residual_channels_stay_consistent():
    model = _model("resnet18")
    prune(model, {"layer2.0.conv2": 0.5, "layer3.1.conv1": 0.75, "conv1": 0.25})
    ch = conv_channels(model)
    assert ch["layer2.0.conv2"] == ch["layer2.0.downsample.0"] == ch["layer2.1.conv2"] == 8  # one residual stream
    assert ch["conv1"] == ch["layer1.0.conv2"] == ch["layer1.1.conv2"] == 6  # the stem feeds stage 1's sum
    assert ch["layer3.1.conv1"] == 8 and ch["layer3.0.conv2"] == 32
    for name, m in model.named_modules():
        if hasattr(m, "downsample"):  # every block adds tensors of equal width
            width_in = m.conv1.in_channels
            assert m.bn2.num_features == m.conv2.out_channels == (m.downsample[0].out_channels if m.downsample else width_in)
            assert m.conv2.in_channels == m.conv1.out_channels == m.bn1.num_features
    assert model.fc.in_features == ch["layer4.1.conv2"] and model.fc.out_features == 10
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_per_block_list_and_per_layer_dict_give_the_same_model():
    base = _model("resnet18")
    by_list = prune(copy.deepcopy(base), BLOCKS)
    by_dict = prune(copy.deepcopy(base), {f"layer{s}.{b}.conv1": r for (s, b), r in
                                          zip([(s, b) for s in range(1, 5) for b in range(2)], BLOCKS)})
    assert _same_state(by_list, by_dict) and conv_channels(by_list)["layer1.0.conv2"] == 8  # streams untouched
    vgg = _model("vgg16")
    ratios = [0.1 * (i % 5) for i in range(13)]
    names = list(conv_channels(vgg))
    assert _same_state(prune(copy.deepcopy(vgg), ratios), prune(copy.deepcopy(vgg), dict(zip(names, ratios))))


def test_expand_ratios_fills_coupled_sets_and_every_conv():
    model = _model("resnet18")
    full = expand_ratios("resnet18", model, {"layer3.0.downsample.0": 0.5})
    assert len(full) == 20 and full["layer3.0.conv2"] == full["layer3.1.conv2"] == 0.5 and full["layer3.0.conv1"] == 0
    assert expand_ratios("resnet18", model, resnet18_ratios(BLOCKS, [0.1, 0.2, 0.3, 0.4]))["layer1.1.conv2"] == 0.1
    sets = ChannelPruner(model).sets
    assert len(sets) == 12 and sets["conv1"] == ("conv1", "layer1.0.conv2", "layer1.1.conv2")


def test_round_to_keeps_multiples():
    model = prune(_model("vgg16_bn", width=0.25), 0.3, round_to=4)
    assert all(c % 4 == 0 for c in conv_channels(model).values())


def test_pruned_model_survives_a_weights_only_checkpoint(tmp_path):
    model = prune(_model("resnet18"), resnet18_ratios(BLOCKS, [0.25, 0.5, 0.5, 0.75]))
    model.train(False)
    path = save_checkpoint(model, tmp_path / "p.pt", "resnet18", 0.125)
    torch.load(path, weights_only=True)
    loaded, _ = load_checkpoint(path, "resnet18")
    x = torch.randn(4, 3, 32, 32)
    assert conv_channels(loaded) == conv_channels(model)
    assert torch.equal(loaded.eval()(x), model(x))


BAD_INPUTS = [
    ("resnet18", {"layer9.conv1": 0.5}, {}, "valid names"),
    ("resnet18", {"conv1": 1.0}, {}, r"outside \[0, 1\)"),
    ("resnet18", {"conv1": -0.1}, {}, r"outside \[0, 1\)"),
    ("resnet18", {"conv1": "0.5"}, {}, "must be a number"),
    ("resnet18", BLOCKS[:7], {}, "takes 8 per-block"),
    ("vgg16", [0.5] * 12, {}, "takes 13 per-conv"),
    ("resnet18", {"conv1": 0.95}, {}, "0 filters"),
    ("resnet18", {"layer2.0.conv2": 0.5, "layer2.1.conv2": 0.25}, {}, "one ratio"),
    ("vgg16", 0.5, {"criterion": "bn_scale"}, "no BatchNorm"),
    ("vgg16_bn", 0.5, {"criterion": "taylor"}, "data_for_taylor"),
    ("vgg16_bn", 0.5, {"criterion": "l3"}, "unknown criterion"),
    ("vgg16_bn", 0.5, {"round_to": 0}, "round_to"),
    ("vgg16_bn", "half", {}, "ratios must be"),
]


@pytest.mark.parametrize("arch,ratios,kwargs,message", BAD_INPUTS)
def test_bad_input_is_a_clear_error_and_leaves_the_model_untouched(arch, ratios, kwargs, message):
    model = _model(arch).train()
    reference = copy.deepcopy(model)
    with pytest.raises(ValueError, match=message):
        prune(model, ratios, **kwargs)
    assert _same_state(model, reference) and model.training


def test_prune_keeps_the_training_mode():
    model = _model("vgg16_bn").train()
    prune(model, 0.25)
    assert model.training


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


def test_prune_rounds_writes_tables_and_resumes_from_the_cache(tmp_path, tiny_data, monkeypatch):
    from compress.pipeline import Session

    s = Session.create("resnet18", "smoke", data=tiny_data, device="cpu", cache_root=tmp_path / "cache")
    baseline = _model("resnet18")
    reference = copy.deepcopy(baseline)
    configs = {"uniform": 0.5, "blocks": BLOCKS}
    result = prune_rounds(s, baseline, configs, 2, out_dir=tmp_path / "out", progress=False)
    assert _same_state(baseline, reference)  # the baseline is never pruned in place

    rounds, prov = read_table(tmp_path / "out" / "prune_rounds.csv")
    channels, _ = read_table(tmp_path / "out" / "prune_channels.csv")
    assert prov["config"]["rounds"] == 2 and prov["data_source"] == "synthetic"
    assert list(rounds.config) == ["uniform"] * 3 + ["blocks"] * 3 and list(rounds["round"]) == [0, 1, 2] * 2
    for col in ("params", "macs", "size_mb", "gzip_mb", "test_top1", "final_val_top1", "best_val_top1", "mean_val_top1"):
        assert rounds[col].notna().all()
    assert rounds.params.iloc[2] < rounds.params.iloc[1] < rounds.params.iloc[0]
    assert len(channels) == 2 * 3 * 20 and set(channels.columns) == {"config", "round", "layer", "channels"}
    final = channels[(channels.config == "uniform") & (channels["round"] == 2)].set_index("layer").channels
    assert final.to_dict() == {n: round(c * 0.5) for n, c in conv_channels(reference).items()}
    halfway = channels[(channels.config == "uniform") & (channels["round"] == 1)].set_index("layer").channels
    assert halfway["layer4.1.conv2"] == round(64 * 0.75)
    ckpt = tmp_path / "out" / "checkpoints" / "uniform-round2.pt"
    loaded, meta = load_checkpoint(ckpt, "resnet18")
    assert conv_channels(loaded) == final.to_dict() and meta["round"] == 2

    def no_training(*args, **kwargs):
        raise AssertionError("a cached round was retrained")

    monkeypatch.setattr("compress.pruning.fit", no_training)
    again = prune_rounds(s, baseline, configs, 2, progress=False)
    assert again.rounds.drop(columns="train_seconds").equals(result.rounds.drop(columns="train_seconds"))


def test_cli_sensitivity_then_prune(tmp_path, monkeypatch):
    from compress.__main__ import main
    from compress.data import synthetic_arrays

    monkeypatch.setattr("compress.data.load_arrays", lambda source=None, cache_dir=None: synthetic_arrays(384, 128))
    save_checkpoint(_model("vgg16_bn"), tmp_path / "baseline.pt", "vgg16_bn", 0.125)
    common = ["--arch", "vgg16_bn", "--profile", "smoke", "--out", str(tmp_path), "--device", "cpu"]
    main(["sensitivity", *common, "--ratios", "0,0.5"])
    scan, _ = read_table(tmp_path / "sensitivity.csv")
    assert len(scan) == 13 * 2 and json.loads((tmp_path / "sensitivity_ratios.json").read_text())["ratios"]
    main(["prune", *common, "--configs", "sensitivity", "--ratios", "0.25", "--rounds", "1", "--no-distill"])
    rounds, _ = read_table(tmp_path / "prune_rounds.csv")
    assert set(rounds.config) == {"sensitivity", "custom"} and (tmp_path / "checkpoints" / "custom-round1.pt").is_file()
