import copy

import pytest

from conftest import tiny_model

from compress.sensitivity import l1_ranking, sensitivity_scan
from compress.metrics import conv_channels
from compress.pruning import prune
from compress.train import evaluate


def _model(arch, seed=0):
    return tiny_model(arch, seed=seed)


def test_l1_ranking_is_a_sorted_normalised_curve_per_layer():
    model = _model("vgg16_bn")
    df = l1_ranking(model)
    assert list(df.columns) == ["layer", "rank", "l1_norm", "normalized"]
    assert len(df) == sum(conv_channels(model).values())
    for layer, g in df.groupby("layer"):
        assert g.l1_norm.is_monotonic_decreasing and g.normalized.iloc[0] == 1.0 and list(g["rank"]) == list(range(1, len(g) + 1))
    first = model.conv1_1.weight.abs().sum((1, 2, 3)).max().item()
    assert df[df.layer == "conv1_1"].l1_norm.iloc[0] == pytest.approx(first)


@pytest.mark.parametrize("arch", ["resnet18", "vgg16_bn"])
def test_scan_has_one_row_per_layer_and_ratio_and_matches_one_shot_pruning(arch, tiny_data):
    model = _model(arch)
    ratios = [0.0, 0.25, 0.5, 0.75]
    scan = sensitivity_scan(model, tiny_data.val, ratios, progress=False)
    names = list(conv_channels(model))
    assert len(scan) == len(names) * len(ratios) and set(zip(scan.layer, scan.ratio)) == {(n, r) for n in names for r in ratios}
    unpruned = evaluate(model, tiny_data.val)
    zero = scan[scan.ratio == 0]
    assert (zero.top1 == unpruned["top1"]).all() and (zero.loss == unpruned["loss"]).all()
    for layer, ratio in [(names[1], 0.5), (names[-1], 0.75), (names[4], 0.25)]:
        row = scan[(scan.layer == layer) & (scan.ratio == ratio)].iloc[0]
        alone = prune(copy.deepcopy(model), {layer: ratio})
        assert row.channels == conv_channels(alone)[layer]
        assert row.top1 == evaluate(alone, tiny_data.val)["top1"] and row.loss == evaluate(alone, tiny_data.val)["loss"]
        assert row.params == sum(p.numel() for p in alone.parameters())
    assert not scan[scan.ratio > 0].loss.eq(unpruned["loss"]).all()  # pruning did change the model


def test_coupled_resnet_layers_share_their_rows(tiny_data):
    scan = sensitivity_scan(_model("resnet18"), tiny_data.val, [0.5], layers=["layer2.0.conv2", "layer2.1.conv2", "layer2.0.conv1"],
                            progress=False)
    a, b = (scan[scan.layer == n].drop(columns="layer").reset_index(drop=True) for n in ("layer2.0.conv2", "layer2.1.conv2"))
    assert a.equals(b) and set(a.group) == {"layer2.0.conv2"} and len(scan) == 6


def test_scan_with_other_criteria(tiny_data):
    model = _model("vgg16_bn")
    taylor = sensitivity_scan(model, tiny_data.val, [0.5], layers=["conv1_1"], criterion="taylor",
                              data_for_taylor=tiny_data.train.subset(range(64)), progress=False)
    assert list(taylor.channels) == [8, 4]


@pytest.mark.parametrize("kwargs,message", [({"layers": ["conv9_9"]}, "valid names"), ({"criterion": "bn_scale"}, "no BatchNorm")])
def test_scan_rejects_bad_input(kwargs, message, tiny_data):
    with pytest.raises(ValueError, match=message):
        sensitivity_scan(_model("vgg16"), tiny_data.val, [0.5], progress=False, **kwargs)
    with pytest.raises(ValueError, match=r"outside \[0, 1\)"):
        sensitivity_scan(_model("vgg16"), tiny_data.val, [1.0], progress=False)


def test_scan_has_one_row_per_layer_and_ratio_and_its_unpruned_rows_match_the_model(tiny_data):
    from compress.metrics import count_macs, count_params

    model = _model("resnet18")
    scan = sensitivity_scan(model, tiny_data.val, [0.0, 0.5, 0.0], layers=["conv1", "conv1", "layer1.0.conv1"],
                            progress=False)
    assert not scan.duplicated(["layer", "ratio"]).any() and len(scan) == 4
    unpruned = scan[scan.ratio == 0]
    assert (unpruned.macs == count_macs(model)).all() and (unpruned.params == count_params(model)).all()

