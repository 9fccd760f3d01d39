import pytest

from compress.profiles import PROFILES, get_profile


def test_profiles_exist_and_scale():
    s, q, f = (PROFILES[n] for n in ("smoke", "quick", "full"))
    assert s.train_size < q.train_size and f.train_size is None
    assert s.epochs <= q.epochs <= f.epochs


def test_explicit_argument_overrides_one_field():
    p = get_profile("smoke", epochs=7)
    assert p.epochs == 7 and p.batch_size == PROFILES["smoke"].batch_size
    assert get_profile("smoke", epochs=None).epochs == PROFILES["smoke"].epochs


def test_unknown_profile_or_field_is_an_error():
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("huge")
    with pytest.raises(ValueError, match="unknown profile field"):
        get_profile("smoke", epoch=3)


def test_vgg16_gets_a_gentler_learning_rate():
    p = PROFILES["full"]
    assert p.lr_for("vgg16") < p.lr_for("resnet18")


def test_finetune_rate_is_scaled_like_the_baseline_rate():
    from compress.train import TrainConfig

    p = PROFILES["full"]
    assert p.finetune_lr_for("resnet18") == p.finetune_lr
    assert p.finetune_lr_for("vgg16") == pytest.approx(p.finetune_lr * p.lr_for("vgg16") / p.lr)
    assert TrainConfig.finetune_from_profile(p, arch="vgg16").lr == p.finetune_lr_for("vgg16")
    assert TrainConfig.finetune_from_profile(p, arch="vgg16", lr=0.3).lr == 0.3
