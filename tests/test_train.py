import pandas as pd
import pytest
import torch

from compress import device
from compress.data import load_cifar10
from compress.models import build_model
from compress.train import progress_path
from compress.files import read_json
from compress.train import TrainConfig, evaluate, fit, param_groups, warmup_linear_decay
from compress.device import bf16_pays, cpu_has_fast_bf16, resolve_precision
from conftest import Killed, kill_at


def test_fit_learns_synthetic_data_and_reports_final_epoch(tiny_data):
    model = build_model("resnet18", width=0.125)
    before = evaluate(model, tiny_data.test)
    result = fit(model, tiny_data, TrainConfig(epochs=4, batch_size=32, lr=0.05, progress=False))
    assert isinstance(result.history, pd.DataFrame) and list(result.history.epoch) == [1, 2, 3, 4]
    assert result.test["top1"] > before["top1"] + 15
    fp32 = evaluate(model, tiny_data.test)
    # the reported number is the final model's, in fp32 (oneDNN may pick another kernel on a later call)
    assert {k: result.test[k] for k in fp32} == pytest.approx(fp32, rel=1e-4, abs=1e-4)
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


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_killed_run_resumes_to_the_same_weights(tiny_data, tmp_path, precision):
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.05, seed=3, progress=False, precision=precision)
    torch.manual_seed(0)
    straight = build_model("resnet18", width=0.125)
    ref = fit(straight, tiny_data, cfg)

    state = tmp_path / "state.pt"
    torch.manual_seed(0)
    with pytest.raises(Killed):
        fit(build_model("resnet18", width=0.125), tiny_data, cfg, state_path=state, epoch_hook=kill_at(1))
    assert state.is_file()
    saved = read_json(progress_path(state))  # what the saved epoch cost, for the step cache
    assert saved["epoch"] == 1 and saved["epochs"] == 3 and saved["seconds"] > 0
    torch.manual_seed(99)  # a different process: nothing but the saved state may carry over
    resumed = build_model("resnet18", width=0.125)
    out = fit(resumed, tiny_data, cfg, state_path=state)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    assert out.history.drop(columns="seconds").equals(ref.history.drop(columns="seconds"))
    assert torch.equal(out.test.pop("pred"), ref.test.pop("pred"))  # image by image
    assert out.test == ref.test


def test_state_of_another_run_is_not_resumed(tiny_data, tmp_path):
    state = tmp_path / "state.pt"
    cfg = TrainConfig(epochs=2, batch_size=64, progress=False, precision="fp32")
    with pytest.raises(Killed):
        fit(build_model("resnet18", width=0.125), tiny_data, cfg, state_path=state, epoch_hook=kill_at(1))
    other = TrainConfig(epochs=2, batch_size=64, lr=0.01, progress=False, precision="fp32")
    assert len(fit(build_model("resnet18", width=0.125), tiny_data, other, state_path=state).history) == 2
    state.write_bytes(b"not a state")  # a corrupt file costs the epochs, not the run
    assert len(fit(build_model("resnet18", width=0.125), tiny_data, other, state_path=state).history) == 2


@pytest.mark.parametrize("flags, vendor, pays", [
    ({"avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}, "GenuineIntel", True),  # Sapphire Rapids and later
    ({"avx512f", "avx512_bf16"}, "GenuineIntel", False),  # Cooper Lake, or a VM hiding AMX: fp32 is faster
    ({"avx512f", "avx512_bf16"}, "AuthenticAMD", True),  # Zen 4 and later
    ({"avx2", "fma"}, "AuthenticAMD", False), (set(), "", False)])
def test_bf16_is_chosen_only_where_it_trains_faster(flags, vendor, pays):
    assert bf16_pays(flags, vendor) is pays


def test_precision_resolves_to_native_bf16_only(monkeypatch):
    monkeypatch.delenv("COMPRESS_PRECISION", raising=False)
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "cpu") == ("bf16" if cpu_has_fast_bf16() else "fp32")
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="half")


def test_bf16_training_reports_fp32_and_bf16_test_accuracy(tiny_data):
    result = fit(build_model("resnet18", width=0.125), tiny_data,
                 TrainConfig(epochs=1, batch_size=64, progress=False, precision="bf16"))
    assert abs(result.test["top1"] - result.test["top1_bf16"]) <= 5
    assert result.wall_seconds >= result.train_seconds > 0


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"epochs": -2}, {"batch_size": 0}, {"lr": 0.0}, {"lr": float("nan")}, {"warmup_epochs": -1}])
def test_train_config_rejects_impossible_settings(bad):
    with pytest.raises(ValueError):
        TrainConfig(epochs=bad.pop("epochs", 2), **bad)


def test_auto_precision_reads_this_cpu(monkeypatch):
    info = {"vendor_id": "GenuineIntel", "flags": "avx512f avx512_bf16"}
    monkeypatch.setattr(device, "cpu_info", lambda: info)
    assert device.resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(device, "cpu_info", lambda: {**info, "flags": "avx512f avx512_bf16 amx_bf16"})
    assert device.resolve_precision("auto", "cpu") == "bf16"


def test_compress_precision_decides_what_auto_means_and_nothing_else(monkeypatch):
    for forced in ("bf16", "fp32"):
        monkeypatch.setenv("COMPRESS_PRECISION", forced)
        assert resolve_precision("auto", "cpu") == forced
        assert TrainConfig(precision="auto").identity("cpu") == TrainConfig(precision=forced).identity("cpu")
    assert resolve_precision("bf16", "cpu") == "bf16"  # an explicit choice stands
    monkeypatch.setenv("COMPRESS_PRECISION", "fp16")
    with pytest.raises(ValueError, match="COMPRESS_PRECISION"):
        resolve_precision("auto", "cpu")


class _LeftRight(torch.nn.Module):
    """Classes 0-4 read the left half of the image, classes 5-9 the right half."""

    def forward(self, x):
        w = x.shape[-1] // 2
        return 100 * torch.stack([x[..., :w].mean((1, 2, 3))] * 5 + [x[..., w:].mean((1, 2, 3))] * 5, 1)


def test_evaluate_with_flip_scores_the_mean_of_an_image_and_its_mirror(tiny_data):
    plain = evaluate(_LeftRight(), tiny_data.test)
    flipped = evaluate(_LeftRight(), tiny_data.test, flip=True)
    # mirrored, left and right swap: averaged, all ten logits are equal, whatever the image and its label
    assert flipped["loss"] == pytest.approx(torch.log(torch.tensor(10.0)).item(), abs=1e-4)
    assert plain["loss"] > flipped["loss"] + 0.1  # unmirrored, the halves differ: half the classes lose


def test_heartbeat_prints_a_plain_line_with_rate_and_time_left(capsys):
    from compress.train import Heartbeat

    beat = Heartbeat("fine-tune", total=100, start=0, every=0.0)
    beat.step(10, epoch=0, epochs=2, seen=1280, images=6400, epoch_seconds=2.0)
    line = capsys.readouterr().out.strip()
    assert line.startswith("[fine-tune] epoch 1/2: 1280/6400 images, 640 img/s, about ") and line.endswith("of training left")
    quiet = Heartbeat("x", total=100, start=0, every=3600.0)
    quiet.step(10, 0, 2, 1280, 6400, 2.0)
    assert capsys.readouterr().out == ""
