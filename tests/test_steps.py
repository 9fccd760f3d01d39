import copy

import pandas as pd
import pytest
import torch

from conftest import tiny_model

from compress import steps
from compress.checkpoint import load_checkpoint, save_checkpoint
from compress.metrics import conv_channels
from compress.steps.cache import MissingStep
from compress.files import read_table

BLOCKS = [0.25, 0.5, 0.25, 0.5, 0.25, 0.5, 0.25, 0.5]


def _model(arch, width=0.125, seed=0):
    return tiny_model(arch, width, seed)


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_cached_baseline_is_not_retrained_but_a_changed_setting_is(tiny_data, monkeypatch):
    s = steps.Session.create("resnet18", "smoke", data=tiny_data)
    first = steps.train_baseline(s)
    monkeypatch.setattr("compress.steps.baseline.fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    again = steps.train_baseline(s)
    assert _same_state(first, again)
    s2 = steps.Session.create("resnet18", "smoke", data=tiny_data, epochs=2)
    with pytest.raises(AssertionError, match="retrained"):
        steps.train_baseline(s2)


def test_interrupted_baseline_is_recomputed_and_a_missing_one_is_named(tiny_data):
    s = steps.Session.create("resnet18", "smoke", data=tiny_data)
    with pytest.raises(MissingStep, match="python -m compress train --arch resnet18 --profile smoke"):
        steps.train_baseline(s, train=False)
    folder = steps.baseline_folder(s)
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"half a checkpoint")  # no done.json: an interrupted run
    model = steps.train_baseline(s)
    assert (folder / "done.json").is_file() and model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_a_failed_step_leaves_no_empty_cache_folder(tiny_data):
    s = steps.Session.create("vgg16_bn", "smoke", data=tiny_data)
    baseline = _model("vgg16_bn")
    with pytest.raises(ValueError, match="ratio"):
        steps.finetune_ratios(s, baseline, {"conv1_1": 1.5})
    with pytest.raises(ZeroDivisionError):
        s.cache.run("boom", {"x": 1}, lambda folder: 1 / 0)
    assert not s.cache.root.exists() or not [p for p in s.cache.root.iterdir() if p.name != ".locks"]


