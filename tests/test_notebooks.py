"""The three notebooks: in sync with their template, committed without outputs, and run top to bottom
in the smoke profile (on the real data where it exists, else on synthetic data)."""
import json
import sys
from pathlib import Path

import pytest

from conftest import REPO, real_data_source

sys.path.insert(0, str(REPO / "notebooks"))
import build  # noqa: E402

ARCHS = ["resnet18", "vgg16", "vgg16_bn"]


@pytest.mark.parametrize("arch", ARCHS)
def test_committed_notebook_matches_template_and_has_no_outputs(arch):
    committed = json.loads((REPO / "notebooks" / f"{arch}.ipynb").read_text())
    expected = build.build(arch)
    assert [c["source"] if isinstance(c["source"], str) else "".join(c["source"]) for c in committed["cells"]] == \
        [c.source for c in expected.cells], "run `python notebooks/build.py` after editing the template"
    assert all(not c.get("outputs") for c in committed["cells"] if c["cell_type"] == "code")
    tagged = [c for c in committed["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and f'ARCH = "{arch}"' in "".join(tagged[0]["source"])


@pytest.mark.parametrize("arch", ARCHS)
def test_notebook_runs_in_smoke_profile(arch, tmp_path):
    from compress.figures import load_tables
    from compress.reproduce import run_notebook

    source = real_data_source() or "synthetic"
    out = run_notebook(arch, tmp_path / f"{arch}.ipynb", {"ARCH": arch, "PROFILE": "smoke", "DATA": source,
                                                         "RESULTS_DIR": str(tmp_path / "results")}, timeout=600)
    executed = json.loads(out.read_text())
    assert not any(o.get("output_type") == "error" for c in executed["cells"] for o in c.get("outputs", []))
    tables = load_tables(tmp_path / "results", arch)
    assert {"baseline", "sensitivity", "pruning", "fixed_point", "int8", "combined", "models"} <= set(tables)
    assert len(tables["models"]) >= 8


def test_inprocess_engine_runs_a_notebook_without_jupyter(tmp_path, capsys):
    """The GPU box has no Jupyter: `reproduce --engine inprocess` runs the same cells in this process."""
    from compress.reproduce import reproduce

    reproduce("smoke", ["vgg16"], data="synthetic", results=tmp_path / "results", assets=tmp_path / "assets",
              engine="inprocess")
    assert (tmp_path / "results" / "vgg16" / "models.csv").is_file()
    assert (tmp_path / "assets" / "vgg16_pareto_macs.png").is_file()
    assert "| baseline |" in (tmp_path / "results" / "summary.md").read_text()
    assert "[vgg16 cell" in capsys.readouterr().out
