import copy
import warnings

import pytest
import torch
import torch_pruning as tp
from torch import nn

from compress.data import calibration_batches, normalize
from compress.models import build_model
from compress.quant.int8 import (Int8Config, calibrate, convert_int8, is_quantized, prepare_int8, quantize_int8,
                                 quantized_module_names)
from compress.train import TrainConfig, evaluate, fit


@pytest.fixture(scope="module")
def trained(tiny_data):
    """A tiny ResNet18 trained for two epochs on the synthetic data: its predictions are not ties."""
    torch.manual_seed(0)
    model = build_model("resnet18", width=0.125)
    fit(model, tiny_data, TrainConfig(epochs=2, batch_size=64, lr=0.05, warmup_epochs=0.5, progress=False), device="cpu")
    return model.eval()


@pytest.fixture(scope="module")
def batches(tiny_data):
    return calibration_batches(tiny_data.train, 2, 64)


@pytest.mark.parametrize("bad, match", [({"preset": "best"}, "unknown INT8 preset"),
                                        ({"backend": "cuda"}, "unknown INT8 backend")])
def test_bad_settings_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        Int8Config(**bad)


@pytest.mark.parametrize("preset", ["default", "optimal"])
def test_int8_model_is_quantized_runs_and_agrees_with_float(trained, batches, tiny_data, preset):
    q = quantize_int8(trained, Int8Config(preset), batches).model
    names = quantized_module_names(q)
    assert is_quantized(q)
    assert names["conv1"] == "ConvReLU2d" and names["layer1.0.conv2"] == "Conv2d" and names["fc"] == "Linear"
    assert sum(n.startswith("layer") for n in names) == 19  # 16 block convs + 3 downsample convs, BN fused in
    x = normalize(tiny_data.test.images)
    with torch.no_grad():
        agree = (q(x).argmax(1) == trained(x).argmax(1)).float().mean().item()
    assert agree >= 0.8
    acc_q, acc_f = evaluate(q, tiny_data.test, device="cpu")["top1"], evaluate(trained, tiny_data.test, device="cpu")["top1"]
    assert abs(acc_q - acc_f) <= 10


def test_qnnpack_backend(trained, batches):
    q = quantize_int8(trained, Int8Config("default", "qnnpack"), batches).model
    assert is_quantized(q) and q(batches[0]).shape == (64, 10)


def test_convert_without_calibration_raises(trained):
    prepared = prepare_int8(trained)
    with pytest.raises(RuntimeError, match="Calibrate first"):
        convert_int8(prepared)
    with pytest.raises(ValueError, match="at least one batch"):
        calibrate(prepared, [])
    with pytest.raises(ValueError, match="calibration batches"):
        quantize_int8(trained, Int8Config(), []).model


def test_quantized_model_refuses_non_cpu_inputs(trained, batches):
    q = quantize_int8(trained, Int8Config(), batches).model
    with pytest.raises(RuntimeError, match="CPU only"):
        q(batches[0].to("meta"))


def test_leaves_model_untouched_and_keeps_torch_ao_quiet(trained, batches):
    before = copy.deepcopy(trained.state_dict())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q = quantize_int8(trained, Int8Config(), batches).model
        q(batches[0])
    assert not [w for w in caught if "torch.ao" in str(w.message) or "quantized tensor creation" in str(w.message)
                or "reduce_range" in str(w.message)]
    assert all(torch.equal(before[k], v) for k, v in trained.state_dict().items())


def test_pruned_and_plain_vgg_models_quantize(trained, batches):
    pruned = copy.deepcopy(trained)
    pruner = tp.pruner.MagnitudePruner(pruned, torch.randn(1, 3, 32, 32), tp.importance.MagnitudeImportance(p=1),
                                       pruning_ratio=0.5, ignored_layers=[pruned.fc])
    pruner.step()
    assert pruned.conv1.out_channels < trained.conv1.out_channels
    q = quantize_int8(pruned, Int8Config(), batches).model
    assert is_quantized(q) and q(batches[0]).shape == (64, 10)
    vgg = build_model("vgg16", width=0.125).eval()
    assert quantize_int8(vgg, Int8Config("default"), batches).model(batches[0]).shape == (64, 10)


def test_int8_file_is_about_four_times_smaller(batches):
    model = build_model("vgg16_bn", width=0.5).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
    from compress.metrics import size_mb

    assert size_mb(model) / size_mb(quantize_int8(model, Int8Config(), batches).model) > 3.5


def test_int8_accuracy_close_to_fp32_on_real_data(real_source):
    """A ResNet18 (width 0.125) trained briefly on 2500 real images keeps its accuracy within 2 points in INT8 on
    2000 test images (about 29% both ways, 0.0-0.5 points apart over seeds; width 0.25 on 5000 images: the same)."""
    from compress.data import load_cifar10

    data = load_cifar10(real_source, train_size=2500, val_size=500, test_size=2000)
    torch.manual_seed(0)
    model = build_model("resnet18", width=0.125)
    fit(model, data, TrainConfig(epochs=2, batch_size=64, lr=0.2, warmup_epochs=0.5, progress=False), device="cpu")
    fp32 = evaluate(model, data.test, device="cpu")["top1"]
    int8 = evaluate(quantize_int8(model, Int8Config(), calibration_batches(data.train, 8, 128)).model, data.test, device="cpu")["top1"]
    assert fp32 > 20, f"the FP32 model did not train ({fp32:.1f}%)"
    assert abs(int8 - fp32) <= 2.0, f"INT8 {int8:.1f}% vs FP32 {fp32:.1f}%"
