"""The README's first table (`compress/report/study_table.py`): every architecture, official CIFAR-10 numbers only."""
import re

import numpy as np
import pandas as pd

from compress import published as pub
from compress.data import OFFICIAL_NAME
from compress.files import REPO_ROOT, write_json, write_table
from compress.provenance import provenance
from compress.report import figures
from compress.report.literature import BASELINES, PUBLISHED
from compress.report.study_table import FACTORS, PENDING, official_tables, study_markdown

JPEG = "image folder cifar10-jpeg.tar.gz (JPEG CIFAR-10 copy)"
COLUMNS = ["baseline", "literature", *[f"{f}x" for f in FACTORS], "int8"]


def _prov(source, epochs=30, device="cpu (test machine)"):
    return {**provenance({"profile": {"name": "cpu", "epochs": 40, "arch_epochs": {"resnet18": epochs}}},
                         seed=0, data_source=source), "device": device}


def _budget(tops: dict[float, float]) -> pd.DataFrame:
    """The chosen method (`global`) at each target, two steps each, beside an unchosen method and a second seed."""
    rows = []
    for target, top1 in tops.items():
        for rnd in (1, 2):  # the first step's numbers are never the budget's model
            rows.append({"kind": "pruned", "method": "global", "target": target, "round": rnd, "seed": 0,
                         "selected": True, "test_top1": top1 - (5 if rnd == 1 else 0), "paired_delta": top1 - 91.37,
                         "paired_ci95": 0.31, "step": f"budget_round-{target:g}-{rnd}"})
        rows.append({"kind": "pruned", "method": "uniform", "target": target, "round": 2, "seed": 0,
                     "selected": False, "test_top1": 11.11, "paired_delta": -80.0, "paired_ci95": 1.0, "step": "u"})
        rows.append({"kind": "pruned", "method": "global", "target": target, "round": 2, "seed": 1,
                     "selected": True, "test_top1": 22.22, "paired_delta": -70.0, "paired_ci95": 1.0, "step": "s"})
    return pd.DataFrame(rows).assign(macs=lambda d: 1000 / d.target, mac_reduction=lambda d: d.target, total_epochs=6)


def _latency(target, ms) -> pd.DataFrame:
    rows = [("pruned", "global", target, np.nan, "fp32", "onnxruntime", 2, 33.3),  # another thread count
            ("pruned", "global", target, np.nan, "fp32", "torch", 1, 44.4),  # another runtime
            ("architecture", "global", target, 8, "fp32", "onnxruntime", 1, 55.5),  # an unfine-tuned shape
            ("pruned", "global", target, np.nan, "int8", "onnxruntime", 1, 66.6),  # its INT8
            ("pruned", "global", target, np.nan, "fp32", "onnxruntime", 1, ms)]
    return pd.DataFrame(rows, columns=["kind", "method", "target", "round_to", "variant", "runtime", "threads", "latency_ms"])


def _int8() -> pd.DataFrame:
    return pd.DataFrame({"variant": ["onnx-fp32", "onnx-int8", "int8-optimal"], "runtime": ["onnxruntime"] * 2 + ["torch"],
                         "threads": [1, 1, 1], "top1": [91.37, 91.2, 66.6], "paired_delta": [0.0, -0.17, -24.77],
                         "paired_ci95": [0.0, 0.12, 0.5], "latency_ms": [9.42, 2.58, 7.7]})


def _rows(text: str) -> dict[str, dict[str, str]]:
    """{arch: {column: cell}} of the table's body."""
    out = {}
    for line in text.splitlines()[2:]:
        if not line.startswith("| "):
            break
        arch, *cells = line.strip("| ").split(" | ")
        out[arch] = dict(zip(COLUMNS, cells, strict=True))
    return out


def _fake(root):
    """resnet18: official baseline, budget at 2x and 8x (2x timed), no INT8 yet; vgg16: every table on the JPEG
    copy; vgg16_bn: an official baseline and INT8 beside a budget sweep on the JPEG copy."""
    write_table(root / "resnet18" / "baseline.csv", pd.DataFrame({"test_top1": [91.37]}), _prov(OFFICIAL_NAME))
    write_table(root / "resnet18" / "budget.csv", _budget({2.0: 90.12, 8.0: 88.4}), _prov(OFFICIAL_NAME))
    write_table(root / "resnet18" / "budget_latency.csv", _latency(2.0, 4.25), _prov(OFFICIAL_NAME))
    write_table(root / "vgg16" / "baseline.csv", pd.DataFrame({"test_top1": [77.77]}), _prov(JPEG))
    write_table(root / "vgg16" / "budget.csv", _budget({float(f): 70.01 for f in FACTORS}), _prov(JPEG))
    write_table(root / "vgg16" / "int8.csv", _int8(), _prov(JPEG))
    write_table(root / "vgg16_bn" / "baseline.csv", pd.DataFrame({"test_top1": [91.37]}), _prov(OFFICIAL_NAME))
    write_table(root / "vgg16_bn" / "int8.csv", _int8(), _prov(OFFICIAL_NAME, device="cpu (other machine)"))
    write_table(root / "vgg16_bn" / "budget.csv", _budget({2.0: 70.01}), _prov(JPEG))


