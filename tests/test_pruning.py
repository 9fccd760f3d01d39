import copy

import pytest
import torch

from conftest import tiny_model

from compress.checkpoint import load_checkpoint, save_checkpoint
from compress.metrics import conv_channels
from compress.pruning import CRITERIA, ChannelPruner, expand_ratios, prune
from compress.ratios import resnet18_ratios

BLOCKS = [0.25, 0.5, 0.25, 0.5, 0.25, 0.5, 0.25, 0.5]


def _model(arch, width=0.125, seed=0):
    return tiny_model(arch, width, seed)


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


def _output_stds(model, x):
    from torch import nn

    stds = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, n=n: stds.__setitem__(n, o.std().item()))
             for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return stds


def test_activation_scale_is_restored_after_pruning_a_model_without_bn():
    from compress.pruning import has_batchnorm, match_activation_scale

    reference = _model("vgg16", width=0.25)
    assert not has_batchnorm(reference) and has_batchnorm(_model("vgg16_bn"))
    x = torch.randn(64, 3, 32, 32)
    pruned = prune(copy.deepcopy(reference), 0.8)
    ref, before = _output_stds(reference, x), _output_stds(pruned, x)
    assert before["classifier"] < 0.7 * ref["classifier"]  # the scale lost to pruning compounds to the logits
    scales = match_activation_scale(pruned, reference, x)
    after = _output_stds(pruned, x)
    assert set(scales) == set(ref) and all(s > 0 for s in scales.values())
    for name in ref:
        assert after[name] == pytest.approx(ref[name], rel=1e-3), name
    logits = pruned(x)
    assert torch.isfinite(logits).all()
