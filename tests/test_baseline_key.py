"""The `cpu` baselines take hours of CPU each: their cache key must not move when unrelated code or
profile fields change. These hashes name the step folders of runs in progress; change them only on purpose
(a changed recipe), never as a side effect."""
import pytest

from compress.steps import baseline_key
from compress.profiles import get_profile
from compress.steps.cache import config_key


JPEG_FULL = "image folder cifar10-jpeg.tar.gz (JPEG CIFAR-10 copy): train 45000, val 5000, test 10000"


@pytest.mark.parametrize("arch, expected", [("resnet18", "3667aecd2e79001a"), ("vgg16_bn", "df3640f2bf78cd20"),
                                            ("vgg16", "8698f0d2067a829b")])
def test_cpu_baseline_cache_key_is_stable(arch, expected):
    p = get_profile("cpu")
    cfg = p.train_config(arch, seed=0, precision="bf16")  # what `auto` resolves to on a bf16 CPU
    assert config_key(baseline_key(arch, p.width, 0, JPEG_FULL, cfg.identity("cpu"))) == expected


def test_baseline_key_ignores_later_steps_settings():
    p, q = get_profile("cpu"), get_profile("cpu", finetune_epochs=9, qat_epochs=3, sensitivity_eval_size=500)
    keys = [baseline_key("resnet18", x.width, 0, JPEG_FULL, x.train_config("resnet18").identity("cpu"))
            for x in (p, q)]
    assert keys[0] == keys[1]
    other = get_profile("cpu", epochs=5, arch_epochs={})
    assert baseline_key("resnet18", 1.0, 0, JPEG_FULL, other.train_config("resnet18").identity("cpu")) != keys[0]
