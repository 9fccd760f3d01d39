"""The figures and the documents' generated blocks, regenerated from the results tables alone:
`python -m compress figures`.

Results live in `results/<arch>/<table>.csv` (each with its provenance line); each figure below names
the table it reads, the plot that draws it and the asset it becomes, so adding a figure is one line.
A missing table skips its figure with a message instead of failing the others.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import plots
from ..models import ARCHS
from ..files import REPO_ROOT, atomic_write_text
from .findings import findings_markdown
from .literature import literature_markdown
from .study_table import study_markdown
from .summary import figure_label, front_table_markdown, replace_block, summary_markdown
from .tables import load_tables
from .targets import targets_markdown

RESULTS_DIR = REPO_ROOT / "results"
ASSETS_DIR = REPO_ROOT / "assets"
# the documents holding generated blocks (`<!-- name:start/end -->`), relative to the repository root: the front
# door's first table (`study_table.py`), and the full results beside it
DOCUMENTS = ("README.md", "docs/results.md")
OVERVIEW = "accuracy_vs_macs"  # the headline figure, every architecture in one: assets/accuracy_vs_macs.png


def selected_config(tables: dict) -> str:
    """The configuration the run carried forward (chosen on validation, `ratios.select_config`): the one
    the channel chart shows, as the notebook does."""
    rounds = tables["pruning"]
    if "selected" not in rounds.columns or not rounds.selected.any():
        raise ValueError("the pruning table has no `selected` configuration (made before selection was recorded): rerun it")
    return str(rounds.loc[rounds.selected.astype(bool), "config"].iloc[0])


FIGURES = {
    # asset suffix: (tables needed, how to draw)
    "training": (("history",), lambda t, a: plots.training_curves(t["history"], f"{a}: baseline training")),
    "l1": (("l1",), lambda t, a: plots.l1_ranking(t["l1"], f"{a}: filters ranked by L1 norm")),
    "sensitivity": (("sensitivity",), lambda t, a: plots.sensitivity(t["sensitivity"], f"{a}: sensitivity of each conv layer")),
    "budget": (("budget",), lambda t, a: plots.budget_curve(
        t["budget"], float(t["baseline"].test_top1.iloc[0]) if "baseline" in t else None,
        f"{a}: pruning to a MAC budget")),
    "pruning": (("pruning",), lambda t, a: plots.pruning_rounds(t["pruning"], f"{a}: iterative pruning")),
    "channels": (("pruning", "channels"), lambda t, a: plots.channels_per_layer(t["channels"], selected_config(t), arch=a)),
    "fixed_point": (("fixed_point",), lambda t, a: plots.fixed_point(t["fixed_point"], f"{a}: fixed-point accuracy by bits")),
    "int8": (("int8",), lambda t, a: plots.quant_comparison(t["int8"], f"{a}: FP32 vs INT8 (CPU)")),
    "pareto_macs": (("models",), lambda t, a: plots.pareto(t["models"], "macs", f"{a}: accuracy vs MACs")),
    "pareto_latency": (("models",), lambda t, a: plots.pareto(t["models"], "latency_ms", f"{a}: accuracy vs CPU latency")),
}

# How docs/results.md shows the figures: a caption, then the figures it describes (every FIGURES key once).
README_FIGURES = (
    ("Baseline training (loss, and train / validation accuracy by epoch):", ("training",)),
    ("Filters ranked by L1 norm per layer (steep curves: layers with many weak filters), and each conv pruned "
     "alone on a validation subset (flat curves can be pruned hard):", ("l1", "sensitivity")),
    ("Pruning to a MAC budget: test accuracy of each budget's model against its MACs, per allocation method, "
     "with the equal-budget and from-scratch controls (error bars: paired 95% interval against the baseline):",
     ("budget",)),
    ("Iterative pruning: params, MACs, size and accuracy per round for each configuration, and the filters kept "
     "per layer in the configuration carried forward:", ("pruning", "channels")),
    ("Quantization: accuracy by fixed-point bit width and format; FP32 against INT8 in size, accuracy and batch-1 "
     "CPU latency at 1 and 2 threads (FX and PT2E in PyTorch, onnxruntime):", ("fixed_point", "int8")),
    ("Every model produced, accuracy against MACs and against CPU latency (up and left is better):",
     ("pareto_macs", "pareto_latency")),
)


def figures_markdown(assets_dir: str | Path, archs=ARCHS, link_from: str | Path = REPO_ROOT,
                     heading: str = "####") -> str:
    """The figure gallery of docs/results.md: per architecture, each caption with the figures of it found in
    `assets_dir`, linked relative to `link_from` (the page's folder); "" when there are none. Generated, so
    an architecture's figures appear there the moment its results are drawn."""
    out = []
    for arch in archs:
        groups = [(caption, [Path(assets_dir) / f"{arch}_{name}.png" for name in names]) for caption, names in README_FIGURES]
        groups = [(caption, [p for p in paths if p.is_file()]) for caption, paths in groups]
        if not any(paths for _, paths in groups):
            continue
        out.append(f"{heading} {arch}\n")
        for caption, paths in groups:
            if paths:
                links = [f"![{p.stem}]({Path(os.path.relpath(p, link_from)).as_posix()})" for p in paths]
                out.append("\n".join([caption, "", *links, ""]))
    return "\n".join(out)


def readme_blocks(results_dir: str | Path = RESULTS_DIR, assets_dir: str | Path = ASSETS_DIR,
                  link_from: str | Path = REPO_ROOT) -> dict[str, str]:
    """Every generated block (`<!-- name:start/end -->`) by name, from the results and assets, with links
    relative to `link_from` (the folder of the document it goes in); a document holds the markers of those it shows."""
    return {"study": study_markdown(Path(results_dir), ARCHS, link_from),
            "headline": front_table_markdown(Path(results_dir)),
            "findings": findings_markdown(Path(results_dir), ARCHS, heading="####"),
            "results": summary_markdown(Path(results_dir), ARCHS, heading="####"),
            "literature": literature_markdown(Path(results_dir), ARCHS),
            "targets": targets_markdown(Path(results_dir), ARCHS, heading="####"),
            "figures": figures_markdown(assets_dir, ARCHS, link_from, heading="####")}


def stamp(figure, text: str) -> None:
    """`text` centred under everything the figure draws (rotated tick labels and axis labels included), so
    it never overprints them."""
    renderer = figure.canvas.get_renderer()
    bottom = min((ax.get_tightbbox(renderer).y0 for ax in figure.axes), default=0) / figure.bbox.height
    figure.text(0.5, bottom - 0.01, text, ha="center", va="top", fontsize=7, color="0.4")


def documents(readme: str | Path) -> list[Path]:
    """The documents with generated blocks of the repository whose README is `readme`: the README itself and
    those of `DOCUMENTS` beside it that exist."""
    root = Path(readme).parent
    return [root / d for d in DOCUMENTS if (root / d).is_file()] if Path(readme).is_file() else []


def overview_stamp(provs: dict[str, dict]) -> str:
    """The overview's source lines: one per architecture drawn, each naming its run and machine."""
    return "\n".join(f"{arch}: {figure_label(p)}" for arch, p in provs.items())


def draw_overview(results_dir: str | Path, assets_dir: str | Path, verbose: bool = True) -> Path | None:
    """The headline figure (`plots.accuracy_vs_macs`) of every architecture with results, stamped with each one's
    source; None where none has a table it draws."""
    panels, provs = {}, {}
    for arch in ARCHS:
        tables, prov = load_tables(results_dir, arch, with_provenance=True)
        drawn = [n for n in ("budget", "pruning", "models") if n in tables]
        if drawn:
            panels[arch], provs[arch] = tables, prov[drawn[-1]]
    if not panels:
        return None
    figure = plots.accuracy_vs_macs(panels)
    stamp(figure, overview_stamp(provs))
    return plots.save(figure, Path(assets_dir) / f"{OVERVIEW}.png")


def make_figures(results_dir: str | Path = RESULTS_DIR, assets_dir: str | Path = ASSETS_DIR,
                 archs=ARCHS, verbose: bool = True, readme: str | Path | None = None) -> list[Path]:
    """Draw every figure whose tables exist, each stamped with where its numbers come from (profile, data,
    device, commit of its first table), and the overview of every architecture; then `summary.md` and
    `targets.md` beside the tables, and, when `readme` is given, the generated blocks of the README and of
    `docs/results.md` beside it (the committed results redraw their tables and gallery too); returns the
    written paths."""
    written = []
    for arch in archs:
        tables, provs = load_tables(results_dir, arch, with_provenance=True)
        for suffix, (needs, draw) in FIGURES.items():
            missing = [n for n in needs if n not in tables]
            if missing:
                if verbose and tables:
                    print(f"skip {arch}_{suffix}.png: no {', '.join(missing)} table in {Path(results_dir) / arch}")
                continue
            try:
                figure = draw(tables, arch)
            except ValueError as e:  # a table from an older schema: say which, draw the others
                print(f"skip {arch}_{suffix}.png: {e}")
                continue
            stamp(figure, figure_label(provs[needs[0]]))
            written.append(plots.save(figure, Path(assets_dir) / f"{arch}_{suffix}.png"))
    overview = draw_overview(results_dir, assets_dir, verbose)
    if overview is not None:
        written.append(overview)
    summary = summary_markdown(Path(results_dir), ARCHS)  # every architecture present, whichever were redrawn
    if summary:
        written.append(atomic_write_text(Path(results_dir) / "summary.md", summary + "\n"))
    targets = targets_markdown(Path(results_dir), ARCHS)
    if targets:
        written.append(atomic_write_text(Path(results_dir) / "targets.md", targets + "\n"))
    for document in documents(readme) if readme is not None else []:  # generated blocks, headings nested
        text = new = document.read_text()
        for name, body in readme_blocks(results_dir, assets_dir, document.parent).items():
            new = replace_block(new, name, body)
        if new != text:
            written.append(atomic_write_text(document, new))
    if verbose:
        print(f"wrote {len(written)} figures and summaries to {assets_dir} and {results_dir}")
    return written
