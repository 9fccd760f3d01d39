"""The verbs that take data also take a user's own batches: a torch DataLoader (or any iterable of (images, labels)),
next to the project's CifarData / Split, with the same numbers where both describe the same images."""
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from compress.data import normalize
from compress.models import build_model
from compress.quant.qat import quantize_qat
from compress.sensitivity import sensitivity_scan
from compress.train import TrainConfig, evaluate, fit
from conftest import tiny_model


def loader(split, batch_size=32, *, floats=False, shuffle=False):
    """A DataLoader over a Split's images: uint8 as stored, or normalised float32 as a torchvision pipeline gives."""
    images = normalize(split.images) if floats else split.images
    return DataLoader(TensorDataset(images, split.labels), batch_size=batch_size, shuffle=shuffle)


@pytest.mark.parametrize("floats", [False, True])
def test_evaluate_on_a_dataloader_matches_the_split(tiny_data, floats):
    model = tiny_model("resnet18")
    expected = evaluate(model, tiny_data.test, batch_size=32, predictions=True)
    got = evaluate(model, loader(tiny_data.test, floats=floats), predictions=True)
    assert got["top1"] == expected["top1"] and got["top5"] == expected["top5"]
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert torch.equal(got["pred"], expected["pred"])


def test_evaluate_takes_a_generator_and_names_a_bad_batch(tiny_data):
    model = tiny_model("vgg16_bn")
    batches = ((x, y) for x, y in loader(tiny_data.test))
    assert evaluate(model, batches)["top1"] == evaluate(model, tiny_data.test)["top1"]
    with pytest.raises(TypeError, match="batch 0: expected a pair"):
        evaluate(model, [tiny_data.test.images])


def test_fit_trains_on_a_dataloader(tiny_data):
    torch.manual_seed(0)
    model = build_model("resnet18", width=0.125)
    before = evaluate(model, tiny_data.test)["top1"]
    train = loader(tiny_data.train, 32, floats=True, shuffle=True)
    result = fit(model, train, TrainConfig(epochs=3, lr=0.05, progress=False), val=loader(tiny_data.val), test=loader(tiny_data.test))
    assert list(result.history.epoch) == [1, 2, 3] and result.history.val_top1.notna().all()
    assert result.test["top1"] > before + 15 and len(result.test["pred"]) == len(tiny_data.test)
    assert result.test["top1"] == evaluate(model, tiny_data.test)["top1"]


def test_fit_without_val_or_test_reports_nan(tiny_data):
    batches = [(x, y) for x, y in loader(tiny_data.train, 64)]  # a plain list of batches works too
    result = fit(build_model("vgg16_bn", width=0.125), batches, TrainConfig(epochs=1, lr=0.05, progress=False))
    assert result.history.val_top1.isna().all() and result.test["top1"] != result.test["top1"]
    assert result.history.train_loss.notna().all()


def test_fit_refuses_what_it_cannot_train_on(tiny_data):
    cfg = TrainConfig(epochs=1, progress=False)
    with pytest.raises(TypeError, match="not on a bare Split"):
        fit(build_model("vgg16", width=0.125), tiny_data.train, cfg)
    with pytest.raises(ValueError, match="brings its own val and test"):
        fit(build_model("vgg16", width=0.125), tiny_data, cfg, test=loader(tiny_data.test))
    with pytest.raises(ValueError, match="no training batches"):
        fit(build_model("vgg16", width=0.125), [], cfg)


def test_sensitivity_scan_on_a_dataloader_matches_the_split(tiny_data):
    model = tiny_model("resnet18")
    layers = ["layer1.0.conv1", "layer3.0.conv1"]
    expected = sensitivity_scan(model, tiny_data.val, (0.5,), layers=layers, batch_size=16, progress=False)
    got = sensitivity_scan(model, iter(loader(tiny_data.val, 16)), (0.5,), layers=layers, progress=False)  # one-shot
    assert got[["layer", "ratio", "channels", "top1", "top5", "params", "macs"]].equals(
        expected[["layer", "ratio", "channels", "top1", "top5", "params", "macs"]])
    assert got.loss.tolist() == pytest.approx(expected.loss.tolist(), rel=1e-5)


def test_quantize_qat_on_a_dataloader(tiny_data):
    result = quantize_qat(tiny_model("resnet18"), loader(tiny_data.train, 64), TrainConfig(epochs=1, lr=0.01, progress=False),
                          device="cpu", test=iter(loader(tiny_data.test)))  # one-shot: scored before and after convert
    assert result.fit.history.val_top1.isna().all()
    assert len(result.test["pred"]) == len(tiny_data.test) and 0 <= result.test["top1"] <= 100
    assert result.test["top1"] == evaluate(result.model, tiny_data.test, device="cpu")["top1"]
