import pandas as pd
import pytest

from compress.report import figures, targets
from compress.provenance import provenance
from compress.files import read_table, write_table


def _int8_rows(variants, top1, delta, size, lat1, lat2, runtime="torch"):
    rows = []
    for v, t, d, s, a, b in zip(variants, top1, delta, size, lat1, lat2):
        for threads, lat in ((1, a), (2, b)):
            rows.append({"variant": v, "runtime": runtime if v != "pt2e-int8" and v != "qat-pt2e" else "inductor",
                         "threads": threads, "top1": t, "paired_delta": d, "paired_ci95": 0.1, "size_mb": s,
                         "latency_ms": lat})
    return rows


def _write(root, arch="resnet18", base_top1=90.0, ptq_drop=-0.2):
    prov = provenance({"profile": {"name": "cpu", "width": 1.0}}, seed=0, data_source="cifar10-jpeg.tar.gz")
    int8 = pd.DataFrame(_int8_rows(["fp32", "int8-default", "int8-optimal", "qat", "pt2e-int8", "qat-pt2e"],
                                   [base_top1, base_top1 - 1, base_top1 + ptq_drop, base_top1 + 0.05, base_top1 - 0.1,
                                    base_top1],
                                   [0, -1, ptq_drop, 0.05, -0.1, 0.0], [44.8, 11.3, 11.3, 11.3, 11.4, 11.4],
                                   [12.0, 4.0, 4.0, 4.0, 3.0, 3.0], [6.0, 2.0, 2.0, 2.0, 1.8, 1.8]))
    base = int8[(int8.variant == "fp32")].set_index("threads")
    int8["size_ratio"] = 44.8 / int8.size_mb
    int8["speedup"] = [base.latency_ms[n] / lat for n, lat in zip(int8.threads, int8.latency_ms)]
    pruning = pd.DataFrame({
        "config": ["aggressive"] * 3 + ["sensitivity"] * 3, "round": [0, 1, 2] * 2,
        "macs": [555e6, 100e6, 27e6, 555e6, 400e6, 250e6], "params": [11e6, 1e6, 0.2e6, 11e6, 8e6, 5e6],
        "mac_reduction": [1, 5.5, 20.5, 1, 1.4, 2.2], "param_reduction": [1, 11, 55, 1, 1.4, 2.2],
        "size_mb": [44.8, 4, 0.8, 44.8, 32, 20], "mean_val_top1": [90, 89, 88, 90, 90, 89.8],
        "final_val_top1": [90, 89, 88, 90, 90, 89.8],
        "test_top1": [base_top1, 89, 88, base_top1, 90.1, 89.8], "paired_delta": [0, -1, -2, 0, 0.1, -0.2],
        "paired_ci95": [0, 0.4, 0.5, 0, 0.2, 0.2]})
    pruned_int8 = pd.DataFrame(_int8_rows(["fp32", "int8-optimal", "onnx-int8"], [88, 87.9, 87.9], [0, -0.1, -0.1],
                                          [0.8, 0.21, 0.2], [1.2, 0.9, 0.5], [0.9, 0.8, 0.3])).assign(config="aggressive")
    pruned_int8.loc[pruned_int8.variant == "onnx-int8", "runtime"] = "onnxruntime"
    t = {
        "baseline": pd.DataFrame({"test_top1": [base_top1], "wall_seconds": [3 * 3600.0]}),
        "timings": pd.DataFrame({"step": ["baseline", "prune_round"], "folder": ["b", "p"], "cached": [True, False],
                                 "seconds": [1000.0, 1800.0]}),
        "pruning": pruning, "int8": int8, "pruned_int8": pruned_int8,
        "fixed_point": pd.DataFrame({"method": ["linear", "linear"], "bits": [4, 8], "top1": [50, 89.8],
                                     "top1_drop": [40, 0.2], "paired_delta": [-40, -0.2], "paired_ci95": [1, 0.1]}),
        "distillation": pd.DataFrame({"config": ["sensitivity"] * 4, "round": [1, 2, 1, 2],
                                      "distill": [True, True, False, False], "test_top1": [90, 89.8, 89.5, 89.4],
                                      "vs_other_delta": [0.5, 0.4, -0.5, -0.4], "vs_other_ci95": [0.3] * 4,
                                      "vs_other_p": [0.01] * 4}),
    }
    for name, df in t.items():
        write_table(root / arch / f"{name}.csv", df, prov)


