"""`python -m compress verify`: every published model checked against its manifest and its table row.

For each model: its size and sha256 against the manifest, then the model loaded (`weights_only=True`) and
evaluated in fp32 on the test set it was published on, and its top-1 compared, to 2 decimals, with the
manifest and with every table row it backs. One line per model, then a summary; any mismatch, damaged or
missing file fails the whole check (`VerifyError`: the CLI's one `error:` line and a non-zero exit).
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from . import published as pub
from .checkpoint import load_checkpoint
from .data import load_cifar10, resolve_source
from .files import read_table
from .train import evaluate


class VerifyError(ValueError):
    """At least one published model failed: the summary line says how many."""


def _test_set(entry: pub.Entry, source: str | None, loaded: dict):
    """The test split the entry was published on (same source, sizes and seed), or an error naming both."""
    key, prov = entry.record["key"], entry.record.get("provenance", {})
    profile = prov.get("config", {}).get("profile", {})
    spec = (resolve_source(source), profile.get("train_size"), profile.get("val_size", 5000), profile.get("test_size"),
            key.get("seed", 0))
    if spec not in loaded:
        loaded[spec] = load_cifar10(spec[0], train_size=spec[1], val_size=spec[2], test_size=spec[3], seed=spec[4])
    data = loaded[spec]
    if data.identity() != key["data"]:
        published_on = entry.record.get("provenance", {}).get("data_source") or key["data"]
        raise pub.PublishedError(f"published on {published_on} ({key['data']}), but the data here is "
                                 f"{data.source} ({data.identity()}): set COMPRESS_DATA to the same set")
    return data.test


def _table_values(entry: pub.Entry, results: Path) -> list[tuple[str, float]]:
    """(table, top-1) of every row the entry backs in the committed tables."""
    out = []
    for row in entry.record.get("rows", []):
        path = results / entry.arch / row["table"]
        if not path.is_file():
            raise pub.PublishedError(f"the table {row['table']} it backs is missing")
        table, _ = read_table(path)
        if "step" in row:
            table = table[table["step"] == row["step"]]
        column = next((c for c in ("test_top1", "top1") if c in table), None)
        if column is None or table.empty:
            continue
        out += [(row["table"], float(v)) for v in table[column]]
    return out


def verify(arch: str | None = None, *, root: str | Path | None = None, source: str | None = None,
           out=print) -> pd.DataFrame:
    """Check every published model of `arch` (default: every architecture with a manifest); returns one row per
    model and raises `VerifyError` when any failed."""
    results = pub.results_root(root)
    archs = [arch] if arch else pub.published_archs(results)
    if not archs:
        raise pub.PublishedError(f"no published models in {results} (expected {results}/<arch>/models/manifest.json)")
    rows, loaded = [], {}
    t_all = time.perf_counter()
    for a in archs:
        models = [e for e in pub.entries(a, results) if e.record.get("model")]
        if not models:
            raise pub.PublishedError(f"no published {a} models in {pub.models_dir(a, results)}")
        for e in models:
            t0 = time.perf_counter()
            spec = e.record["model"]
            row = {"arch": a, "file": spec["file"], "mb": spec["bytes"] / 1e6, "dtype": spec.get("dtype"),
                   "published_top1": spec.get("test_top1"), "top1": float("nan"), "ok": False, "why": ""}
            try:
                path = pub.check_file(e)
                model, _ = load_checkpoint(path, a)
                row["top1"] = evaluate(model.float().eval(), _test_set(e, source, loaded), 500, "cpu")["top1"]
                expected = [("manifest", spec.get("test_top1")), *_table_values(e, results)]
                wrong = [f"{where} says {v:.2f}" for where, v in expected if v is not None and round(v, 2) != round(row["top1"], 2)]
                row["ok"], row["why"] = not wrong, "; ".join(wrong)
            except (pub.PublishedError, ValueError, OSError) as err:
                row["why"] = str(err).splitlines()[0]
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            mark = "ok  " if row["ok"] else "FAIL"
            out(f"{mark} {a}/{spec['file']:<28} {row['mb']:6.1f} MB {row['dtype'] or '':8} top-1 {row['top1']:6.2f}% "
                f"(published {row['published_top1'] if row['published_top1'] is not None else float('nan'):.2f}%) "
                f"{row['seconds']:5.1f} s" + (f"  {row['why']}" if row["why"] else ""))
    table = pd.DataFrame(rows)
    failed = int((~table.ok).sum())
    out(f"{len(table) - failed} of {len(table)} published models verified in {time.perf_counter() - t_all:.0f} s")
    if failed:
        raise VerifyError(f"{failed} of {len(table)} published models failed verification (see the lines above)")
    return table
