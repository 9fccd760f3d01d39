"""The three notebooks: in sync with their template (the committed ones may carry the outputs of the
published run), and run top to bottom in the smoke profile (on the real data where it exists, else on
synthetic data)."""
import json
import sys

import pytest

from conftest import REPO, real_data_source

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


@pytest.fixture(scope="session")
def notebook_steps(tmp_path_factory):
    """One step cache for every notebook this session runs: the in-process engine runs the vgg16 notebook the
    papermill test just ran, on the same data, and finds its steps done (run alone, it computes them)."""
    return tmp_path_factory.mktemp("notebook-steps")


@pytest.mark.parametrize("arch", ARCHS)
def test_notebook_runs_in_smoke_profile(arch, tmp_path, notebook_steps, monkeypatch):
    from compress.report.tables import load_tables
    from compress.reproduce import run_notebook

    monkeypatch.setenv("COMPRESS_CACHE", str(notebook_steps))  # the kernel inherits it
    source = real_data_source() or "synthetic"
    out = run_notebook(arch, tmp_path / f"{arch}.ipynb", {"ARCH": arch, "PROFILE": "smoke", "DATA": source,
                                                         "RESULTS_DIR": str(tmp_path / "results")}, timeout=600)
    executed = json.loads(out.read_text())
    assert not any(o.get("output_type") == "error" for c in executed["cells"] for o in c.get("outputs", []))
    tables = load_tables(tmp_path / "results", arch)
    assert {"baseline", "sensitivity", "pruning", "fixed_point", "int8", "combined", "models"} <= set(tables)
    assert len(tables["models"]) >= 8
    (panel,) = [c for c in executed["cells"] if "".join(c["source"]).startswith("interactive.ratio_panel(")]
    kinds = [set(o.get("data", {})) for o in panel["outputs"]]  # a static snapshot, then the live widgets
    assert "text/html" in kinds[0] and "image/png" in kinds[1]
    assert "application/vnd.jupyter.widget-view+json" in kinds[2]


def test_inprocess_engine_runs_a_notebook_without_jupyter(tmp_path, capsys, notebook_steps, monkeypatch):
    """The GPU box has no Jupyter: `reproduce --engine inprocess` runs the same cells in this process (after the
    papermill test, from the steps it cached: this test proves the engine, that one the steps)."""
    from compress.reproduce import reproduce

    source = real_data_source() or "synthetic"
    monkeypatch.setenv("COMPRESS_CACHE", str(notebook_steps))
    monkeypatch.setenv("COMPRESS_DATA", source)  # reproduce exports the data path it resolves; undone after
    reproduce("smoke", ["vgg16"], data=source, results=tmp_path / "results", assets=tmp_path / "assets",
              engine="inprocess")
    out = capsys.readouterr().out
    assert "plan: profile smoke" in out and "vgg16: " in out and "images/s here; estimate" in out
    assert (tmp_path / "results" / "vgg16" / "models.csv").is_file()
    assert (tmp_path / "assets" / "vgg16_pareto_macs.png").is_file()
    assert "| baseline |" in (tmp_path / "results" / "summary.md").read_text()
    assert "[vgg16 cell" in out


def test_reproduce_refuses_a_plan_too_long_for_the_machine(capsys):
    from compress.reproduce import reproduce

    with pytest.raises(ValueError, match="--allow-long"):
        reproduce("smoke", ["vgg16"], data="synthetic", max_hours=1e-6)
    assert "estimate" in capsys.readouterr().out
