import pytest
import torch

from compress.models import ARCHS, build_model, conv_layers


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_shape_and_named_convs(arch):
    model = build_model(arch, width=0.125)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    names = list(conv_layers(model))
    if arch == "resnet18":
        assert len(names) == 20  # stem + 16 block convs + 3 downsample convs
        assert names[0] == "conv1" and "layer1.0.conv1" in names and "layer4.0.downsample.0" in names
    else:
        assert names == [f"conv{s}_{j}" for s, n in zip(range(1, 6), (2, 2, 3, 3, 3)) for j in range(1, n + 1)]


def test_full_width_sizes_match_the_literature():
    # CIFAR ResNet18 has 11.17M parameters; CIFAR VGG16 with one linear head 14.7M.
    assert sum(p.numel() for p in build_model("resnet18").parameters()) == 11_173_962
    assert sum(p.numel() for p in build_model("vgg16").parameters()) == 14_719_818


def test_width_multiplier_scales_channels():
    assert build_model("resnet18", width=0.25).conv1.out_channels == 16
    assert build_model("vgg16_bn", width=0.5).conv5_3.out_channels == 256


def test_vgg16_has_no_bn_and_vgg16_bn_has_13():
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in build_model("vgg16").modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in build_model("vgg16_bn").modules()) == 13


@pytest.mark.parametrize("bad", [{"arch": "resnet50"}, {"arch": "vgg16", "width": 0}])
def test_bad_model_arguments(bad):
    with pytest.raises(ValueError):
        build_model(bad["arch"], width=bad.get("width", 1.0))