def _status(df, start):
    return df[df.target.str.startswith(start)].status.item()


def test_targets_read_the_tables_and_say_met_or_missed(tmp_path):
    _write(tmp_path)
    df = targets.targets_table(tmp_path, "resnet18")
    assert _status(df, "baseline") == "**met**"
    # 1800 s computed + 1000 s cached baseline step, whose training really took 3 h: 3.5 h in all
    assert _status(df, "whole notebook") == "**met**" and "3.50 h" in df[df.target.str.startswith("whole")].measured.item()
    assert _status(df, "a pruned model") == "**met**"
    assert _status(df, "the sensitivity-chosen") == "**met**"
    assert _status(df, "INT8 PTQ") == "**met**" and "`int8-optimal`" in df[df.target.str.startswith("INT8")].measured.item()
    assert _status(df, "QAT") == "**met**" and _status(df, "fixed point") == "**met**"
    # 44.8 / 0.21 = 213x smaller; best runtime onnxruntime: 12 / 0.5 = 24x, 6 / 0.3 = 20x
    pruned = df[df.target.str.startswith("pruned + INT8")]
    assert pruned.status.item() == "**met**" and "213x smaller" in pruned.measured.item()
    assert "24.0x at 1 thread (onnx-int8 (onnxruntime))" in pruned.measured.item()
    assert "+0.40 ± 0.30" in df[df.target.str.startswith("distillation")].measured.item()
    assert _status(df, "PT2E") == "**met**"


def test_a_missed_target_is_reported_with_its_number(tmp_path):
    _write(tmp_path, base_top1=85.0, ptq_drop=-0.5)
    df = targets.targets_table(tmp_path, "resnet18")
    assert _status(df, "baseline") == "**missed**" and "85.00%" in df.measured.iloc[0]
    assert _status(df, "INT8 PTQ") == "**missed**"
    assert "-0.50 ± 0.10" in df[df.target.str.startswith("INT8")].measured.item()


def test_latency_timed_on_a_busy_machine_is_flagged(tmp_path):
    _write(tmp_path)
    quiet = targets.targets_table(tmp_path, "resnet18")
    assert not quiet.measured.str.contains("other processes").any()
    int8, prov = read_table(tmp_path / "resnet18" / "int8.csv")
    write_table(tmp_path / "resnet18" / "int8.csv", int8.assign(others_cpu=[0.02] * (len(int8) - 1) + [0.45]), prov)
    busy = targets.targets_table(tmp_path, "resnet18").set_index("target").measured
    for start in ("INT8 PTQ", "pruned + INT8", "PT2E"):
        claim = busy[busy.index.str.startswith(start)].item()
        assert claim.endswith("(timed while other processes took 45% of the CPU)"), claim


def test_missing_tables_say_no_data_and_figures_write_targets_md(tmp_path):
    _write(tmp_path)
    (tmp_path / "resnet18" / "pruned_int8.csv").unlink()
    df = targets.targets_table(tmp_path, "resnet18")
    assert _status(df, "pruned + INT8") == "no data"
    figures.make_figures(tmp_path, tmp_path / "assets", archs=["resnet18"], verbose=False)
    text = (tmp_path / "targets.md").read_text()
    assert text.startswith("### resnet18\n\nSource: profile cpu (width 1.0) | JPEG CIFAR-10 copy | cpu (")
    assert "| baseline >= 88.0% | 90.00% | **met** |" in text


@pytest.mark.parametrize("arch", ["vgg16", "vgg16_bn"])
def test_vgg_targets_have_their_own_thresholds(tmp_path, arch):
    _write(tmp_path, arch=arch)
    df = targets.targets_table(tmp_path, arch)
    assert df.target.iloc[0] == f"baseline >= {targets.BASELINE_TOP1[arch]:.1f}%"
    assert not df.target.str.startswith("the sensitivity-chosen").any()
    assert not df.target.str.startswith("pruned + INT8").any()


