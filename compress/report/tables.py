"""The one reader of a run's results tables (`<results_dir>/<arch>/<name>.csv`, each with its provenance)."""
from __future__ import annotations

from pathlib import Path

from ..files import read_table

# table names written by steps.save_results, read by the figures, the summary and the targets
TABLES = ("baseline", "history", "l1", "sensitivity", "pruning", "channels", "budget", "budget_layers", "budget_latency",
          "budget_peer",
          "sparse",
          "fixed_point", "int8", "pruned_int8", "combined", "distillation", "models", "timings")


def load_tables(results_dir: str | Path, arch: str, with_provenance: bool = False):
    """{table name: DataFrame} of one architecture (and {name: provenance} with `with_provenance`)."""
    folder = Path(results_dir) / arch
    read = {name: read_table(folder / f"{name}.csv") for name in TABLES if (folder / f"{name}.csv").is_file()}
    tables = {name: t for name, (t, _) in read.items()}
    return (tables, {name: p for name, (_, p) in read.items()}) if with_provenance else tables


def budget_finals(budget):
    """The model each run of a `budget` table ends with: the last step of every (kind, method, target, seed)."""
    runs = budget.groupby(["kind", "method", "target", "seed"])["round"].transform("max")
    return budget[budget["round"] == runs]


def chosen_curve(finals):
    """Of `budget_finals`: the method chosen on validation, main seed, by target (the curve a reader quotes)."""
    chosen = finals[(finals.kind == "pruned") & finals.selected.astype(bool) & (finals.seed == finals.seed.min())]
    return chosen.sort_values("target")
