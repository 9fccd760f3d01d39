import math

import pytest
import torch
from torch import nn

from compress.data import synthetic_data
from compress.models import build_model
from compress.quant.int8 import Int8Config, is_quantized, prepare_qat
from compress.quant.qat import QATConfig, freeze_schedule, quantize_qat
from compress.train import TrainConfig


@pytest.mark.parametrize("bad, match", [({"freeze_observers_at": 1.5}, "freeze_observers_at"),
                                        ({"freeze_bn_at": -0.1}, "freeze_bn_at")])
def test_bad_settings_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        QATConfig(**bad)
    with pytest.raises(TypeError, match="Int8Config"):
        QATConfig(int8="optimal")


def test_freeze_schedule_freezes_observers_then_bn_statistics():
    model = prepare_qat(build_model("resnet18", width=0.125))
    model(torch.randn(4, 3, 32, 32))
    hook = freeze_schedule(QATConfig(freeze_observers_at=0.5, freeze_bn_at=0.8))
    observers = [m for m in model.modules() if hasattr(m, "observer_enabled")]
    fused = [m for m in model.modules() if hasattr(m, "freeze_bn")]
    assert observers and len(fused) == 20  # every conv with its BN (and ReLU) fused into a QAT module

    hook(model, 4, 10)
    assert hook.frozen == set() and all(m.observer_enabled.item() == 1 for m in observers)
    hook(model, 5, 10)
    assert hook.frozen == {"obs"} and all(m.observer_enabled.item() == 0 for m in observers)
    assert not any(m.freeze_bn for m in fused)
    hook(model, 8, 10)
    assert hook.frozen == {"obs", "bn"} and all(m.freeze_bn for m in fused)
    model.train()  # fit calls train() every epoch: BN statistics must stay frozen
    assert all(not m.bn.training for m in fused)


def test_qat_trains_and_converts():
    data = synthetic_data(n_train=128, n_val=32, n_test=64)
    torch.manual_seed(0)
    model = build_model("resnet18", width=0.125)
    for m in model.modules():  # zero-init residual gammas would be nudged, see prepare_qat
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
    before = model.conv1.weight.detach().clone()
    train = TrainConfig(epochs=1, batch_size=64, lr=0.01, warmup_epochs=0.2, progress=False, precision="bf16")
    res = quantize_qat(model, data, train, QATConfig(Int8Config("optimal")), device="cpu")
    assert is_quantized(res.model) and res.model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert len(res.fit.history) == 1 and math.isfinite(res.fit.history.train_loss.item())
    assert 0 <= res.test["top1"] <= 100 and math.isfinite(res.test["loss"])
    assert torch.equal(model.conv1.weight, before)  # trains a copy
