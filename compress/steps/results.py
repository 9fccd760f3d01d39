"""What a session produced, as tables on disk: `<results_dir>/<arch>/<name>.csv`, each with provenance.

The notebooks and the CLI both end here, so `python -m compress figures` draws whatever either produced.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..files import read_table, write_table
from ..schema import MODEL_COLUMNS
from .publish import publish_steps
from .session import Session



def show(df: pd.DataFrame) -> None:
    """Display a table in a notebook (rounded), or print it elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(df.round(3))
            return
    except ImportError:  # IPython is optional: plain printing outside Jupyter
        pass
    print(df.round(3).to_string(index=False))


def models_table(s: Session) -> pd.DataFrame:
    """Every model the session produced: accuracy against params, MACs, size and CPU latency."""
    return s.record("models", pd.DataFrame(list(s.models.values()), columns=MODEL_COLUMNS))


def timing_summary(timings: pd.DataFrame) -> str:
    """Minutes per step kind (a step resumed from saved work counts that work's time too), then the total:
    what the notebook costs on this machine."""
    per = timings.groupby("step", sort=False).seconds.agg(["sum", "count"])
    lines = [f"  {step:<20} {row['sum'] / 60:7.1f} min  ({int(row['count'])} run{'s' if row['count'] > 1 else ''})"
             for step, row in per.iterrows()]
    return "\n".join(["wall time per step (compute time, cached steps included):", *lines,
                      f"  {'total':<20} {per['sum'].sum() / 3600:7.2f} h"])


def _same_run_kind(a: dict, b: dict) -> bool:
    """Whether two provenance records come from the same profile, width and data: only then may one
    models table keep the other's rows (a `cpu` run must not inherit a quick run's models)."""
    def kind(p):
        profile = p.get("config", {}).get("profile", {})
        return profile.get("name"), profile.get("width"), p.get("data_source"), p.get("seed")
    return kind(a) == kind(b)


def table_provenance(s: Session, name: str, run: dict | None = None) -> dict:
    """The saving run's provenance, plus `steps`: the provenance of each cached step that computed the table's
    rows (the baseline's included: everything derives from it), and `commits`: every commit that contributed,
    in order of appearance, the saving run's own only where it computed rows itself (a table no step made).
    `run`: the saving run's provenance, when already read (it asks git)."""
    prov = dict(run or s.provenance())
    logged = {entry["folder"]: entry["provenance"] for entry in s.cache.log}
    own = s.table_steps.get(name, [])
    folders = list(logged) if name in ("models", "timings") else [*own, *([s.baseline_step] if s.baseline_step else [])]
    steps = {f: logged[f] if f in logged else s.cache.provenance(f) for f in dict.fromkeys(folders)}
    live = not own and name not in ("models", "timings")
    prov["steps"], prov["commits"] = steps, _commits(steps.values(), [prov["git_commit"]] if live else [])
    prov.update(s.table_notes.get(name, {}))
    return prov


def _commits(step_provs, first=()) -> list[str]:
    out = list(first)
    for p in step_provs:
        out += [c for c in p.get("commits") or [p.get("git_commit", "unknown")] if c not in out]
    return out


def save_results(s: Session, results_dir: str | Path | None = None, *, replace_reason: str | None = None) -> Path:
    """Write every table the session recorded to `<results_dir>/<arch>/<name>.csv` (default: the session's),
    and publish the steps behind them in `<results_dir>/<arch>/models/` (`steps/publish.py`): their records, and
    the models a later step or a user reads (`replace_reason`: why a published model may be replaced).

    Tables not produced by this session are left as they are; `models.csv` is merged by model name, so a
    CLI command that made only some of the models updates their rows and keeps the others, when the file
    comes from the same profile, width, data and seed (otherwise it is replaced whole).
    """
    folder = Path(results_dir or s.results_dir) / s.arch
    kept_steps = {}  # the provenance of models.csv rows kept from an earlier run
    if s.models:
        current = models_table(s)
        path = folder / "models.csv"
        if path.is_file():
            old, old_prov = read_table(path)
            if _same_run_kind(old_prov, s.provenance()):  # never keep rows of another profile, width or data
                current = pd.concat([old[~old.model.isin(current.model)], current], ignore_index=True)
                kept_steps = old_prov.get("steps", {})
            s.tables["models"] = current[MODEL_COLUMNS]
    if s.cache.log:  # compute time of every step this session asked for (a cached step: its original run's, all attempts)
        log = pd.DataFrame(s.cache.log)
        log["commit"] = [p.get("git_commit") for p in log.provenance]
        timings = s.record("timings", log[["step", "folder", "cached", "seconds", "commit"]])
        print(timing_summary(timings))
    run = s.provenance()
    for name, df in s.tables.items():
        prov = table_provenance(s, name, run)
        if name == "models" and kept_steps:  # rows kept from the file keep their steps' provenance
            prov["steps"] = {**kept_steps, **prov["steps"]}
            prov["commits"] = _commits(prov["steps"].values(), prov["commits"])
        write_table(folder / f"{name}.csv", df, prov)
    manifest = publish_steps(s, Path(results_dir or s.results_dir), replace_reason=replace_reason)
    print(f"wrote {len(s.tables)} tables to {folder}" + (f"; published steps in {manifest}" if manifest else ""))
    return folder
