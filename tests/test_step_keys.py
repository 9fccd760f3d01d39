"""Which change reruns which step: every profile field changed in turn, and exactly the steps that read it get
new cache keys (`steps/keys.py`). A step that starts reading a field without declaring it, or a key that
grows a field it does not read, fails here."""
import dataclasses

import pytest

from compress.profiles import Profile, get_profile
from compress.steps.keys import STEPS, VERSIONS, reads

TRAINS = {"prune_round", "finetune_ratios", "sparse", "budget_round"}  # the fine-tunes (Profile.finetune_config)
FROM_SCRATCH = {"baseline", "budget_scratch"}  # the baseline recipe (Profile.train_config)
EVERY_RECIPE = TRAINS | FROM_SCRATCH | {"int8", "pruned_int8"}  # QAT is a fine-tune too
INT8 = {"int8", "pruned_int8"}

# field -> (another valid value, the steps whose keys must change); checked for ResNet18 on the `cpu` profile
EXPECTED = {
    "epochs": (7, set()),  # ResNet18 takes its epochs from arch_epochs
    "arch_epochs": ({}, FROM_SCRATCH),
    "precision": ("bf16", EVERY_RECIPE),
    "batch_size": (64, EVERY_RECIPE),
    "lr": (0.05, FROM_SCRATCH),  # fine-tunes scale their peak by lr_for(arch) / lr: 1 for ResNet18 either way
    "arch_lr": ({"resnet18": 0.05}, FROM_SCRATCH | TRAINS),
    "weight_decay": (1e-4, EVERY_RECIPE),
    "label_smoothing": (0.0, EVERY_RECIPE),
    "warmup_epochs": (0.5, EVERY_RECIPE),
    "eval_batch_size": (250, set()),  # evaluation batching changes no number
    "sensitivity_ratios": ((0.0, 0.5), {"sensitivity"}),
    "sensitivity_eval_size": (500, {"sensitivity"}),
    "prune_rounds": (3, {"prune_round"}),
    "finetune_epochs": (5, {"finetune_ratios"}),  # the others set their own epochs (see below for prune_round)
    "finetune_lr": (0.01, TRAINS),
    "last_round_epochs": ({}, {"prune_round"}),
    "distill": (False, {"prune_round", "finetune_ratios", "sparse"}),
    "budget_steps": (3, {"budget_round"}),
    "budget_epochs": (9, {"budget_round", "budget_scratch"}),
    "sparse_epochs": (4, {"sparse"}),
    "target_sparsity": (0.5, {"sparse"}),
    "fixed_point_bits": ((8,), {"fixed_point"}),
    "pt2e": (False, INT8),
    "calib_batches": (4, {"fixed_point", "combined"} | INT8),
    "calib_batch_size": (64, {"fixed_point", "combined"} | INT8),
    "qat_epochs": (2, INT8),
    "qat_lr": (0.002, INT8),
    "qat_train_size": (5000, INT8),
    "openvino": (False, INT8),
    "latency_warmup": (5, {"budget_latency"} | INT8),
    "latency_runs": (50, {"budget_latency"} | INT8),
    "latency_processes": (1, INT8),  # the budget latency step takes its process count as an argument
    "latency_threads": ((1,), INT8),
}
# the prune_round key is checked at a configuration's last round (where last_round_epochs applies): there
# `aggressive` trains 15 epochs whatever finetune_epochs says
# fields that decide which steps run, or the run's identity (`Session.key`: width, data sizes), not a step's reads
NOT_READ = {"name", "train_size", "val_size", "test_size", "width", "prune_configs", "distill_comparison",
            "budget_factors", "arch_budget_factors", "budget_methods", "budget_select_at", "budget_scratch",
            "budget_seeds"}


def _keys(profile: Profile) -> dict:
    return {step: reads(step, profile, "resnet18", 0) for step in STEPS}


def test_every_profile_field_is_either_read_by_named_steps_or_by_none():
    fields = {f.name for f in dataclasses.fields(Profile)}
    assert set(EXPECTED) | NOT_READ == fields, sorted(fields ^ (set(EXPECTED) | NOT_READ))


@pytest.mark.parametrize("field", sorted(EXPECTED))
def test_changing_a_field_reruns_exactly_the_steps_that_read_it(field):
    value, expected = EXPECTED[field]
    p = get_profile("cpu")
    before, after = _keys(p), _keys(p.replace(**{field: value}))
    changed = {step for step in STEPS if before[step] != after[step]}
    assert changed == expected


@pytest.mark.parametrize("field", sorted(NOT_READ - {"name"}))
def test_fields_that_choose_the_runs_are_in_no_step_reads(field):
    p = get_profile("cpu")
    value = {"train_size": 1000, "val_size": 1000, "test_size": 1000, "width": 0.5, "prune_configs": ("aggressive",),
             "distill_comparison": True, "budget_factors": (2, 4, 8, 16), "arch_budget_factors": {}, "budget_methods": ("global",),
             "budget_select_at": 2, "budget_scratch": {}, "budget_seeds": {}}[field]
    assert _keys(p) == _keys(p.replace(**{field: value}))


def test_the_run_identity_carries_width_data_and_seed(tiny_data):
    from compress import steps

    a = steps.Session.create("resnet18", "smoke", data=tiny_data)
    b = steps.Session.create("resnet18", "smoke", data=tiny_data, width=0.25, latency_runs=7)
    key_a, key_b = a.key("baseline"), b.key("baseline")
    assert key_a["width"] != key_b["width"] and key_a["data"] == tiny_data.identity() and key_a["seed"] == 0
    assert {k for k in key_a if key_a[k] != key_b[k]} == {"width"}  # latency_runs is no part of the identity


def test_every_declared_field_is_always_present_and_every_step_has_a_version():
    assert set(STEPS) == set(VERSIONS)
    for step in STEPS:
        smoke, cpu = reads(step, get_profile("smoke"), "vgg16", 0), reads(step, get_profile("cpu"), "vgg16", 0)
        assert set(smoke) == set(cpu), step  # a field missing in one profile would make keys of different shapes


def test_keys_hold_the_precision_as_requested_not_as_resolved(monkeypatch):
    """A step computed where `auto` means bf16 is the same step where it means fp32: what it resolved to is
    provenance, so a published model matches on every machine."""
    p = get_profile("cpu")
    monkeypatch.setenv("COMPRESS_PRECISION", "bf16")
    on_bf16 = _keys(p)
    monkeypatch.setenv("COMPRESS_PRECISION", "fp32")
    assert _keys(p) == on_bf16 and on_bf16["baseline"]["train"]["precision"] == "auto"
    assert _keys(p.replace(precision="fp32"))["baseline"] != on_bf16["baseline"]  # a forced precision is a recipe
