"""The baseline's cache key: only what decides its weights, and the same on every machine (a published
baseline must match a fresh clone's key anywhere)."""
from compress import steps
from compress.profiles import get_profile
from compress.steps.cache import config_key


def test_baseline_key_ignores_later_steps_settings(tiny_data):
    keys = [steps.baseline_key(steps.Session.create("resnet18", "cpu", data=tiny_data, **over))[1]
            for over in ({}, {"finetune_epochs": 9, "qat_epochs": 3, "sensitivity_eval_size": 500})]
    assert keys[0] == keys[1]
    other = steps.Session.create("resnet18", "cpu", data=tiny_data, epochs=5, arch_epochs={})
    assert steps.baseline_key(other)[1] != keys[0]


def test_baseline_key_is_the_same_whatever_auto_resolves_to(tiny_data, monkeypatch):
    s = steps.Session.create("vgg16_bn", "cpu", data=tiny_data)
    monkeypatch.setenv("COMPRESS_PRECISION", "bf16")
    on_bf16 = config_key(steps.baseline_key(s)[1])
    monkeypatch.setenv("COMPRESS_PRECISION", "fp32")
    assert config_key(steps.baseline_key(s)[1]) == on_bf16
    assert steps.baseline_key(s)[1]["train"]["precision"] == get_profile("cpu").precision == "auto"
