import pytest

from compress import pipeline


def test_cached_baseline_is_not_retrained_but_a_changed_setting_is(tiny_data, monkeypatch):
    s = pipeline.Session.create("resnet18", "smoke", data=tiny_data)
    first = pipeline.train_baseline(s)
    monkeypatch.setattr(pipeline, "fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    again = pipeline.train_baseline(s)
    assert all((a == b).all() for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    s2 = pipeline.Session.create("resnet18", "smoke", data=tiny_data, epochs=2)
    with pytest.raises(AssertionError, match="retrained"):
        pipeline.train_baseline(s2)


def test_interrupted_baseline_is_recomputed(tiny_data):
    s = pipeline.Session.create("resnet18", "smoke", data=tiny_data)
    folder = pipeline.baseline_folder(s)
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"half a checkpoint")  # no done.json: an interrupted run
    model = pipeline.train_baseline(s)
    assert (folder / "done.json").is_file() and model(__import__("torch").randn(1, 3, 32, 32)).shape == (1, 10)


def test_best_pruned_is_chosen_on_validation_not_test(tiny_data):
    import pandas as pd

    s = pipeline.Session.create("resnet18", "smoke", data=tiny_data)
    s.tables["pruning"] = pd.DataFrame({
        "config": ["a", "a", "b", "b"], "round": [0, 1, 0, 1], "macs": [100, 10, 100, 5],
        "final_val_top1": [80, 79.5, 80, 70], "test_top1": [80, 70, 80, 79.9]})
    assert pipeline.best_pruned(s, max_drop=1.0) == "a"  # b tests better but fails on validation


def test_save_results_writes_every_table_with_provenance(tiny_data, tmp_path):
    from compress.results import read_table

    s = pipeline.Session.create("vgg16_bn", "smoke", data=tiny_data)
    pipeline.train_baseline(s)
    folder = pipeline.save_results(s, tmp_path)
    df, prov = read_table(folder / "models.csv")
    assert df.model.tolist() == ["baseline"] and prov["data_source"] == "synthetic"
    assert {p.name for p in folder.iterdir()} == {"baseline.csv", "history.csv", "models.csv"}
