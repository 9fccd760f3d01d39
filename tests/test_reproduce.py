"""`reproduce`'s progress lines: each notebook's lines carry its own name, and each cell marker its total."""
import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


@pytest.fixture
def tiny_notebooks(tmp_path, monkeypatch):
    """Two three-cell notebooks (parameters, markdown, a print) where reproduce looks for the real ones."""
    for arch in ("resnet18", "vgg16"):
        nb = new_notebook(cells=[new_code_cell('ARCH = "x"', metadata={"tags": ["parameters"]}),
                                 new_markdown_cell("# a heading"),
                                 new_code_cell("print(f'hello from {ARCH}')")])
        nb.metadata.update({"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                            "language_info": {"name": "python"}})
        nbformat.write(nb, tmp_path / f"{arch}.ipynb")
    monkeypatch.setattr("compress.reproduce.NOTEBOOKS", tmp_path)
    return tmp_path


def test_each_notebook_labels_its_own_lines_and_counts_its_cells(tiny_notebooks, tmp_path, capsys):
    from compress.reproduce import run_notebook

    for arch in ("resnet18", "vgg16"):
        run_notebook(arch, tmp_path / "out" / f"{arch}.ipynb", {"ARCH": arch})
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    vgg = [line for line in lines if "hello from vgg16" in line]
    assert vgg and all(line.startswith("[vgg16] ") for line in vgg)  # the second notebook's lines were [resnet18]
    for arch in ("resnet18", "vgg16"):
        markers = [line for line in lines if line.startswith(f"[{arch}] cell ")]
        # three cells and the parameters cell papermill injects: cell 1/4 ... cell 4/4, each started and done
        assert [m for m in markers if not m.endswith("done")] == [f"[{arch}] cell {i}/4" for i in range(1, 5)]
        assert f"[{arch}] cell 4/4 done" in markers
    assert not any(re.search(r"Executing Cell|Ending Cell", line) for line in lines)


def test_inprocess_cells_count_their_total(tiny_notebooks, capsys):
    from compress.reproduce import run_inprocess

    ns = run_inprocess("vgg16", {"ARCH": "vgg16"})
    out = capsys.readouterr().out
    assert ns["ARCH"] == "vgg16" and "hello from vgg16" in out
    assert "[vgg16 cell 1/2] ARCH" in out and "[vgg16 cell 2/2] done in" in out  # code cells: the markdown is not run