def test_figures_redraw_the_readme_block_between_its_markers(tmp_path):
    _write(tmp_path / "results")
    readme = tmp_path / "README.md"
    models = pd.DataFrame({"model": ["baseline", "int8"], "family": ["baseline", "baseline"], "precision": ["FP32", "INT8"],
                           "kind": ["baseline (FP32)", "baseline (INT8)"], "top1": [90.0, 89.8],
                           "paired_ci95": [0.0, 0.1], "params": [11e6, 11e6], "macs": [555e6, 555e6],
                           "size_mb": [44.8, 11.3], "gzip_mb": [41.0, 10.0], "latency_ms": [6.0, 2.0],
                           "runtime": ["torch", "torch"]})
    write_table(tmp_path / "results" / "resnet18" / "models.csv", models,
                provenance({"profile": {"name": "cpu", "width": 1.0, "epochs": 20, "arch_epochs": {"resnet18": 18}}},
                           seed=0, data_source="cifar10-jpeg.tar.gz"))
    readme.write_text("intro\n<!-- results:start -->\nold numbers\n<!-- results:end -->\nmiddle\n"
                      "<!-- targets:start -->\nold table\n<!-- targets:end -->\nrest\n")
    figures.make_figures(tmp_path / "results", tmp_path / "assets", archs=["resnet18"], verbose=False, readme=readme)
    text = readme.read_text()
    assert "old table" not in text and "\nmiddle\n<!-- targets:start -->\n#### resnet18\n\nSource: " in text
    assert text.endswith("<!-- targets:end -->\nrest\n") and "| baseline >= 88.0% | 90.00% | **met** |" in text
    assert "old numbers" not in text and text.startswith("intro\n<!-- results:start -->\n#### resnet18\n\nProfile `cpu`")
    assert "18 baseline epochs" in text and "| int8 | 89.80 | -0.20 ± 0.10 |" in text
    unmarked = tmp_path / "OTHER.md"
    unmarked.write_text("no markers\n")
    figures.make_figures(tmp_path / "results", tmp_path / "assets", archs=["resnet18"], verbose=False, readme=unmarked)
    assert unmarked.read_text() == "no markers\n"


def test_nothing_in_the_package_selects_by_test_accuracy():
    """Choices (a configuration, a preset, a method) are made on validation or fixed in advance: no ranking
    of a test-accuracy column anywhere in compress/ (sorting by it, taking its arg-max, its largest rows)."""
    import re
    from pathlib import Path

    import compress

    column = r"""["'](?:test_top1|top1|test_top5|top5)["']"""
    patterns = [rf"sort_values\(\s*\[?\s*{column}", rf"\[{column}\]\s*\.\s*idx(?:max|min)\(", r"\btop1\s*\.\s*idx(?:max|min)\(",
                r"\.top1\b[^\n]*\.idx(?:max|min)\(", rf"nlargest\([^)]*{column}", rf"nsmallest\([^)]*{column}"]
    found = []
    for path in Path(compress.__file__).parent.rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if any(re.search(p, line) for p in patterns):
                found.append(f"{path.name}:{n}: {line.strip()}")
    assert not found, found


def test_the_pruned_target_picks_the_qualifying_configuration_on_validation(tmp_path):
    from compress.report.targets import _pruned

    rounds = pd.DataFrame({"config": ["a", "b", "a", "b"], "round": [0, 0, 1, 1], "mac_reduction": [1, 1, 30, 30],
                           "param_reduction": [1, 1, 60, 60], "test_top1": [88, 88, 86, 85],
                           "final_val_top1": [88, 88, 84, 87], "paired_delta": [0, 0, -2, -3], "paired_ci95": [0, 0, .5, .5],
                           "macs": [100, 100, 3, 3]})
    (row, *_) = _pruned("vgg16", {"pruning": rounds})
    assert "`b`" in row["measured"]  # b is better on validation, a on test
