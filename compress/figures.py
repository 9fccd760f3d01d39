"""The README's figures, regenerated from the results tables alone: `python -m compress figures`.

Results live in `results/<arch>/<table>.csv` (each with its provenance line); each figure below names
the table it reads, the plot that draws it and the asset it becomes, so adding a figure is one line.
A missing table skips its figure with a message instead of failing the others.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import plots
from .models import ARCHS
from .results import REPO_ROOT, atomic_write_text, read_table

RESULTS_DIR = REPO_ROOT / "results"
ASSETS_DIR = REPO_ROOT / "assets"

# table names written by pipeline.save_results, read here
TABLES = ("baseline", "history", "l1", "sensitivity", "pruning", "channels", "sparse", "fixed_point", "int8",
          "pruned_int8", "combined", "distillation", "models")


def _best_config(tables: dict) -> str:
    """The configuration whose last round is smallest in MACs: the one the channel bar chart shows."""
    rounds = tables["pruning"]
    last = rounds[rounds["round"] == rounds["round"].max()]
    return str(last.sort_values("macs").config.iloc[0])


FIGURES = {
    # asset suffix: (tables needed, how to draw)
    "training": (("history",), lambda t, a: plots.training_curves(t["history"], f"{a}: baseline training")),
    "l1": (("l1",), lambda t, a: plots.l1_ranking(t["l1"], f"{a}: filters ranked by L1 norm")),
    "sensitivity": (("sensitivity",), lambda t, a: plots.sensitivity(t["sensitivity"], f"{a}: sensitivity of each conv layer")),
    "pruning": (("pruning",), lambda t, a: plots.pruning_rounds(t["pruning"], f"{a}: iterative pruning")),
    "channels": (("pruning", "channels"), lambda t, a: plots.channels_per_layer(t["channels"], _best_config(t))),
    "fixed_point": (("fixed_point",), lambda t, a: plots.fixed_point(t["fixed_point"], f"{a}: fixed-point accuracy by bits")),
    "int8": (("int8",), lambda t, a: plots.quant_comparison(t["int8"], f"{a}: FP32 vs INT8 (CPU)")),
    "pareto_macs": (("models",), lambda t, a: plots.pareto(t["models"], "macs", f"{a}: accuracy vs MACs")),
    "pareto_latency": (("models",), lambda t, a: plots.pareto(t["models"], "latency_ms", f"{a}: accuracy vs CPU latency")),
}


def load_tables(results_dir: str | Path, arch: str) -> dict[str, pd.DataFrame]:
    folder = Path(results_dir) / arch
    return {name: read_table(folder / f"{name}.csv")[0] for name in TABLES if (folder / f"{name}.csv").is_file()}


def headline(results_dir: Path, arch: str) -> pd.DataFrame:
    """The numbers behind the README's claims for one architecture: one row per model produced."""
    tables = load_tables(results_dir, arch)
    if "models" not in tables:
        return pd.DataFrame()
    m = tables["models"].copy()
    base = m[m.kind.str.startswith("baseline")].iloc[0]
    m["params_x"] = base.params / m.params
    m["macs_x"] = base.macs / m.macs
    m["size_x"] = base.size_mb / m.size_mb
    m["latency_x"] = base.latency_ms / m.latency_ms
    m["top1_delta"] = m.top1 - base.top1
    return m


def summary_markdown(results_dir: Path, archs=ARCHS) -> str:
    """Markdown tables of every model per architecture, from `models.csv` (what the README shows)."""
    out = []
    for arch in archs:
        h = headline(results_dir, arch)
        if not len(h):
            continue
        prov = load_provenance(results_dir, arch)
        out.append(f"### {arch}\n\n{prov}\n")
        out.append("| model | top-1 % | vs baseline | params (M) | MACs (M) | size MB | gzip MB | CPU latency ms | runtime |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for _, r in h.iterrows():
            lat = "" if pd.isna(r.latency_ms) else f"{r.latency_ms:.2f}"
            gz = "" if pd.isna(r.gzip_mb) else f"{r.gzip_mb:.3f}"
            out.append(f"| {r.model} | {r.top1:.2f} | {r.top1_delta:+.2f} | {r.params / 1e6:.3f} ({r.params_x:.1f}x) | "
                       f"{r.macs / 1e6:.1f} ({r.macs_x:.1f}x) | {r.size_mb:.3f} ({r.size_x:.1f}x) | {gz} | {lat} | {r.runtime} |")
        out.append("")
    return "\n".join(out)


def _short(commit: str) -> str:
    """`abc123def456+dirty` for a run made with uncommitted changes: say so, never hide it."""
    head, plus, rest = commit.partition("+")
    return head[:12] + plus + rest


def load_provenance(results_dir: Path, arch: str) -> str:
    """One line saying where an architecture's numbers come from."""
    prov = read_table(Path(results_dir) / arch / "models.csv")[1]
    p = prov["config"].get("profile", {})
    return (f"Profile `{p.get('name')}` (width {p.get('width')}, {p.get('train_size') or 'all'} training images, "
            f"{p.get('epochs')} epochs), data: {prov['data_source']}; device: {prov['device']}; "
            f"torch {prov['versions'].get('torch')}; commit `{_short(prov['git_commit'])}`. Accuracy: final-epoch test top-1; "
            f"latency: batch 1, median, all CPU threads.")


def make_figures(results_dir: str | Path = RESULTS_DIR, assets_dir: str | Path = ASSETS_DIR,
                 archs=ARCHS, verbose: bool = True) -> list[Path]:
    """Draw every figure whose tables exist; returns the written paths."""
    written = []
    for arch in archs:
        tables = load_tables(results_dir, arch)
        for suffix, (needs, draw) in FIGURES.items():
            missing = [n for n in needs if n not in tables]
            if missing:
                if verbose and tables:
                    print(f"skip {arch}_{suffix}.png: no {', '.join(missing)} table in {Path(results_dir) / arch}")
                continue
            written.append(plots.save(draw(tables, arch), Path(assets_dir) / f"{arch}_{suffix}.png"))
    summary = summary_markdown(Path(results_dir), archs)
    if summary:
        written.append(atomic_write_text(Path(results_dir) / "summary.md", summary + "\n"))
    if verbose:
        print(f"wrote {len(written)} figures and summaries to {assets_dir} and {results_dir}")
    return written
