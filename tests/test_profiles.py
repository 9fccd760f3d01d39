import pytest

from compress.profiles import PROFILES, get_profile


def test_profiles_exist_and_scale():
    s, q, f = (PROFILES[n] for n in ("smoke", "quick", "full"))
    assert s.train_size < q.train_size and f.train_size is None
    assert s.epochs <= q.epochs <= f.epochs


def test_explicit_argument_overrides_one_field():
    p = get_profile("smoke", epochs=7)
    assert p.epochs == 7 and p.batch_size == PROFILES["smoke"].batch_size
    assert get_profile("quick", train_size=None).train_size is None  # None means "all of it", and can be chosen


@pytest.mark.parametrize("field,value,named", [
    ("epochs", 0, "epochs"), ("epochs", None, "epochs"), ("width", 0, "width"), ("lr", -0.1, "lr"),
    ("target_sparsity", 1.0, "target_sparsity"), ("sensitivity_ratios", (0.0, 1.2), "sensitivity ratio"),
    ("fixed_point_bits", (1, 8), "fixed-point bit width"), ("precision", "fp16", "precision"),
    ("arch_epochs", {"resnet50": 3}, "arch_epochs"), ("val_size", 2.5, "val_size"),
    ("qat_train_size", 0, "qat_train_size")])
def test_bad_fields_are_refused_with_their_name(field, value, named):
    with pytest.raises(ValueError, match=named):
        get_profile("smoke", **{field: value})


def test_every_profile_is_valid_and_the_cpu_one_uses_all_the_data():
    c = PROFILES["cpu"]
    assert c.width == 1.0 and c.train_size is None and c.val_size == 5000 and c.test_size is None


def test_unknown_profile_or_field_is_an_error():
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("huge")
    with pytest.raises(ValueError, match="unknown profile field"):
        get_profile("smoke", epoch=3)


def test_vgg16_gets_a_gentler_learning_rate():
    p = PROFILES["full"]
    assert p.lr_for("vgg16") < p.lr_for("resnet18")


def test_finetune_rate_is_scaled_like_the_baseline_rate():

    p = PROFILES["full"]
    assert p.finetune_lr_for("resnet18") == p.finetune_lr
    assert p.finetune_lr_for("vgg16") == pytest.approx(p.finetune_lr * p.lr_for("vgg16") / p.lr)
    assert p.finetune_config(arch="vgg16").lr == p.finetune_lr_for("vgg16")
    assert p.finetune_config(arch="vgg16", lr=0.3).lr == 0.3
