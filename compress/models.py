"""The three CIFAR-10 architectures, built by name, with stable readable layer names.

Users key per-layer prune ratios on module names, so the names are part of the API:

* ResNet18: `conv1`, `layer{1..4}.{0,1}.conv{1,2}`, `layer{2..4}.0.downsample.0`, `fc`
* VGG16 / VGG16_BN: `conv1_1` .. `conv5_3` (13 convs, pools after each stage), `classifier`

Every ReLU is its own module (not a shared functional call) so that quantization can observe and
fuse each activation separately.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

NUM_CLASSES = 10
ARCHS = ("resnet18", "vgg16", "vgg16_bn")


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + identity)


class ResNet18(nn.Module):
    """CIFAR form: 3x3 stem with no max-pool, BasicBlocks 2-2-2-2 at 64-128-256-512 channels."""

    def __init__(self, num_classes: int = NUM_CLASSES, width: float = 1.0):
        super().__init__()
        c = [_scaled(ch, width) for ch in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(3, c[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.relu = nn.ReLU(inplace=True)
        in_ch = c[0]
        for i, out_ch in enumerate(c):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(in_ch, out_ch, stride), BasicBlock(out_ch, out_ch)))
            in_ch = out_ch
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(in_ch, num_classes)
        reinitialize(self)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class VGG(nn.Sequential):
    """VGG16 for 32x32 inputs: 13 convs in 5 stages, a max-pool after each, then one linear layer.

    A flat Sequential with named children, so `conv3_2` is both the module name and what users type.
    """

    def __init__(self, batch_norm: bool, num_classes: int = NUM_CLASSES, width: float = 1.0):
        layers: list[tuple[str, nn.Module]] = []
        in_ch = 3
        for s, stage in enumerate(VGG16_STAGES, start=1):
            for j, ch in enumerate(stage, start=1):
                out_ch = _scaled(ch, width)
                layers.append((f"conv{s}_{j}", nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=not batch_norm)))
                if batch_norm:
                    layers.append((f"bn{s}_{j}", nn.BatchNorm2d(out_ch)))
                layers.append((f"relu{s}_{j}", nn.ReLU(inplace=True)))
                in_ch = out_ch
            layers.append((f"pool{s}", nn.MaxPool2d(2)))
        layers += [("flatten", nn.Flatten(1)), ("classifier", nn.Linear(in_ch, num_classes))]
        super().__init__(OrderedDict(layers))
        _init(self)


def reinitialize(model: nn.Module) -> nn.Module:
    """Fresh random weights (and BN statistics) with this module's recipe, in place, for any channel counts:
    what a model built by `build_model` starts from, and what a pruned architecture trained from scratch
    starts from (Liu et al. 2019's control). Uses torch's global generator; seed it first."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
    _init(model)
    for m in model.modules():  # zero-init the last BN of each residual branch: each block starts as identity
        if isinstance(m, BasicBlock):
            nn.init.zeros_(m.bn2.weight)
    return model


def _init(model: nn.Module) -> None:
    """Kaiming (fan-out) convs, unit BN, small linear: what lets plain VGG16 (no BN) train reliably."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def build_model(arch: str, width: float = 1.0, num_classes: int = NUM_CLASSES) -> nn.Module:
    """A fresh model by name: `resnet18`, `vgg16` or `vgg16_bn`; `width` scales every layer's channels."""
    if not 0 < width <= 4:
        raise ValueError(f"width must be in (0, 4], got {width}")
    if arch == "resnet18":
        return ResNet18(num_classes, width)
    if arch == "vgg16":
        return VGG(False, num_classes, width)
    if arch == "vgg16_bn":
        return VGG(True, num_classes, width)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {list(ARCHS)}")


def conv_layers(model: nn.Module) -> dict[str, nn.Conv2d]:
    """Every conv layer by its stable name, in forward order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def example_input(batch_size: int = 1, device: str | torch.device = "cpu") -> torch.Tensor:
    return torch.randn(batch_size, 3, 32, 32, device=device)
