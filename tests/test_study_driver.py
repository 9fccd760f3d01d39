"""The study's driver: its units in the order that decides results first, each step published as it finishes."""
import json

from compress import study
from compress.cli import main


def test_the_order_is_the_trimmed_studys():
    names = [f"{u.arch}:{u.name}" for u in study.units()]
    assert names[:8] == ["resnet18:baseline", "resnet18:curve", "resnet18:latency", "resnet18:report",
                         "vgg16_bn:baseline", "vgg16_bn:curve", "vgg16_bn:latency", "vgg16_bn:report"]
    later = [n.split(":")[1] for n in names[8:]]
    assert later == sorted(later, key=["quantize", "controls", "sparse", "iterative", "report"].index)
    # the seed's configurations come last, then every architecture's tables and figures once more
    assert names[-4:] == ["resnet18:iterative", "vgg16_bn:iterative", "resnet18:report", "vgg16_bn:report"]


def test_the_curve_without_controls_keys_its_runs_as_the_whole_sweep_does(monkeypatch):
    """Leaving the seeds and from-scratch runs for later must not change the key of any run the curve makes."""
    from compress.data import synthetic_data

    monkeypatch.setattr("compress.data.load_for_profile", lambda *a, **k: synthetic_data(256, 64, 128))
    s = study.Study("cpu", "synthetic")
    trimmed, whole = s.session("resnet18", budget_seeds={}, budget_scratch={}), s.session("resnet18")
    assert whole.profile.budget_seeds and not trimmed.profile.budget_seeds
    assert trimmed.reads("budget_round") == whole.reads("budget_round")
    assert trimmed.key("budget_round", x=1) == whole.key("budget_round", x=1)


def test_a_unit_publishes_its_steps_and_a_second_run_computes_nothing(tmp_path, capsys):
    results = tmp_path / "results"
    argv = ["study", "--profile", "smoke", "--data", "synthetic", "--arch", "vgg16_bn", "--only", "baseline",
            "--results", str(results)]
    assert main(argv) == 0
    manifest = json.loads((results / "vgg16_bn" / "models" / "manifest.json").read_text())
    assert [e["step"] for e in manifest["steps"].values()] == ["baseline"]
    assert (results / "vgg16_bn" / "models" / "baseline.pt").is_file()
    assert "unit 1/1: vgg16_bn baseline done" in capsys.readouterr().out
    assert main(argv) == 0  # cached: no training line
    assert "[train] epoch" not in capsys.readouterr().out


def test_an_unknown_unit_is_one_line(capsys):
    assert main(["study", "--only", "nonsense", "--data", "synthetic", "--profile", "smoke"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no unit matches")


def test_the_report_replaces_the_tables_of_another_data_set(tmp_path, capsys):
    """An architecture recomputed on one data set keeps no table of another (the old JPEG copy's), and its
    figures are drawn from what it holds."""
    import pandas as pd

    from compress.files import read_table, write_table
    from compress.provenance import provenance

    results = tmp_path / "results"
    old = results / "vgg16_bn" / "pruning.csv"
    write_table(old, pd.DataFrame({"x": [1]}), provenance({}, seed=0, data_source="image folder cifar10-jpeg.tar.gz"))
    argv = ["study", "--profile", "smoke", "--data", "synthetic", "--arch", "vgg16_bn", "--only", "baseline", "report",
            "--results", str(results)]
    assert main(argv) == 0
    assert not old.exists() and "removing" in capsys.readouterr().out
    assert read_table(results / "vgg16_bn" / "baseline.csv")[1]["data_source"] == "synthetic"
    assert any((tmp_path / "assets").glob("vgg16_bn_*.png"))  # its figures, from the tables it holds