def test_published_cells_fill_in_and_the_rest_say_not_yet_published(tmp_path):
    _fake(tmp_path / "results")
    text = study_markdown(tmp_path / "results")
    rows = _rows(text)
    assert list(rows) == ["resnet18", "vgg16", "vgg16_bn"]
    r = rows["resnet18"]
    assert r["baseline"] == f"91.37 (30 epochs), latency {PENDING}"  # trained epochs from its provenance; no int8 table
    assert r["2x"] == "90.12 (-1.25 ± 0.31), 4.25 ms"  # the chosen method's last step, main seed, onnxruntime 1 thread
    assert r["8x"] == f"88.40 (-2.97 ± 0.31), latency {PENDING}"
    assert [r[f"{f}x"] for f in (4, 16, 32)] == [PENDING] * 3 and r["int8"] == PENDING
    b = rows["vgg16_bn"]
    assert b["baseline"] == "91.37 (40 epochs), 9.42 ms" and b["int8"] == "91.20 (-0.17 ± 0.12), 2.58 ms"
    assert "resnet18 on cpu (test machine); vgg16_bn on cpu (other machine)." in text  # each latency names its machine


def test_jpeg_copy_tables_never_fill_an_official_cell(tmp_path):
    _fake(tmp_path / "results")
    rows = _rows(study_markdown(tmp_path / "results"))
    assert all(cell == PENDING for column, cell in rows["vgg16"].items() if column != "literature")
    assert [rows["vgg16_bn"][f"{f}x"] for f in FACTORS] == [PENDING] * len(FACTORS)  # its budget table is the JPEG copy's
    text = study_markdown(tmp_path / "results")
    assert "77.77" not in text and "70.01" not in text
    assert set(official_tables(tmp_path / "results", "vgg16_bn")[0]) == {"baseline", "int8"}


def test_a_published_model_links_the_number_it_backs(tmp_path):
    results = tmp_path / "results"
    _fake(results)
    models = pub.models_dir("resnet18", results)
    models.mkdir(parents=True)
    for name in ("budget-global-2x.pt", "baseline.pt"):
        (models / name).write_bytes(b"weights")
    steps = {"budget_round-2-2": {"model": {"file": "budget-global-2x.pt"}},  # the 2x row's last step
             "budget_round-8-2": {"model": {"file": "budget-global-8x.pt"}},  # listed, but its file is absent
             "baseline-0": {"model": {"file": "baseline.pt", "test_top1": 91.37}}}
    write_json(models / pub.MANIFEST, {"format": pub.FORMAT, "arch": "resnet18", "steps": steps})
    rows = _rows(study_markdown(results, link_from=tmp_path))
    assert rows["resnet18"]["2x"].startswith("[90.12](results/resnet18/models/budget-global-2x.pt) (-1.25")
    assert rows["resnet18"]["8x"].startswith("88.40 (") and rows["resnet18"]["baseline"].startswith(
        "[91.37](results/resnet18/models/baseline.pt) (30 epochs)")
    assert rows["vgg16_bn"]["baseline"].startswith("91.37 (")  # nothing of vgg16_bn is published


def test_the_literature_column_gives_each_recorded_baseline_with_its_epochs(tmp_path):
    rows = _rows(study_markdown(tmp_path))  # no results at all: the literature column alone is filled
    for arch, cells in rows.items():
        recorded = [b for b in BASELINES if b.arch == arch]
        assert cells["literature"].count("<br>") == max(len(recorded) - 1, 0)
        for b in recorded:
            assert f"{b.top1:.2f}: {b.model}, {b.work} ({b.epochs})" in cells["literature"]
        if not recorded:
            assert cells["literature"].startswith("none recorded")
        assert all(cell == PENDING for column, cell in cells.items() if column != "literature")
    assert {b.arch for b in BASELINES} == {"resnet18", "vgg16_bn"}  # vgg16: no sourced baseline yet
    (depgraph,) = [p for p in PUBLISHED if p.work == "DepGraph"]
    assert any(b.top1 == depgraph.baseline for b in BASELINES if b.work == "DepGraph")  # one figure, two tables


def test_the_readme_block_is_what_the_generator_writes_from_the_committed_results():
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"<!-- study:start -->\n(.*?)\n<!-- study:end -->", readme, re.S).group(1)
    assert block == study_markdown(REPO_ROOT / "results", link_from=REPO_ROOT)
    assert readme.index("<!-- study:start -->") < readme.index("## Run it")  # the first screen
    for arch, cells in _rows(block).items():
        if not official_tables(REPO_ROOT / "results", arch)[0]:  # nothing of it on the official data yet
            assert all(cell == PENDING for column, cell in cells.items() if column != "literature"), arch


def test_figures_rewrite_the_block_as_the_study_publishes(tmp_path):
    results = tmp_path / "results"
    _fake(results)
    readme = tmp_path / "README.md"
    readme.write_text("top\n<!-- study:start -->\nstale\n<!-- study:end -->\nrest\n")
    figures.make_figures(results, tmp_path / "assets", archs=[], verbose=False, readme=readme)
    text = readme.read_text()
    assert "stale" not in text and text.startswith("top\n<!-- study:start -->\n| architecture |")
    assert "| resnet18 | 91.37 (30 epochs)" in text and text.endswith("<!-- study:end -->\nrest\n")
