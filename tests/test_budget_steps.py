"""The budget steps (compress/steps/budget.py): the sweep's table and controls, selection on validation,
keys that name only what the steps read, the CLI's `prune --macs` and `budget`."""
from __future__ import annotations

import pandas as pd
import pytest

from compress import steps
from compress.cli import main
from compress.steps.budget import BudgetRun, choose_method


@pytest.fixture(scope="module")
def sweep(tiny_data, smoke_steps, tmp_path_factory):
    s = steps.Session.create("resnet18", "smoke", data=tiny_data, cache_root=smoke_steps,  # the notebook pipeline's too
                             results_dir=tmp_path_factory.mktemp("results"))
    baseline = steps.train_baseline(s)
    scan = steps.sensitivity(s, baseline)
    return s, baseline, scan, steps.budget_sweep(s, baseline, scan)


def test_sweep_has_every_budget_method_and_control(sweep):
    s, _, _, result = sweep
    t = result.table
    p = s.profile
    pruned = t[t.kind == "pruned"]
    assert set(pruned[pruned.target == p.budget_select_at].method) == set(p.budget_methods)
    assert set(pruned[pruned.method == result.chosen].target) == set(p.budget_factors_for("resnet18"))
    equal = t[t.kind == "equal_budget"]
    assert len(equal) == p.budget_steps and (equal.mac_reduction == 1).all()
    assert set(t[t.kind == "scratch"].target) == set(p.budget_scratch["resnet18"])
    assert set(pruned.seed) == {s.seed, *p.budget_seeds["resnet18"]}
    last_steps = pruned["round"] == pruned.steps
    assert (pruned[last_steps].target_error <= 0.01).all() and pruned[~last_steps].target_error.isna().all()
    last = t.groupby(["kind", "method", "target", "seed"]).tail(1)
    assert last.vs_equal_delta.notna().all() and last.paired_ci95.notna().all()
    assert (t[t.kind == "equal_budget"].vs_equal_delta.dropna() == 0).all()
    assert set(result.layers.method) <= set(p.budget_methods)


def test_the_peer_runs_the_same_steps_and_epochs_and_is_paired_with_every_method(sweep):
    """Torch-pruning's pruner competes at `budget_select_at` with our fine-tunes; `budget_peer` pairs each method's
    model with the peer's on the same test images."""
    s, _, _, result = sweep
    t = result.table
    at = t[(t.kind == "pruned") & (t.target == s.profile.budget_select_at) & (t.seed == s.seed)]
    peer_rows = at[at.method == "torch-pruning"]
    assert len(peer_rows) == s.profile.budget_steps and peer_rows.target_error.iloc[-1] <= 0.01
    for col in ("steps", "finetune_epochs", "total_epochs"):
        assert at[col].nunique() == 1, col  # the same steps and epochs as every other method
    table = result.peer
    assert list(table.method) == sorted(set(s.profile.budget_methods) - {"torch-pruning"})
    assert table.selected.sum() == (result.chosen != "torch-pruning")
    assert table.paired_delta.to_numpy() == pytest.approx((table.test_top1 - table.peer_test_top1).to_numpy(), abs=1e-6)
    assert (table.paired_ci95 >= 0).all() and table.mcnemar_p.between(0, 1).all()
    assert s.tables["budget_peer"] is table
    saved = steps.save_results(s)
    assert (saved / "budget_peer.csv").is_file()


