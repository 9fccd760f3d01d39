"""The three notebooks: in sync with their template (the committed ones may carry the outputs of the
published run); the template's mechanics run once with papermill (vgg16, smoke profile, on the real data where
it exists, else on synthetic data), each architecture's steps below it in tests/test_arch_pipeline.py."""
import json
import sys

import pytest

from conftest import REPO, notebook_source

sys.path.insert(0, str(REPO / "notebooks"))
import build  # notebooks/ is not a package: found through the path set above

ARCHS = ["resnet18", "vgg16", "vgg16_bn"]


@pytest.mark.parametrize("arch", ARCHS)
def test_committed_notebook_matches_template(arch):
    committed = json.loads((REPO / "notebooks" / f"{arch}.ipynb").read_text())
    expected = build.build(arch)
    cells = [c for c in committed["cells"] if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    assert [c["source"] if isinstance(c["source"], str) else "".join(c["source"]) for c in cells] == \
        [c.source for c in expected.cells], "run `python notebooks/build.py` after editing the template"
    assert not any(o.get("output_type") == "error" for c in cells for o in c.get("outputs", []))
    tagged = [c for c in committed["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and f'ARCH = "{arch}"' in "".join(tagged[0]["source"])


@pytest.mark.parametrize("arch", ARCHS)
def test_committed_notebook_says_nothing_machine_specific(arch):
    """$COMPRESS_PROFILE decides a committed notebook's profile: no injected cell overrides the parameters,
    and no path of the machine that published it is left in it."""
    nb = json.loads((REPO / "notebooks" / f"{arch}.ipynb").read_text())
    tags = [t for c in nb["cells"] for t in c.get("metadata", {}).get("tags", [])]
    assert "injected-parameters" not in tags
    (params,) = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert "PROFILE = None" in "".join(params["source"])
    assert set(nb["metadata"].get("papermill", {})) <= {"duration", "start_time", "end_time", "exception", "version"}
    assert "/work/" not in json.dumps(nb["metadata"])


def test_the_notebook_runs_with_papermill_from_the_steps_the_pipeline_cached(tmp_path, notebook_pipeline,
                                                                             monkeypatch):
    """One papermill run, of vgg16's notebook in the smoke profile: the parameters injected, every cell runs,
    the results saved, the ratio panel's static snapshot ahead of its widgets. The steps themselves, for every
    architecture, are tests/test_arch_pipeline.py's; this run finds each one done in the cache they left (the
    notebook's calls key their steps as the plain calls do), so it computes nothing."""
    from compress.report.tables import load_tables
    from compress.reproduce import run_notebook

    s, _ = notebook_pipeline
    monkeypatch.setenv("COMPRESS_CACHE", str(s.cache.root))  # the kernel inherits it
    done = sorted(s.cache.root.rglob("done.json"))
    out = run_notebook("vgg16", tmp_path / "vgg16.ipynb", {"ARCH": "vgg16", "PROFILE": "smoke", "DATA": notebook_source(),
                                                        "RESULTS_DIR": str(tmp_path / "results")}, timeout=600)
    executed = json.loads(out.read_text())
    assert not any(o.get("output_type") == "error" for c in executed["cells"] for o in c.get("outputs", []))
    assert sorted(s.cache.root.rglob("done.json")) == done  # no step computed again
    tables = load_tables(tmp_path / "results", "vgg16")
    assert {"baseline", "sensitivity", "pruning", "fixed_point", "int8", "combined", "models"} <= set(tables)
    assert len(tables["models"]) >= 8
    (panel,) = [c for c in executed["cells"] if "".join(c["source"]).startswith("interactive.ratio_panel(")]
    kinds = [set(o.get("data", {})) for o in panel["outputs"]]  # a static snapshot, then the live widgets
    assert "text/html" in kinds[0] and "image/png" in kinds[1]
    assert "application/vnd.jupyter.widget-view+json" in kinds[2]


def test_inprocess_engine_runs_a_notebook_without_jupyter(tmp_path, capsys, notebook_pipeline, monkeypatch):
    """The GPU box has no Jupyter: `reproduce --engine inprocess` runs the same cells in this process (from the
    steps the pipeline cached: this test proves the engine, tests/test_arch_pipeline.py the steps)."""
    from compress.reproduce import reproduce

    s, _ = notebook_pipeline
    source = notebook_source()
    monkeypatch.setenv("COMPRESS_CACHE", str(s.cache.root))
    monkeypatch.setenv("COMPRESS_DATA", source)  # reproduce exports the data path it resolves; undone after
    done = sorted(s.cache.root.rglob("done.json"))
    reproduce("smoke", ["vgg16"], data=source, results=tmp_path / "results", assets=tmp_path / "assets",
              engine="inprocess")
    out = capsys.readouterr().out
    assert "plan: profile smoke" in out and "vgg16: " in out and "images/s here; estimate" in out
    assert (tmp_path / "results" / "vgg16" / "models.csv").is_file()
    assert (tmp_path / "assets" / "vgg16_pareto_macs.png").is_file()
    assert "| baseline |" in (tmp_path / "results" / "summary.md").read_text()
    assert "[vgg16 cell" in out
    assert sorted(s.cache.root.rglob("done.json")) == done


def test_reproduce_refuses_a_plan_too_long_for_the_machine(capsys):
    from compress.reproduce import reproduce

    with pytest.raises(ValueError, match="--allow-long"):
        reproduce("smoke", ["vgg16"], data="synthetic", max_hours=1e-6)
    assert "estimate" in capsys.readouterr().out
