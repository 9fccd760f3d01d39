"""Run by tests/test_kernels.py in a fresh process (a hang or heap corruption must not take pytest with it):
gradients computed the way `train.fit` computes them, against an NCHW reference with oneDNN off.

    kernel_check.py convs 1,2,3 1,2   one JSON line per (input channels, stride) of a lone 1x1 conv, each after a
                                      `case <channels> <stride>` line
    kernel_check.py resnet            one JSON line: a pruned ResNet18 whose downsample convs have 4 inputs
"""
import copy
import json
import sys

import torch
import torch.nn.functional as F
from torch import nn

from compress.kernels import channels_last_training


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item() / max(b.abs().max().item(), 1e-12)


def gradients(model: nn.Module, x: torch.Tensor, loss, guarded: bool) -> tuple[dict, torch.Tensor]:
    """Parameter and input gradients: through the trainer's layout policy, or in NCHW with oneDNN off."""
    model.zero_grad(set_to_none=True)
    if guarded:
        with channels_last_training(model, "cpu") as channels_last:
            xi = (x.contiguous(memory_format=torch.channels_last) if channels_last else x.clone()).requires_grad_()
            loss(model(xi)).backward()
    else:
        xi = x.clone().requires_grad_()
        with torch.backends.mkldnn.flags(enabled=False):
            loss(model(xi)).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}, xi.grad


def lone_convs(in_channels, strides) -> None:
    for ic in in_channels:
        for stride in strides:
            print(f"case {ic} {stride}", flush=True)  # its clock starts here, after the imports (a hang: no row)
            conv = nn.Sequential(nn.Conv2d(ic, 8, 1, stride=stride, bias=False))
            x = torch.randn(128, ic, 32, 32)
            ref_w, ref_x = gradients(conv, x, lambda y: y.square().sum(), guarded=False)
            got_w, got_x = gradients(conv, x, lambda y: y.square().sum(), guarded=True)
            print(json.dumps({"ic": ic, "stride": stride, "dw": relative(got_w["0.weight"], ref_w["0.weight"]),
                              "dx": relative(got_x, ref_x)}), flush=True)


def pruned_resnet() -> None:
    from compress.models import build_model
    from compress.pruning import prune

    model = build_model("resnet18", width=0.125)  # residual streams of 8-16-32-64 channels
    prune(model, {"conv1": 0.5, "layer2.0.conv2": 0.5, "layer3.0.conv2": 0.5})  # downsample inputs: 4, 8, 16
    model.train()
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    loss = lambda out: F.cross_entropy(out, y)  # noqa: E731
    ref_w, ref_x = gradients(copy.deepcopy(model), x, loss, guarded=False)
    got_w, got_x = gradients(model, x, loss, guarded=True)
    worst = max(ref_w, key=lambda n: relative(got_w[n], ref_w[n]))
    print(json.dumps({"worst": worst, "dw": relative(got_w[worst], ref_w[worst]), "dx": relative(got_x, ref_x),
                      "downsample_inputs": [model.get_submodule(f"layer{s}.0.downsample.0").in_channels
                                            for s in (2, 3, 4)]}), flush=True)


if __name__ == "__main__":
    torch.manual_seed(0)
    if sys.argv[1] == "convs":
        lone_convs([int(c) for c in sys.argv[2].split(",")], [int(s) for s in sys.argv[3].split(",")])
    else:
        pruned_resnet()
