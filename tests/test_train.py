import pandas as pd
import pytest
import torch

from compress.data import load_cifar10
from compress.models import build_model
from compress.train import TrainConfig, evaluate, fit, param_groups, warmup_linear_decay


def test_fit_learns_synthetic_data_and_reports_final_epoch(tiny_data):
    model = build_model("resnet18", width=0.125)
    before = evaluate(model, tiny_data.test)
    result = fit(model, tiny_data, TrainConfig(epochs=4, batch_size=32, lr=0.05, progress=False))
    assert isinstance(result.history, pd.DataFrame) and list(result.history.epoch) == [1, 2, 3, 4]
    assert result.test["top1"] > before["top1"] + 15
    assert result.test == evaluate(model, tiny_data.test)  # the reported number is the final model's
    assert result.best_val_top1 >= result.final_val_top1


def test_fit_is_seeded(tiny_data):
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = build_model("vgg16_bn", width=0.125)
        runs.append(fit(model, tiny_data, TrainConfig(epochs=1, batch_size=64, lr=0.05, seed=5, progress=False)).history)
    assert runs[0].train_loss.tolist() == runs[1].train_loss.tolist()


def test_distillation_runs_with_a_teacher(tiny_data):
    teacher = build_model("resnet18", width=0.25)
    student = build_model("resnet18", width=0.125)
    result = fit(student, tiny_data, TrainConfig(epochs=1, batch_size=64, progress=False), teacher=teacher)
    assert torch.isfinite(torch.tensor(result.history.train_loss.iloc[0]))


def test_no_weight_decay_on_bn_and_biases():
    decay, no_decay = param_groups(build_model("vgg16_bn", width=0.125), 5e-4)
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) > 0


def test_schedule_warms_up_then_decays_to_zero():
    f = warmup_linear_decay(100, 10)
    assert f(0) == pytest.approx(0.1) and f(9) == 1.0 and f(55) == pytest.approx(0.5) and f(100) == 0.0


def test_hooks_are_called(tiny_data):
    steps, epochs = [], []
    fit(build_model("resnet18", width=0.125), tiny_data, TrainConfig(epochs=2, batch_size=128, progress=False),
        step_hook=lambda m, s, t: steps.append((s, t)), epoch_hook=lambda m, e, n: epochs.append(e))
    assert epochs == [0, 1] and steps[-1][0] == steps[-1][1] == len(steps)


def test_real_data_one_epoch_beats_chance(real_source):
    data = load_cifar10(real_source, train_size=5000, val_size=500, test_size=1000)
    torch.manual_seed(0)
    model = build_model("resnet18", width=0.25)
    result = fit(model, data, TrainConfig(epochs=1, batch_size=128, lr=0.2, warmup_epochs=0.3, progress=False))
    assert result.test["top1"] > 25, f"one epoch on 5,000 images should clearly beat 10% chance: {result.test}"
