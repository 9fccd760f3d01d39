"""Each result names the code, machine and precision that computed it, not only the run that published it."""
import pandas as pd

from compress import provenance as prov_mod
from compress import steps
from compress.files import read_table
from compress.report.summary import figure_label, load_provenance
from compress.steps.cache import UNRECORDED, StepCache


def _at_commit(monkeypatch, commit):
    monkeypatch.setattr(prov_mod, "git_commit", lambda repo=None: commit)
    monkeypatch.setattr("compress.train.git_commit", lambda repo=None: commit)


def test_a_cached_step_published_by_a_later_commit_names_both(tiny_data, tmp_path, monkeypatch):
    _at_commit(monkeypatch, "a" * 40)
    first = steps.Session.create("resnet18", "smoke", data=tiny_data, results_dir=tmp_path / "one")
    steps.train_baseline(first)
    _at_commit(monkeypatch, "b" * 40)
    later = steps.Session.create("resnet18", "smoke", data=tiny_data, results_dir=tmp_path / "two")
    steps.train_baseline(later)  # read back from the cache: computed by the first commit
    assert later.cache.log[-1]["cached"]
    steps.save_results(later)
    table, prov = read_table(tmp_path / "two" / "resnet18" / "baseline.csv")
    assert prov["git_commit"] == "b" * 40  # who published it
    (step,) = prov["steps"].values()
    assert step["git_commit"] == "a" * 40 and step["clean"] is True  # who computed it
    assert step["precision"] == first.precision and step["cpu_features"] and step["compute_seconds"] > 0
    assert prov["commits"] == ["a" * 40]
    label = figure_label(prov)
    assert "computed by aaaaaaaaaaaa" in label and first.precision in label
    models = read_table(tmp_path / "two" / "resnet18" / "models.csv")[1]
    assert "computed by `aaaaaaaaaaaa`, published by `bbbbbbbbbbbb`" in load_provenance(tmp_path / "two", "resnet18")
    assert models["commits"] == ["a" * 40]
    timings = read_table(tmp_path / "two" / "resnet18" / "timings.csv")[0]
    assert timings.commit.tolist() == ["a" * 40]


def test_a_table_computed_by_the_publishing_run_names_it_too(tiny_data, tmp_path, monkeypatch):
    _at_commit(monkeypatch, "a" * 40)
    s = steps.Session.create("resnet18", "smoke", data=tiny_data, results_dir=tmp_path)
    baseline = steps.train_baseline(s)
    _at_commit(monkeypatch, "c" * 40 + "+dirty")
    s2 = steps.Session.create("resnet18", "smoke", data=tiny_data, results_dir=tmp_path)
    steps.l1_ranking(s2, steps.train_baseline(s2))  # computed now, from a cached baseline
    steps.save_results(s2)
    prov = read_table(tmp_path / "resnet18" / "l1.csv")[1]
    assert prov["commits"] == ["c" * 40 + "+dirty", "a" * 40] and prov["clean"] is False
    assert "cccccccccccc+dirty" in figure_label(prov)  # a dirty tree is never hidden
    del baseline


def test_a_step_resumed_by_another_commit_lists_every_attempt(tmp_path, monkeypatch):
    from compress.files import write_json
    from compress.train import progress_path

    cache = StepCache(tmp_path)
    _at_commit(monkeypatch, "d" * 40)

    def compute(folder):  # the first attempt's saved work, as `fit` leaves it, then this attempt finishing
        write_json(progress_path(folder / "state.pt"), {"seconds": 5.0, "carried": 5.0, "commits": ["e" * 40, "d" * 40]})
        (folder / "out.txt").write_text("x")

    folder, _ = cache.run("s", {"a": 1}, compute, provenance=prov_mod.provenance())
    assert cache.provenance(folder)["commits"] == ["e" * 40, "d" * 40]
    assert cache.provenance(folder)["compute_seconds"] >= 5.0


def test_a_step_from_before_step_provenance_says_so(tmp_path):
    cache = StepCache(tmp_path)
    folder, _ = cache.run("s", {"a": 1}, lambda f: (f / "out.txt").write_text("x"))  # no provenance given
    done = folder / "done.json"
    import json

    record = json.loads(done.read_text())
    record.pop("provenance")
    done.write_text(json.dumps(record))
    assert cache.provenance(folder)["git_commit"] == UNRECORDED
    assert pd.isna(pd.Series([cache.provenance(folder)["clean"]])).all()


QUIET = """
import json, sys
from compress.provenance import provenance
from compress.quant import pt2e
record = provenance()
loaded = "torchao" in sys.modules
available, _ = pt2e.pt2e_available()  # imports torchao's PT2E API where it is installed
print(json.dumps({"torchao": record["versions"]["torchao"], "loaded_by_provenance": loaded, "available": available}))
"""


def test_provenance_and_the_pt2e_import_print_nothing():
    """Every command records provenance: reading torchao's version must not import it (its import makes torch
    log a KernelPreference deprecation line, which turned each one-line CLI error into three)."""
    import json
    import subprocess
    import sys
    from importlib import metadata

    out = subprocess.run([sys.executable, "-c", QUIET], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "Enum subclass" not in out.stderr and "KernelPreference" not in out.stderr, out.stderr
    assert not result["loaded_by_provenance"]
    try:
        assert result["torchao"] == metadata.version("torchao")
    except metadata.PackageNotFoundError:
        assert result["torchao"] == "absent"


def test_only_the_enum_notice_is_filtered():
    import logging

    from compress.quant.pt2e import _enum_constant_notice

    def record(msg, *args):
        return logging.LogRecord("torch.utils._pytree", logging.WARNING, __file__, 1, msg, args, None)

    notice = "%s is an Enum subclass and is now natively supported by torch.compile as an opaque value type."
    assert not _enum_constant_notice(record(notice, "<enum 'KernelPreference'>"))
    assert _enum_constant_notice(record("%s cannot be registered as a pytree", "<class 'X'>"))
