from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from compress.report import figures
from compress.provenance import provenance
from compress.files import write_table


def _fake_results(root, arch="resnet18"):
    """Small but complete tables in the schemas the pipeline writes."""
    prov = provenance({"fake": True}, seed=0, data_source="synthetic", device="cpu")
    layers = ["conv1", "layer1.0.conv1"]
    t = {
        "history": pd.DataFrame({"epoch": [1, 2], "lr": [0.1, 0], "train_loss": [2, 1], "train_top1": [30, 60],
                                 "val_top1": [35, 55], "val_top5": [80, 90], "val_loss": [1.9, 1.2], "seconds": [1, 1]}),
        "l1": pd.DataFrame({"layer": np.repeat(layers, 3), "rank": [1, 2, 3] * 2, "l1_norm": [3, 2, 1] * 2,
                            "normalized": [1, 0.6, 0.3] * 2}),
        "sensitivity": pd.DataFrame({"layer": np.repeat(layers, 2), "ratio": [0, 0.5] * 2, "top1": [60, 50] * 2,
                                     "top5": [90, 85] * 2}),
        "pruning": pd.DataFrame({"config": ["a", "a", "b", "b"], "round": [0, 1] * 2, "params": [100, 10, 100, 20],
                                 "macs": [1000, 80, 1000, 200], "size_mb": [1, 0.1, 1, 0.2], "test_top1": [60, 58, 60, 59],
                                 "mean_val_top1": [60, 55, 60, 57], "final_val_top1": [60, 57, 60, 58], "selected": [False, False, True, True]}),
        "channels": pd.DataFrame({"config": ["b"] * 4, "round": [0, 0, 1, 1], "layer": layers * 2, "channels": [64, 64, 32, 16]}),
        "fixed_point": pd.DataFrame({"method": ["linear"] * 2 + ["log"] * 2, "bits": [4, 8] * 2, "top1": [20, 59, 15, 50]}),
        "int8": pd.DataFrame({"variant": ["fp32", "fp32", "int8-optimal", "int8-optimal", "fp32", "pt2e-int8"],
                              "runtime": ["torch"] * 4 + ["inductor"] * 2,  # fp32 twice: two runtimes
                              "top1": [60, 60, 59.8, 59.8, 60, 59.9], "size_mb": [44, 44, 11, 11, 44, 11],
                              "threads": [1, 2, 1, 2, 1, 1], "latency_ms": [20, 12, 6, 4, 11, 3]}),
        "budget": pd.DataFrame({"kind": ["pruned"] * 4 + ["equal_budget", "scratch"],
                                "method": ["global", "global", "uniform", "global", "none", "global"],
                                "target": [2.0, 8.0, 8.0, 8.0, 1.0, 8.0], "round": [1] * 6, "seed": [0, 0, 0, 1, 0, 0],
                                "macs": [500, 125, 126, 125, 1000, 125], "test_top1": [59.5, 57, 56, 57.2, 60.3, 55],
                                "paired_ci95": [0.3, 0.5, 0.5, 0.5, 0.2, 0.6]}),
        "models": pd.DataFrame({"model": ["baseline", "pruned:a"], "family": ["baseline", "pruned"],
                                "precision": ["FP32", "FP32"], "kind": ["baseline (FP32)", "pruned (FP32)"],
                                "top1": [60, 58], "params": [100, 10], "macs": [1000, 80], "size_mb": [1, 0.1],
                                "gzip_mb": [0.9, 0.09], "latency_ms": [20, 3], "runtime": ["torch", "torch"]}),
    }
    for name, df in t.items():
        write_table(root / arch / f"{name}.csv", df, prov)