def test_rerun_is_cached(sweep, monkeypatch):
    s, baseline, scan, first = sweep
    monkeypatch.setattr("compress.steps.budget.fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("refit")))
    again = steps.budget_sweep(s, baseline, scan)
    pd.testing.assert_frame_equal(first.table, again.table)


def test_budget_keys_change_only_with_what_they_read(sweep, monkeypatch):
    s, baseline, scan, _ = sweep
    monkeypatch.setattr("compress.steps.budget.fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("refit")))
    # a field the budget steps do not read: nothing reruns
    other = steps.Session(s.arch, s.profile.replace(latency_runs=7, prune_rounds=5), s.data, s.device, s.seed, s.cache,
                          s.results_dir)
    steps.budget_run(other, baseline, "uniform", s.profile.budget_select_at, scan=scan)
    # one they read: the budget steps rerun
    changed = steps.Session(s.arch, s.profile.replace(budget_epochs=2), s.data, s.device, s.seed, s.cache, s.results_dir)
    with pytest.raises(AssertionError, match="refit"):
        steps.budget_run(changed, baseline, "uniform", s.profile.budget_select_at, scan=scan)


def test_budget_fields_leave_the_other_steps_keys_alone(tiny_data):
    s = steps.Session.create("resnet18", "smoke", data=tiny_data)
    t = steps.Session.create("resnet18", "smoke", data=tiny_data, budget_epochs=3, budget_factors=(2, 4, 8),
                             budget_seeds={}, arch_budget_factors={"vgg16": (3,)})
    assert s.key("baseline") == t.key("baseline")


def _run(method, val, test):
    return BudgetRun("pruned", method, 8.0, 0, [{"final_val_top1": val, "test_top1": test}], None)


def test_method_is_chosen_on_validation_never_test():
    runs = [_run("global", 80.0, 70.0), _run("uniform", 79.0, 90.0), _run("sensitivity", 80.0, 60.0)]
    assert choose_method(runs) == "global"  # best validation; tie broken by name, the test column ignored


def test_cli_prune_to_a_budget(tiny_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COMPRESS_DATA", "synthetic")
    assert main(["train", "--arch", "vgg16_bn", "--profile", "smoke", "--results", str(tmp_path)]) == 0
    assert main(["prune", "--arch", "vgg16_bn", "--profile", "smoke", "--macs", "3x", "--results", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "vgg16_bn" / "budget.csv", comment="#")
    assert table.mac_reduction.iloc[-1] == pytest.approx(3, rel=0.01)
    assert (tmp_path / "vgg16_bn" / "budget_layers.csv").is_file()
    capsys.readouterr()
    assert main(["prune", "--arch", "vgg16_bn", "--profile", "smoke", "--macs", "5000x", "--results", str(tmp_path)]) == 1
    assert "error: 5000x fewer MACs is unreachable" in capsys.readouterr().err


@pytest.mark.parametrize("value, message", [("0.5x", "below 1x"), ("1x", "above 1x"), ("lots", "factor such as 4x")])
def test_cli_refuses_bad_budgets(value, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(["prune", "--arch", "vgg16", "--profile", "smoke", "--macs", value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: argument --macs") and message in err and err.count("\n") == 1


def test_budget_latency_times_every_final_model_in_three_runtimes(sweep, monkeypatch):
    """The step's assembly; the fresh-process timing itself is tests/test_latency.py's (here it would cost
    30 processes)."""
    from compress.quant import latency

    def fake_measure(variants, *, threads, processes, warmup, runs):
        assert all(v.path.is_file() for v in variants) and threads == (1, 2)
        rows = [{"variant": v.name, "runtime": v.runtime, "threads": t, "latency_ms": 1.0, "min_ms": 1.0,
                 "max_ms": 1.0, "spread": 0.0, "processes": processes, "runs": runs, "flagged": False}
                for v in variants for t in threads]
        return pd.DataFrame(rows, columns=latency.COLUMNS)

    monkeypatch.setattr("compress.quant.latency.measure", fake_measure)
    s, baseline, _, result = sweep
    table = steps.budget_latency(s, result, baseline=baseline, round_to_at=s.profile.budget_select_at, processes=1)
    finals = 1 + len(s.profile.budget_factors_for("resnet18"))  # the equal-budget model and each budget's
    assert len(table) == (finals + 2) * 3 * 2  # + round_to 1 and 8; torch / onnx fp32 / onnx int8; 1 and 2 threads
    assert set(zip(table.runtime, table.variant)) == {("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")}
    shapes = table[table.kind == "architecture"]
    assert set(shapes.round_to) == {1, 8} and (table.int8_size_mb < table.size_mb).all()
    monkeypatch.setattr("compress.quant.latency.measure", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-timed")))
    steps.budget_latency(s, result, baseline=baseline, round_to_at=s.profile.budget_select_at, processes=1)


def test_two_steps_fall_geometrically_and_only_the_last_aims_at_the_target(sweep):
    s, baseline, scan, _ = sweep
    two = steps.Session(s.arch, s.profile.replace(budget_steps=2, budget_epochs=2), s.data, s.device, s.seed, s.cache,
                        s.results_dir)
    run = steps.budget_run(two, baseline, "uniform", 4, scan=scan)
    first, last = run.records
    assert first["mac_reduction"] == pytest.approx(2, rel=0.05) and pd.isna(first["target_error"])
    assert last["mac_reduction"] == pytest.approx(4, rel=0.01) and last["target_error"] <= 0.01
    assert first["finetune_epochs"] == last["finetune_epochs"] == 1 and last["total_epochs"] == 2


def test_an_unfinished_sweep_leaves_the_tables_of_what_it_finished(sweep, monkeypatch):
    """Hours of CPU: each finished run is recorded at once, the control second so every later row is paired."""
    from compress.files import read_table
    from compress.report.summary import figure_label

    s, baseline, scan, first = sweep
    monkeypatch.setattr("compress.steps.budget.fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("refit")))
    seen = []

    def progress(partial):
        seen.append((len(partial.runs), partial.complete, partial.table.copy()))
        if len(partial.runs) == 1:
            steps.save_results(s)

    final = steps.budget_sweep(s, baseline, scan, on_progress=progress)
    assert [n for n, *_ in seen] == list(range(1, final.planned + 1)) and final.complete and seen[-1][1]
    kinds = [r.kind for r in final.runs]
    assert kinds.index("equal_budget") == len(s.profile.budget_methods)  # right after the selection
    after = seen[kinds.index("equal_budget")][2]
    assert after.groupby(["kind", "method", "target", "seed"]).tail(1).vs_equal_delta.notna().all()
    assert seen[0][2].vs_equal_delta.isna().all() and not seen[0][2].selected.any()  # no control, no choice yet
    pd.testing.assert_frame_equal(final.table.sort_values(list(final.table.columns[:4])).reset_index(drop=True),
                                  first.table.sort_values(list(first.table.columns[:4])).reset_index(drop=True))
    prov = read_table(s.results_dir / s.arch / "budget.csv")[1]
    assert prov["sweep"] == {"runs_done": 1, "runs_planned": final.planned}
    assert f"partial sweep: 1 of {final.planned} runs" in figure_label(prov)
