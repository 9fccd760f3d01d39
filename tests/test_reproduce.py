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


# ----------------------------------------------------------------------------- the main job on a partly published study
HOURS = {"resnet18": 0.0, "vgg16": 40.2 * 3600, "vgg16_bn": 51.3 * 3600}  # resnet18 published: nothing to compute


@pytest.fixture
def main_job(tmp_path, monkeypatch):
    """`reproduce` with the plan's estimates fixed (`HOURS`, no speed test) and the notebooks and figures recorded,
    not run: which notebooks it runs, what it prints and how it exits."""
    from compress import reproduce as rep

    ran = {"notebooks": [], "figures": None, "hours": dict(HOURS)}
    monkeypatch.setattr(rep, "output_dirs", lambda profile, publish=False: (tmp_path / "r", tmp_path / "a", tmp_path / "nb"))
    monkeypatch.setattr(rep, "print_plan", lambda prof, archs, *a: {x: ran["hours"][x] for x in archs})
    monkeypatch.setattr(rep, "run_notebook", lambda arch, *a, **k: ran["notebooks"].append(arch))
    monkeypatch.setattr("compress.report.figures.make_figures", lambda r, a, archs, **k: ran.update(figures=list(archs)))
    monkeypatch.setattr("compress.report.summary.headline", lambda *a: [])
    return ran


def test_the_main_job_runs_the_published_notebook_and_lists_the_others(main_job, capsys):
    from compress.cli import main

    assert main(["reproduce", "--profile", "smoke", "--data", "synthetic"]) == 0
    out = capsys.readouterr().out
    assert main_job["notebooks"] == ["resnet18"] and main_job["figures"] == ["resnet18"]
    assert re.search(r"vgg16 +40.2 h here: python -m compress reproduce --profile smoke --arch vgg16 --data synthetic "
                     r"--allow-long", out)
    assert "--arch vgg16_bn --data synthetic --allow-long" in out
    assert "91.5 h in all; the slowest notebook, vgg16_bn, 51.3 h" in out  # the total and the slowest, each named


def test_with_nothing_published_the_main_job_lists_what_is_left_and_succeeds(main_job, capsys):
    from compress.cli import main

    main_job["hours"]["resnet18"] = 30.0 * 3600
    assert main(["reproduce", "--profile", "smoke", "--data", "synthetic"]) == 0
    out = capsys.readouterr().out
    assert main_job["notebooks"] == [] and main_job["figures"] is None
    assert all(f"--arch {arch} --data synthetic --allow-long" in out for arch in HOURS)
    assert "121.5 h in all; the slowest notebook, vgg16_bn, 51.3 h" in out and "no notebook ran" in out


def test_named_notebooks_over_the_limit_are_refused_with_the_total_and_the_slowest(main_job, capsys):
    from compress.cli import main

    assert main(["reproduce", "--profile", "smoke", "--data", "synthetic", "--arch", "vgg16", "vgg16_bn"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "--allow-long" in err
    assert "91.5 h in all; the slowest notebook, vgg16_bn, 51.3 h" in err
    assert main(["reproduce", "--profile", "smoke", "--data", "synthetic", "--arch", "vgg16", "--allow-long"]) == 0
    assert main_job["notebooks"] == ["vgg16"]


def test_reproduce_help_explains_every_option_and_its_defaults(capsys):
    from compress.cli import main

    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for option in ("--arch", "--seed", "--max-hours"):
        usage = out.split(f"{option} ")[-1]  # the option's own line, past the usage block
        assert not usage.startswith("--") and len(usage.split(" --")[0]) > 30, option
    assert "(default: 6)" in out and "(default: 0)" in out