def test_figures_regenerate_every_asset_from_tables(tmp_path):
    _fake_results(tmp_path / "results")
    written = figures.make_figures(tmp_path / "results", tmp_path / "assets", archs=["resnet18"], verbose=False)
    pngs = [p for p in written if p.suffix == ".png"]
    assert sorted(p.name for p in pngs) == sorted([f"resnet18_{k}.png" for k in figures.FIGURES] + [f"{figures.OVERVIEW}.png"])
    assert all(p.stat().st_size > 5000 and p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    summary = (tmp_path / "results" / "summary.md").read_text()
    assert "| pruned:a | 58.00 | -2.00 | 0.000 (10.0x) |" in summary and "data: synthetic" in summary


def test_missing_tables_skip_their_figures(tmp_path, capsys):
    _fake_results(tmp_path / "results")
    (tmp_path / "results" / "resnet18" / "int8.csv").unlink()
    written = figures.make_figures(tmp_path / "results", tmp_path / "assets", archs=["resnet18"])
    assert "resnet18_int8.png" not in {p.name for p in written} and "no int8 table" in capsys.readouterr().out


def test_the_channels_figure_shows_the_configuration_carried_forward(tmp_path, monkeypatch):
    _fake_results(tmp_path / "results")
    shown = []
    monkeypatch.setattr(figures.plots, "channels_per_layer", lambda table, config, arch="": shown.append(config) or _figure())
    figures.make_figures(tmp_path / "results", tmp_path / "assets", archs=["resnet18"], verbose=False)
    assert shown == ["b"]  # the selected one, not the smallest (a)


def _figure():
    import matplotlib.pyplot as plt

    return plt.figure()


def test_a_table_of_an_older_schema_skips_only_its_figure(tmp_path, capsys):
    _fake_results(tmp_path / "results")
    path = tmp_path / "results" / "resnet18" / "pruning.csv"
    from compress.files import read_table

    table, prov = read_table(path)
    write_table(path, table.drop(columns="selected"), prov)
    written = figures.make_figures(tmp_path / "results", tmp_path / "assets", archs=["resnet18"])
    names = {p.name for p in written}
    assert "resnet18_channels.png" not in names and "resnet18_pruning.png" in names
    assert "no `selected` configuration" in capsys.readouterr().out


def test_every_figure_is_stamped_with_its_source(tmp_path, monkeypatch):
    _fake_results(tmp_path / "results")
    stamps = []
    real_save = figures.plots.save
    monkeypatch.setattr(figures.plots, "save", lambda fig, path: stamps.append([t.get_text() for t in fig.texts])
                        or real_save(fig, path))
    figures.make_figures(tmp_path / "results", tmp_path / "assets", archs=["resnet18"], verbose=False)
    assert len(stamps) == len(figures.FIGURES) + 1  # and the overview
    for texts in stamps[:-1]:
        assert any(t.startswith("profile ? (width ?) | synthetic | cpu (") and "computed by " in t for t in texts), texts
    assert any(t.startswith("resnet18: profile ? (width ?) | synthetic | cpu (") for t in stamps[-1]), stamps[-1]


def test_summary_pairs_the_difference_where_the_step_did(tmp_path):
    _fake_results(tmp_path / "results")
    prov = provenance({"profile": {"name": "cpu", "width": 1.0}}, seed=0, data_source="x/cifar10-jpeg.tar.gz")
    models = pd.DataFrame({"model": ["baseline", "baseline+int8-optimal", "pruned:a+int8-optimal"],
                           "family": ["baseline", "baseline", "pruned"], "precision": ["FP32", "INT8", "INT8"],
                           "kind": ["baseline (FP32)", "baseline (INT8)", "pruned (INT8)"], "top1": [60, 59.9, 58],
                           "paired_ci95": [0.0, 0.12, float("nan")], "params": [100, 100, 10], "macs": [1000] * 3,
                           "size_mb": [1, 0.25, 0.03], "gzip_mb": [0.9, 0.2, 0.02], "latency_ms": [20, 5, 1],
                           "runtime": ["torch"] * 3})
    write_table(tmp_path / "results" / "resnet18" / "models.csv", models, prov)
    figures.make_figures(tmp_path / "results", tmp_path / "assets", archs=["resnet18"], verbose=False)
    summary = (tmp_path / "results" / "summary.md").read_text()
    assert "| baseline+int8-optimal | 59.90 | -0.10 ± 0.12 |" in summary
    assert "| pruned:a+int8-optimal | 58.00 | -2.00 |" in summary  # not paired with the baseline: no interval
    assert figures.figure_label(prov).startswith("profile cpu (width 1.0) | JPEG CIFAR-10 copy | cpu (")


def test_the_readme_gallery_lists_every_drawn_figure_once(tmp_path):
    names = [n for _, group in figures.README_FIGURES for n in group]
    assert sorted(names) == sorted(figures.FIGURES)  # a new figure needs a caption, and gets one place
    _fake_results(tmp_path / "results")
    (tmp_path / "results" / "resnet18" / "int8.csv").unlink()
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- figures:start -->\nstale\n<!-- figures:end -->\nend\n")
    figures.make_figures(tmp_path / "results", tmp_path / "assets", archs=["resnet18"], verbose=False, readme=readme)
    text = readme.read_text()
    assert "stale" not in text and text.startswith("intro\n") and text.endswith("end\n")
    assert "#### resnet18" in text and "![resnet18_training](assets/resnet18_training.png)" in text
    assert "resnet18_int8" not in text and "resnet18_fixed_point.png" in text  # no table, no figure, no link
    assert "#### vgg16" not in text


def test_the_committed_documents_show_the_committed_results():
    """The generated blocks of the README and docs/results.md are what `python -m compress figures` makes of
    results/ and assets/ now, and every block is shown by one of them."""
    from compress.report.summary import replace_block

    shown = set()
    docs = figures.documents(figures.REPO_ROOT / "README.md")
    assert [d.relative_to(figures.REPO_ROOT).as_posix() for d in docs] == list(figures.DOCUMENTS)
    for doc in docs:
        text = doc.read_text()
        for name, body in figures.readme_blocks(link_from=doc.parent).items():
            if f"<!-- {name}:start -->" in text:
                shown.add(name)
                assert replace_block(text, name, body) == text, f"{doc.name}'s {name} block is stale: run `python -m compress figures`"
    assert shown == set(figures.readme_blocks())
    readme = (figures.REPO_ROOT / "README.md").read_text()
    assert readme.index("<!-- study:start -->") < readme.index("## Run it")  # the result comes first
    assert f"(assets/{figures.OVERVIEW}.png)" in readme


def test_generated_blocks_go_to_the_readme_and_the_results_page_beside_it(tmp_path):
    _fake_results(tmp_path / "results")
    (tmp_path / "docs").mkdir()
    readme, results = tmp_path / "README.md", tmp_path / "docs" / "results.md"
    readme.write_text("<!-- figures:start -->\n<!-- figures:end -->\n")
    results.write_text("top\n<!-- figures:start -->\nstale\n<!-- figures:end -->\n")
    figures.make_figures(tmp_path / "results", tmp_path / "assets", archs=["resnet18"], verbose=False, readme=readme)
    assert "![resnet18_training](assets/resnet18_training.png)" in readme.read_text()
    text = results.read_text()  # links relative to the page's own folder
    assert "stale" not in text and "![resnet18_training](../assets/resnet18_training.png)" in text


def test_pareto_styles_keep_every_kind_apart():
    """The cpu ResNet18 run files 12 kinds; matplotlib's 10-color cycle made two pairs look the same."""
    from compress.report.plots import pareto_style
    from compress.schema import FAMILIES, PRECISIONS, RUNTIMES

    kinds = [(f, p, r) for f in FAMILIES for p in PRECISIONS for r in RUNTIMES]
    styles = [pareto_style(*k) for k in kinds]
    assert len(set(styles)) == len(kinds)
    assert pareto_style("pruned", "INT8", "onnxruntime")[1] == "s" and pareto_style("baseline", "FP32", "torch")[1] == "o"
    # one colour per runtime and precision: a baseline and a pruned model of one kind share it, kinds never do
    assert pareto_style("baseline", "INT8", "torch")[0] == pareto_style("pruned", "INT8", "torch")[0]
    colours = {pareto_style("baseline", p, r)[0] for p in PRECISIONS for r in RUNTIMES}
    assert len(colours) == len(PRECISIONS) * len(RUNTIMES)


def _richest_committed_arch() -> str:
    """The architecture whose committed models.csv has the most rows (the study republishes one at a time)."""
    from compress.files import REPO_ROOT, read_table

    return max(sorted(p.parent.name for p in (REPO_ROOT / "results").glob("*/models.csv")),
               key=lambda a: len(read_table(REPO_ROOT / "results" / a / "models.csv")[0]))


def test_the_report_reads_typed_columns_never_the_kind_label(tmp_path):
    """The committed tables of the architecture with the most models drawn twice, once with every `kind` label
    scrambled: the summary, the targets and the Pareto legend must not change, because they select on family /
    precision / runtime alone."""
    import shutil

    from compress.files import REPO_ROOT, read_table
    from compress.report.plots import pareto
    from compress.report.summary import summary_markdown
    from compress.report.targets import targets_markdown

    arch = _richest_committed_arch()
    for name in ("plain", "scrambled"):
        shutil.copytree(REPO_ROOT / "results" / arch, tmp_path / name / arch, ignore=shutil.ignore_patterns("*.pt"))
    path = tmp_path / "scrambled" / arch / "models.csv"
    models, prov = read_table(path)
    write_table(path, models.assign(kind="unreadable label"), prov)
    out = {}
    for name in ("plain", "scrambled"):
        root = tmp_path / name
        fig = pareto(read_table(root / arch / "models.csv")[0])
        out[name] = (summary_markdown(root, [arch]), targets_markdown(root, [arch]),
                     [t.get_text() for legend in (fig.axes[0].get_legend(), *fig.legends) for t in legend.get_texts()])
        plt.close(fig)
    assert out["plain"] == out["scrambled"]
    assert "onnxruntime INT8" in out["plain"][2] and "pruned" in out["plain"][2]


def test_a_summary_never_mixes_data_sets(tmp_path):
    import pytest

    _fake_results(tmp_path / "results", "resnet18")
    models = pd.DataFrame({"model": ["baseline"], "family": ["baseline"], "precision": ["FP32"],
                           "kind": ["baseline (FP32)"], "top1": [60], "params": [100],
                           "macs": [1000], "size_mb": [1], "gzip_mb": [0.9], "latency_ms": [20], "runtime": ["torch"]})
    write_table(tmp_path / "results" / "vgg16" / "models.csv", models,
                provenance({}, seed=0, data_source="image folder cifar10-jpeg.tar.gz (JPEG CIFAR-10 copy)", device="cpu"))
    with pytest.raises(ValueError, match="mixes data sets .*resnet18: synthetic; vgg16: image folder"):
        figures.make_figures(tmp_path / "results", tmp_path / "assets", verbose=False)


def test_a_summary_may_hold_two_real_data_sets_each_named(tmp_path):
    """Mid-study: one architecture on the official set, another still on the JPEG copy; each section says which."""
    from compress.report import summary

    for arch, source in (("resnet18", "CIFAR-10 (official)"), ("vgg16", "image folder cifar10-jpeg.tar.gz (JPEG CIFAR-10 copy)")):
        models = pd.DataFrame({"model": ["baseline"], "family": ["baseline"], "precision": ["FP32"],
                               "kind": ["baseline (FP32)"], "top1": [60], "params": [100], "macs": [1000],
                               "size_mb": [1], "gzip_mb": [0.9], "latency_ms": [20], "runtime": ["torch"]})
        write_table(tmp_path / arch / "models.csv", models, provenance({}, seed=0, data_source=source, device="cpu"))
    summary.check_one_source(tmp_path)  # no error
    text = summary.summary_markdown(tmp_path)
    assert "CIFAR-10 (official)" in text and "JPEG CIFAR-10 copy" in text


def test_the_stamp_sits_below_every_label_and_log_axes_read_as_plain_numbers(tmp_path, monkeypatch):
    _fake_results(tmp_path / "results")
    checked = []

    def check(fig, path):
        renderer = fig.canvas.get_renderer()
        (stamp,) = [t for t in fig.texts if t.get_text().startswith(("profile ", "resnet18: profile "))]
        top = stamp.get_window_extent(renderer).y1
        assert all(top <= ax.get_tightbbox(renderer).y0 + 1 for ax in fig.axes), path  # no overprinted tick labels
        for ax in fig.axes:
            if ax.get_xscale() == "log":
                labels = [t.get_text() for t in ax.get_xticklabels(which="both") if t.get_text()]
                assert labels and not any("times" in s or "^" in s for s in labels), (path, labels)
        checked.append(Path(path).name)
        plt.close(fig)

    monkeypatch.setattr(figures.plots, "save", check)
    figures.make_figures(tmp_path / "results", tmp_path / "assets", archs=["resnet18"], verbose=False)
    assert "resnet18_channels.png" in checked and "resnet18_pareto_macs.png" in checked
    assert f"{figures.OVERVIEW}.png" in checked


def test_the_literature_table_sets_the_nearest_chosen_budget_beside_each_paper(tmp_path):
    from compress.report.literature import PUBLISHED, literature_markdown

    budget = pd.DataFrame({"kind": ["pruned"] * 4, "method": ["global", "global", "uniform", "global"],
                           "target": [2.0, 4.0, 2.0, 2.0], "round": [2] * 4, "seed": [0, 0, 0, 1],
                           "selected": [True, True, False, True], "mac_reduction": [2.01, 3.98, 2.0, 2.02],
                           "paired_delta": [-0.31, -0.9, -0.5, -0.2], "paired_ci95": [0.2, 0.3, 0.3, 0.2],
                           "total_epochs": [6] * 4})
    write_table(tmp_path / "resnet18" / "budget.csv", budget, provenance({}))
    text = literature_markdown(tmp_path, ["resnet18", "vgg16"])
    (depgraph,) = [line for line in text.splitlines() if line.startswith("| DepGraph")]
    assert "resnet18 global 2x | 2.01x | -0.31 ± 0.20 | 6 epochs" in depgraph  # chosen method, main seed, nearest
    assert "| vgg16: not run yet" in text and "vgg16_bn" not in text
    assert round(PUBLISHED[0].mac_factor, 2) == 2.39  # 58.1% fewer FLOPs


def test_a_partial_budget_sweep_says_so_in_its_finding(tmp_path):
    from compress.files import read_table
    from compress.report.findings import findings_markdown

    _fake_results(tmp_path / "results")
    path = tmp_path / "results" / "resnet18" / "budget.csv"
    budget, prov = read_table(path)
    budget["selected"] = budget.kind == "pruned"
    for c in ("vs_equal_delta", "vs_equal_ci95", "mac_reduction", "paired_delta"):
        budget[c] = 0.5
    write_table(path, budget, prov)
    assert "partial sweep" not in findings_markdown(tmp_path / "results", ["resnet18"])
    write_table(path, budget, {**prov, "sweep": {"runs_done": 4, "runs_planned": 11}})
    text = findings_markdown(tmp_path / "results", ["resnet18"])
    assert "a partial sweep, 4 of its 11 runs finished" in text


def _budget_with_controls_and_peer() -> pd.DataFrame:
    """A finished budget sweep: the chosen method on three budgets, the peer on the same, both controls."""
    rows = []
    for method, selected, tops in (("global", True, [59.6, 58.9, 57.5]), ("torch-pruning", False, [59.1, 58.0, 55.9])):
        for target, top1 in zip((2.0, 4.0, 8.0), tops):
            rows.append({"kind": "pruned", "method": method, "target": target, "selected": selected, "macs": 1000 / target,
                         "test_top1": top1})
    rows += [{"kind": "equal_budget", "method": "none", "target": 1.0, "selected": False, "macs": 1000, "test_top1": 60.4},
             {"kind": "scratch", "method": "global", "target": 4.0, "selected": False, "macs": 250, "test_top1": 56.0}]
    return pd.DataFrame(rows).assign(round=2, seed=0, paired_ci95=0.4)


def _overview_legend(results) -> list[str]:
    from compress.report.plots import accuracy_vs_macs
    from compress.report.tables import load_tables

    fig = accuracy_vs_macs({"resnet18": load_tables(results, "resnet18")})
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    lines = {c.get_label(): len(c.lines[0].get_xdata()) for c in fig.axes[0].containers}  # errorbar: line + bars
    plt.close(fig)
    return labels, lines


def test_the_overview_draws_the_budget_curve_its_control_and_the_peer_when_the_tables_have_them(tmp_path):
    from compress.report.plots import PEER_LABEL

    _fake_results(tmp_path / "results")
    (tmp_path / "results" / "resnet18" / "budget.csv").unlink()
    labels, _ = _overview_legend(tmp_path / "results")  # what today's committed tables hold: baseline and rounds
    assert "baseline (unpruned)" in labels and "iterative pruning, b (each round)" in labels
    assert PEER_LABEL not in labels and not any("equal budget" in t for t in labels)

    write_table(tmp_path / "results" / "resnet18" / "budget.csv", _budget_with_controls_and_peer(), provenance({}))
    labels, lines = _overview_legend(tmp_path / "results")
    assert PEER_LABEL in labels and "baseline fine-tuned as long (equal budget)" in labels
    assert "pruned to a MAC budget (method chosen on validation)" in labels and "same architecture from scratch" in labels
    assert lines["pruned to a MAC budget (method chosen on validation)"] == 3  # the budgets joined by one line
    assert lines[PEER_LABEL] == 3


def test_the_pareto_legend_is_short_and_outside_the_axes():
    """One entry per runtime-and-precision colour and per model marker, beside the plot, not over it."""
    from compress.files import REPO_ROOT, read_table
    from compress.report.plots import pareto

    models = read_table(REPO_ROOT / "results" / _richest_committed_arch() / "models.csv")[0]
    fig = pareto(models)
    fig.canvas.draw()
    ax = fig.axes[0]
    legends = [ax.get_legend(), *fig.legends]
    entries = [t.get_text() for legend in legends for t in legend.get_texts()]
    kinds = models.groupby(["precision", "runtime"]).ngroups + models.family.nunique()
    assert len(entries) == kinds < models.groupby(["family", "precision", "runtime"]).ngroups
    right = ax.get_window_extent().x1
    assert all(legend.get_window_extent().x0 >= right for legend in legends)
    plt.close(fig)


def test_the_headline_table_keeps_one_runtime_and_the_configuration_chosen_on_validation(tmp_path):
    from compress.report.summary import front_table_markdown

    _fake_results(tmp_path / "results")  # configuration `b` is selected; `a` is smaller but was not chosen
    models = pd.DataFrame({"model": ["baseline", "pruned:a", "pruned:b", "pruned:b+int8-optimal", "pruned:b+onnx-int8"],
                           "family": ["baseline", "pruned", "pruned", "pruned", "pruned"],
                           "precision": ["FP32", "FP32", "FP32", "INT8", "INT8"],
                           "runtime": ["torch"] * 4 + ["onnxruntime"], "top1": [60, 58, 59, 58.8, 58.9],
                           "paired_ci95": [0.0] + [float("nan")] * 4, "params": [100, 10, 20, 20, 20],
                           "macs": [1e9, 80e6, 200e6, 200e6, 200e6], "size_mb": [4, 0.4, 0.8, 0.2, 0.2],
                           "gzip_mb": [3.6, 0.36, 0.72, 0.18, 0.18], "latency_ms": [20, 3, 5, 2, 0.5]})
    prov = {**provenance({}, data_source="synthetic"), "device": "cpu (test machine)"}
    write_table(tmp_path / "results" / "resnet18" / "models.csv", models, prov)
    text = front_table_markdown(tmp_path / "results")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| baseline", "| pruned (`b`)", "| pruned (`b`) + INT8"]
    assert "| 2.00 (10.0x faster) |" in rows[2]  # torch INT8 against torch FP32: onnxruntime lacks the FP32 rows
    assert "all three in torch (INT8: `int8-optimal`)" in text and "on cpu (test machine)." in text
    assert "Test top-1 on synthetic;" in text
    (tmp_path / "results" / "resnet18" / "pruning.csv").unlink()
    assert front_table_markdown(tmp_path / "results") == ""  # no configuration chosen, no table


def test_the_headline_latency_names_its_one_thread_count(tmp_path):
    """A table without the count (timed before it was kept) was one figure on every thread of its machine: the
    caption says how many, never "every thread" as if it were a sweep; a recorded count is given as recorded."""
    from compress.report.summary import front_table_markdown

    _fake_results(tmp_path / "results")
    models = pd.DataFrame({"model": ["baseline", "pruned:b", "pruned:b+int8-optimal"], "family": ["baseline", "pruned", "pruned"],
                           "precision": ["FP32", "FP32", "INT8"], "runtime": ["torch"] * 3, "top1": [60, 59, 58.8],
                           "params": [100, 20, 20], "macs": [1e9, 200e6, 200e6], "size_mb": [4, 0.8, 0.2],
                           "gzip_mb": [3.6, 0.72, 0.18], "latency_ms": [20, 5, 2]})
    prov = {**provenance({}, data_source="synthetic"), "device": "cpu (test machine, 2 cores, 2 threads)"}
    write_table(tmp_path / "results" / "resnet18" / "models.csv", models, prov)
    text = front_table_markdown(tmp_path / "results")
    assert "median at 2 threads (all the machine's; the table does not record the count)" in text
    assert "every thread" not in text
    write_table(tmp_path / "results" / "resnet18" / "models.csv", models.assign(latency_threads=1), prov)
    assert "median at 1 thread," in front_table_markdown(tmp_path / "results")


def test_the_literature_table_gives_chip_and_coring_beside_hrankplus_with_their_baseline(tmp_path):
    """#34's rows: CHIP and CORING at HRankPlus' three VGG16-BN points (58.1 / 66.6 / 78.6% fewer FLOPs), each
    with its fine-tune epochs and the baseline (93.96%) its deltas are against."""
    from compress.report.literature import PUBLISHED, literature_markdown

    text = literature_markdown(tmp_path, ["vgg16_bn"])
    rows = {(line.split(" | ")[0].lstrip("| "), line.split(" | ")[2]): line for line in text.splitlines()[2:]
            if line.startswith("|")}
    for work, epochs in (("CHIP", "200 epochs"), ("CORING", "300-400 epochs"), ("HRankPlus", "150 epochs")):
        assert {f for w, f in rows if w == work} == {"2.39x", "2.99x", "4.67x"}, work
        assert all(epochs in line and "vgg16_bn: not run yet" in line for (w, _), line in rows.items() if w == work)
    assert "| -0.10 (of 93.96) |" in rows[("CHIP", "2.39x")] and "| +0.46 (of 93.96) |" in rows[("CORING", "2.39x")]
    assert "| -0.13 (of 93.96) |" in rows[("CORING", "4.67x")] and "| -0.78 (of 93.96) |" in rows[("CHIP", "4.67x")]
    assert "(of" not in rows[("HRankPlus", "2.39x")]  # no baseline given where no source states it
    assert {p.work for p in PUBLISHED if p.arch == "vgg16_bn"} == {"HRankPlus", "CHIP", "CORING"}


def test_the_literature_table_marks_otov2_and_ato_as_trained_from_scratch_in_one_run(tmp_path):
    """#40's rows: OTOv2 and ATO on ResNet-18 near 5x (79.7% / 79.9% fewer FLOPs), each against its own baseline,
    marked as training from scratch in one run; every other row prunes a trained baseline, and the note under
    the table says only those compare directly."""
    from compress.report.literature import PUBLISHED, literature_markdown

    text = literature_markdown(tmp_path, ["resnet18", "vgg16", "vgg16_bn"])
    lines = text.splitlines()
    assert lines[0].split(" | ")[5] == "pruned from"
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:] if line.startswith("|")}
    assert "| ResNet-18, official CIFAR-10 | 4.93x | -0.16 (of 93.02) |" in rows["OTOv2"]
    assert "| ResNet-18, official CIFAR-10 | 4.98x | +0.10 (of 94.41) |" in rows["ATO"]
    assert {p.work for p in PUBLISHED if p.from_scratch} == {"OTOv2", "ATO"}
    for line in text.splitlines()[2:]:
        if line.startswith("|"):
            start = line.split(" | ")[5]
            assert start == ("scratch, one run" if line.startswith(("| OTOv2 ", "| ATO ")) else "trained baseline"), line
    assert "resnet18: not run yet" in rows["OTOv2"] and "resnet18: not run yet" in rows["ATO"]
    (note,) = [line for line in lines if line.startswith("Pruned from:")]
    assert "(OTOv2, ATO)" in note and "Only the former compare directly" in note
