"""The notebook's pipeline (notebooks/build.py's cells, in their order) through `compress.steps` calls, without
Jupyter: tests/test_arch_pipeline.py runs it once per architecture, and the one papermill run of
tests/test_notebooks.py finds vgg16's steps in the cache it leaves.

Latency here is a stand-in (`fake_measure`): the fresh-process timing is proven in tests/test_latency.py and
tests/test_quant_compare.py; each fresh process costs seconds, and the pipeline starts a dozen."""
from __future__ import annotations

import pandas as pd

from compress.quant.latency import COLUMNS


def fake_measure(variants, *, threads, **_) -> pd.DataFrame:
    """`latency.measure`'s table without the processes: 1 ms at 1 thread, less at more (distinct rows)."""
    return pd.DataFrame([{"variant": v.name, "runtime": v.runtime, "threads": t, "latency_ms": 1.0 / t,
                          "latency_p90_ms": 1.0 / t, "min_ms": 1.0 / t, "max_ms": 1.0 / t, "spread": 0.0,
                          "processes": 1, "runs": 1, "flagged": False} for v in variants for t in threads],
                        columns=COLUMNS)


def run(s) -> dict:
    """Every step call and plot the notebook makes, in its order (`test_the_pipeline_makes_the_template's_step
    calls` keeps the two in step); returns what each cell bound, by the notebook's names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from compress import budget, interactive, steps
    from compress.report import plots

    ARCH = s.arch  # noqa: N806  (the notebook's name)
    baseline = steps.train_baseline(s)
    plots.training_curves(s.tables["history"], f"{ARCH}: baseline training")
    plots.l1_ranking(steps.l1_ranking(s, baseline), f"{ARCH}: filters ranked by L1 norm")
    scan = steps.sensitivity(s, baseline)
    plots.sensitivity(scan, f"{ARCH}: sensitivity of each conv layer")
    configs = steps.configurations(s, scan)
    pruned = steps.prune_rounds(s, baseline, configs)
    plots.pruning_rounds(pruned.rounds, f"{ARCH}: iterative pruning")
    plots.channels_per_layer(pruned.channels, pruned.best)
    distill = steps.distillation_effect(s, baseline, pruned) if s.profile.distill_comparison else None
    allocation = budget.allocate(baseline, "4x", "global")
    curve = steps.budget_sweep(s, baseline, scan)
    plots.budget_curve(curve.table, float(s.tables["baseline"].test_top1.iloc[0]), f"{ARCH}: pruning to a MAC budget")
    panel = interactive.ratio_panel(s, baseline, scan=scan)
    preview = interactive.preview(baseline, ARCH, interactive.seed_ratios(ARCH, baseline, scan, max_drop=2.0))
    fixed = steps.fixed_point(s, baseline)
    plots.fixed_point(fixed, f"{ARCH}: fixed-point accuracy by bits")
    int8 = steps.int8(s, baseline)
    plots.quant_comparison(int8, f"{ARCH}: FP32 vs INT8 (CPU)")
    pruned_model = pruned.model(device=s.device)
    pruned_int8 = steps.pruned_int8(s, pruned_model, pruned.best, baseline=baseline)
    sparse = steps.sparse(s, baseline)
    combined = steps.combined(s, baseline, pruned_model, pruned.best, sparse)
    smallest_int8 = None
    if pruned.smallest != pruned.best:
        smallest_int8 = steps.pruned_int8(s, pruned.model(pruned.smallest, device=s.device), pruned.smallest,
                                          baseline=baseline)
    models = steps.models_table(s)
    plots.pareto(models, "macs", f"{ARCH}: accuracy vs MACs")
    plots.pareto(models, "latency_ms", f"{ARCH}: accuracy vs CPU latency")
    folder = steps.save_results(s)
    plt.close("all")
    return {"baseline": baseline, "scan": scan, "configs": configs, "pruned": pruned, "distill": distill,
            "allocation": allocation, "curve": curve, "panel": panel, "preview": preview, "fixed": fixed,
            "int8": int8, "pruned_int8": pruned_int8, "sparse": sparse, "combined": combined,
            "smallest_int8": smallest_int8, "models": models, "folder": folder}