def test_prune_rounds_records_tables_and_resumes_from_the_cache(tiny_data, monkeypatch):
    s = steps.Session.create("resnet18", "smoke", data=tiny_data, device="cpu")
    baseline = _model("resnet18")
    reference = copy.deepcopy(baseline)
    configs = {"uniform": 0.5, "blocks": BLOCKS}
    result = steps.prune_rounds(s, baseline, configs, 2)
    assert _same_state(baseline, reference)  # the baseline is never pruned in place
    rounds, channels = result.rounds, result.channels
    assert s.tables["pruning"] is rounds and s.tables["channels"] is channels
    assert list(rounds.config) == ["uniform"] * 3 + ["blocks"] * 3 and list(rounds["round"]) == [0, 1, 2] * 2
    for col in ("params", "macs", "size_mb", "gzip_mb", "test_top1", "final_val_top1", "best_val_top1", "mean_val_top1"):
        assert rounds[col].notna().all()
    assert rounds.params.iloc[2] < rounds.params.iloc[1] < rounds.params.iloc[0]
    # each round is paired with the baseline on the same test images; round 0 is the baseline itself
    assert ((rounds.test_top1 - rounds.test_top1.iloc[0] - rounds.paired_delta).abs() < 1e-9).all()
    assert (rounds[rounds["round"] == 0][["gained", "lost"]] == 0).all().all()
    assert rounds.selected.sum() == 3 and result.best in configs and set(result.ratios) == set(configs)
    assert result.ratios["uniform"]["layer2.0.conv1"] == 0.5
    final = channels[(channels.config == "uniform") & (channels["round"] == 2)].set_index("layer").channels
    assert final.to_dict() == {n: round(c * 0.5) for n, c in conv_channels(reference).items()}
    halfway = channels[(channels.config == "uniform") & (channels["round"] == 1)].set_index("layer").channels
    assert halfway["layer4.1.conv2"] == round(64 * 0.75)
    loaded, meta = load_checkpoint(result.checkpoints[("uniform", 2)], "resnet18")
    assert conv_channels(loaded) == final.to_dict() and meta["round"] == 2
    assert conv_channels(result.model("uniform")) == final.to_dict()

    monkeypatch.setattr("compress.steps.pruning.fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    again = steps.prune_rounds(s, baseline, configs, 2)
    assert again.rounds.drop(columns="train_seconds").equals(result.rounds.drop(columns="train_seconds"))


def test_prune_rounds_validates_every_configuration_before_training(tiny_data, monkeypatch):
    s = steps.Session.create("vgg16_bn", "smoke", data=tiny_data)
    monkeypatch.setattr("compress.steps.pruning.fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    with pytest.raises(ValueError, match="configuration 'bad'.*outside"):
        steps.prune_rounds(s, _model("vgg16_bn"), {"ok": 0.5, "bad": {"conv1_1": 1.5}}, 1)
    with pytest.raises(ValueError, match="is a vgg16_bn, but this session prunes resnet18"):
        steps.prune_rounds(steps.Session.create("resnet18", "smoke", data=tiny_data), _model("vgg16_bn"), {"a": 0.5}, 1)


def test_distillation_effect_reuses_the_recorded_ratios_and_settings(tiny_data):
    s = steps.Session.create("vgg16_bn", "smoke", data=tiny_data)
    baseline = _model("vgg16_bn")
    result = steps.prune_rounds(s, baseline, {"half": 0.5}, 1, round_to=2)
    table = steps.distillation_effect(s, baseline, result)
    assert table.config.unique().tolist() == ["half"] and sorted(table.distill.unique()) == [False, True]
    assert table.groupby("distill").params.last().nunique() == 1  # the same architecture both ways
    assert s.tables["pruning"] is result.rounds  # the comparison did not replace the main table
    final = table[table["round"] == 1].set_index("distill")
    assert final.vs_other_delta[True] == -final.vs_other_delta[False]  # with minus without, and back
    assert final.vs_other_delta[True] == pytest.approx(final.test_top1[True] - final.test_top1[False])
    assert (final.vs_other_ci95 >= 0).all() and final.vs_other_p.between(0, 1).all()


def test_save_results_writes_every_table_and_merges_models(tiny_data, tmp_path):
    s = steps.Session.create("vgg16_bn", "smoke", data=tiny_data, results_dir=tmp_path)
    steps.train_baseline(s)
    folder = steps.save_results(s)
    df, prov = read_table(folder / "models.csv")
    assert df.model.tolist() == ["baseline"] and prov["data_source"] == "synthetic"
    assert {p.name for p in folder.iterdir()} == {"baseline.csv", "history.csv", "models.csv", "timings.csv", "models"}
    timings = read_table(folder / "timings.csv")[0]
    assert timings.step.tolist() == ["baseline"] and timings.seconds.iloc[0] > 0

    other = steps.Session.create("vgg16_bn", "smoke", data=tiny_data, results_dir=tmp_path)
    other.add_model("pruned:x", "pruned", {"top1": 50.0})
    steps.save_results(other)
    assert read_table(folder / "models.csv")[0].model.tolist() == ["baseline", "pruned:x"]

    wider = steps.Session.create("vgg16_bn", "smoke", data=tiny_data, results_dir=tmp_path, width=0.25)
    wider.add_model("pruned:y", "pruned", {"top1": 60.0})
    steps.save_results(wider)  # another width: the old rows are not this run's, so they go
    assert read_table(folder / "models.csv")[0].model.tolist() == ["pruned:y"]


def test_load_model_refuses_another_architecture_or_width(tiny_data, tmp_path):
    s = steps.Session.create("vgg16_bn", "smoke", data=tiny_data)
    save_checkpoint(_model("resnet18"), tmp_path / "r.pt", "resnet18", 0.125)
    save_checkpoint(_model("vgg16_bn", width=0.25), tmp_path / "v.pt", "vgg16_bn", 0.25)
    with pytest.raises(ValueError, match="holds a 'resnet18' model, not 'vgg16_bn'"):
        steps.load_model(s, tmp_path / "r.pt")
    with pytest.raises(ValueError, match="width-0.25 vgg16_bn model, but this run uses width 0.125"):
        steps.load_model(s, tmp_path / "v.pt")


def test_session_refuses_unknown_arch_and_device(tiny_data):
    with pytest.raises(ValueError, match="unknown architecture 'resnet50'"):
        steps.Session.create("resnet50", "smoke", data=tiny_data)
    with pytest.raises(ValueError, match="device 'tpu'"):
        steps.Session.create("resnet18", "smoke", data=tiny_data, device="tpu")


def test_profile_environment_variable_chooses_the_default(tiny_data, monkeypatch):
    monkeypatch.setenv("COMPRESS_PROFILE", "smoke")
    assert steps.Session.create("resnet18", None, data=tiny_data).profile.name == "smoke"
    monkeypatch.setenv("COMPRESS_PROFILE", "huge")
    with pytest.raises(ValueError, match="COMPRESS_PROFILE='huge' is not a profile"):
        steps.Session.create("resnet18", None, data=tiny_data)


def test_pruning_table_flags_the_selected_configuration():
    from compress.report.figures import selected_config

    rounds = pd.DataFrame({"config": ["a", "b"], "selected": [False, True]})
    assert selected_config({"pruning": rounds}) == "b"


def test_a_profile_can_limit_the_pruned_configurations(tiny_data):
    import pandas as pd

    scan = pd.DataFrame({"layer": ["conv1_1", "conv1_1"], "ratio": [0.0, 0.5], "top1": [50.0, 49.9]})
    s = steps.Session.create("vgg16_bn", "smoke", data=tiny_data, prune_configs=("aggressive", "sensitivity"))
    assert list(steps.configurations(s, scan)) == ["aggressive", "sensitivity"]
    assert list(steps.configurations(s)) == ["aggressive"]  # no scan: no sensitivity configuration
    with pytest.raises(ValueError, match="unknown configuration"):
        steps.configurations(steps.Session.create("vgg16_bn", "smoke", data=tiny_data, prune_configs=("huge",)))


def test_int8_step_fine_tunes_qat_on_the_profile_subset(tiny_data, monkeypatch):
    seen = {}

    def fake_compare(model, data, config=None, *, qat_data=None, **kw):
        seen.update(train=len(qat_data.train), test=len(qat_data.test))
        return pd.DataFrame({"variant": ["fp32"], "runtime": ["torch"], "threads": [1], "top1": [50.0],
                             "size_mb": [1.0], "gzip_mb": [1.0], "latency_ms": [1.0]})

    monkeypatch.setattr("compress.steps.quantization.compare_int8", fake_compare)
    s = steps.Session.create("vgg16_bn", "smoke", data=tiny_data, qat_train_size=64, pt2e=False)
    steps.int8(s, _model("vgg16_bn"))
    assert seen == {"train": 64, "test": len(tiny_data.test)}


def test_pruned_int8_keeps_one_table_for_every_configuration(tiny_data, monkeypatch):
    def fake_compare(model, data, config=None, **kw):
        return pd.DataFrame({"variant": ["fp32", "int8-optimal"], "runtime": ["torch"] * 2, "threads": [1, 1],
                             "top1": [50.0, 49.0], "size_mb": [1.0, 0.25], "gzip_mb": [1.0, 0.2],
                             "latency_ms": [2.0, 1.0]})

    monkeypatch.setattr("compress.steps.quantization.compare_int8", fake_compare)
    s = steps.Session.create("vgg16_bn", "smoke", data=tiny_data, pt2e=False)
    result = steps.prune_rounds(s, _model("vgg16_bn"), {"half": 0.5, "most": 0.8}, 1, round_to=2)
    assert result.smallest == "most"
    for config in ("half", "most", "half"):  # a repeated configuration replaces its rows
        steps.pruned_int8(s, result.model(config), config)
    table = s.tables["pruned_int8"]
    assert sorted(table.config) == ["half", "half", "most", "most"]
    assert {"pruned:most", "pruned:most+int8-optimal", "pruned:half+int8-optimal"} <= set(s.models)


def test_timing_summary_sums_each_step_kind():
    from compress.steps.results import timing_summary

    t = pd.DataFrame({"step": ["baseline", "prune_round", "prune_round"], "folder": ["a", "b", "c"],
                      "cached": [True, False, False], "seconds": [3600.0, 600.0, 1200.0]})
    text = timing_summary(t)
    assert "baseline                60.0 min  (1 run)" in text and "prune_round             30.0 min  (2 runs)" in text
    assert text.endswith("total                   1.50 h")


def test_prune_rounds_rescale_a_model_without_bn_only(tiny_data, monkeypatch):
    calls = []
    import compress.iterative

    real = compress.iterative.match_activation_scale  # the prune step of `iterative` rescales
    monkeypatch.setattr(compress.iterative, "match_activation_scale", lambda *a: calls.append(a) or real(*a))
    for arch, expected in (("vgg16", 1), ("vgg16_bn", 0)):
        calls.clear()
        s = steps.Session.create(arch, "smoke", data=tiny_data)
        steps.prune_rounds(s, _model(arch), {"half": 0.5}, 1, round_to=2)
        assert len(calls) == expected, arch


def test_last_round_epochs_lengthen_only_that_round_and_keep_every_other_key(tiny_data, monkeypatch):
    baseline = _model("vgg16_bn")
    configs = {"aggressive": 0.5, "sensitivity": 0.25}
    plain = steps.Session.create("vgg16_bn", "smoke", data=tiny_data)
    first = steps.prune_rounds(plain, baseline, configs, 2, round_to=2)
    longer = steps.Session.create("vgg16_bn", "smoke", data=tiny_data, last_round_epochs={"aggressive": 2})
    assert longer.key("baseline") == plain.key("baseline")  # the field is keyed by the pruning step alone
    trained = []
    real = steps.pruning.fit
    monkeypatch.setattr(steps.pruning, "fit", lambda model, data, cfg, **k: trained.append(cfg) or real(model, data, cfg, **k))
    again = steps.prune_rounds(longer, baseline, configs, 2, round_to=2)
    assert [(c.desc, c.epochs) for c in trained] == [("aggressive round 2/2", 2)]  # everything else came from the cache
    assert again.rounds.set_index(["config", "round"]).finetune_epochs.to_dict() == {
        ("aggressive", 0): 0, ("aggressive", 1): 1, ("aggressive", 2): 2,
        ("sensitivity", 0): 0, ("sensitivity", 1): 1, ("sensitivity", 2): 1}
    assert first.checkpoints[("aggressive", 1)] == again.checkpoints[("aggressive", 1)]
    assert first.checkpoints[("aggressive", 2)] != again.checkpoints[("aggressive", 2)]
    with pytest.raises(ValueError, match="last_round_epochs names unknown configuration.*'agressive'"):
        steps.prune_rounds(steps.Session.create("vgg16_bn", "smoke", data=tiny_data, last_round_epochs={"agressive": 2}),
                           baseline, configs, 2, round_to=2)
    with pytest.raises(ValueError, match=r"last_round_epochs\['aggressive'\] must be a whole number >= 1"):
        steps.Session.create("vgg16_bn", "smoke", data=tiny_data, last_round_epochs={"aggressive": 0})


def test_rounds_that_prune_nothing_are_refused_before_training(tiny_data, monkeypatch):
    monkeypatch.setattr("compress.steps.pruning.fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    s = steps.Session.create("vgg16_bn", "smoke", data=tiny_data)
    with pytest.raises(ValueError, match="configuration 'tiny': round 1 of 40 prunes nothing"):
        steps.prune_rounds(s, _model("vgg16_bn"), {"tiny": {"conv1_1": 0.25}}, 40)


def test_quantizing_a_pruned_model_keeps_its_interval_against_the_baseline(tiny_data):
    from compress.steps.quantization import _add_quant_models

    s = steps.Session.create("vgg16_bn", "smoke", data=tiny_data)
    s.add_model("pruned:a", "pruned", {"top1": 80.0, "paired_ci95": 0.4, "mcnemar_p": 0.2, "params": 10, "macs": 5})
    table = pd.DataFrame({"variant": ["fp32", "int8-optimal"], "runtime": ["torch", "torch"], "threads": [2, 2],
                          "top1": [80.0, 79.9], "size_mb": [1.0, 0.3], "gzip_mb": [0.9, 0.2], "latency_ms": [2.0, 1.0],
                          "paired_ci95": [0.0, 0.1], "mcnemar_p": [1.0, 0.5]})
    _add_quant_models(s, table, "pruned:a", "pruned", {"params": 10, "macs": 5})
    assert s.models["pruned:a"]["paired_ci95"] == 0.4 and s.models["pruned:a"]["latency_ms"] == 2.0
    assert s.models["pruned:a+int8-optimal"]["paired_ci95"] is None  # paired with the pruned model, not the baseline


def test_a_step_key_names_only_what_the_step_reads(tiny_data):
    """Changing how latency is timed must not rerun pruning: no profile in the keys, only each step's reads."""
    s = steps.Session.create("resnet18", "smoke", data=tiny_data)
    timed = steps.Session.create("resnet18", "smoke", data=tiny_data, latency_runs=99, latency_warmup=7,
                                 sensitivity_ratios=(0.0, 0.3), fixed_point_bits=(8,))
    assert s.key("prune_round", a=1) == timed.key("prune_round", a=1)
    key = s.key("prune_round")
    assert "profile" not in key and {"step", "version", "arch", "width", "seed", "data"} == set(key)
    wider = steps.Session.create("resnet18", "smoke", data=tiny_data, width=0.25)
    assert wider.key("prune_round") != key  # the width decides every weight
