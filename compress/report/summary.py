"""The README's tables, from the results tables alone: one row per model, with the run's provenance."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..models import ARCHS
from ..files import read_table


def headline(results_dir: Path, arch: str) -> pd.DataFrame:
    """The numbers behind the README's claims for one architecture: one row per model produced."""
    path = Path(results_dir) / arch / "models.csv"
    if not path.is_file():
        return pd.DataFrame()
    m = read_table(path)[0]
    base = m[(m.family == "baseline") & (m.precision == "FP32") & (m.runtime == "torch")].iloc[0]
    m["params_x"] = base.params / m.params
    m["macs_x"] = base.macs / m.macs
    m["size_x"] = base.size_mb / m.size_mb
    m["latency_x"] = base.latency_ms / m.latency_ms
    m["top1_delta"] = m.top1 - base.top1
    return m


def check_one_source(results_dir: Path, archs=ARCHS) -> None:
    """One summary holds numbers of one data set: architectures whose `models.csv` came from different data
    (a synthetic smoke run beside JPEG results, say) are an error, not one table."""
    sources = {}
    for arch in archs:
        path = Path(results_dir) / arch / "models.csv"
        if path.is_file():
            sources[arch] = str(read_table(path)[1].get("data_source"))
    if len(set(sources.values())) > 1:
        detail = "; ".join(f"{a}: {src}" for a, src in sources.items())
        raise ValueError(f"{results_dir} mixes data sets ({detail}): draw each into its own results folder")


def summary_markdown(results_dir: Path, archs=ARCHS, heading: str = "###") -> str:
    """Markdown tables of every model per architecture, from `models.csv` (what the README shows)."""
    check_one_source(results_dir, archs)
    out = []
    for arch in archs:
        h = headline(results_dir, arch)
        if not len(h):
            continue
        prov = load_provenance(results_dir, arch)
        out.append(f"{heading} {arch}\n\n{prov}\n")
        out.append("| model | top-1 % | vs baseline | params (M) | MACs (M) | size MB | gzip MB | CPU latency ms | runtime |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for _, r in h.iterrows():
            lat = "" if pd.isna(r.latency_ms) else f"{r.latency_ms:.2f}"
            gz = "" if pd.isna(r.gzip_mb) else f"{r.gzip_mb:.3f}"
            ci = r.get("paired_ci95")
            delta = f"{r.top1_delta:+.2f}" + ("" if ci is None or pd.isna(ci) else f" ± {ci:.2f}")
            out.append(f"| {r.model} | {r.top1:.2f} | {delta} | {r.params / 1e6:.3f} ({r.params_x:.1f}x) | "
                       f"{r.macs / 1e6:.1f} ({r.macs_x:.1f}x) | {r.size_mb:.3f} ({r.size_x:.1f}x) | {gz} | {lat} | {r.runtime} |")
        out.append("")
    return "\n".join(out)


def _short(commit: str) -> str:
    """`abc123def456+dirty` for a run made with uncommitted changes: say so, never hide it."""
    head, plus, rest = commit.partition("+")
    return head[:12] + plus + rest


def computed_by(prov: dict) -> str:
    """The commits that computed a table's rows (each cached step's own, `steps/results.table_provenance`),
    shortened; a table from before steps kept their provenance says so and names its publishing commit."""
    if not prov.get("commits"):  # published before each step kept its own: the publishing commit is all there is
        return f"not recorded (published by {_short(str(prov.get('git_commit', '?')))})"
    return ", ".join(_short(str(c)) for c in prov["commits"])


def precision_used(prov: dict) -> str:
    """The training precision(s) of the steps behind a table (`bf16`, `fp32`), or `precision not recorded`."""
    found = [p.get("precision") for p in (prov.get("steps") or {}).values()] or [prov.get("precision")]
    found = sorted({str(p) for p in found if p})
    return " + ".join(found) if found else "precision not recorded"


def figure_label(prov: dict) -> str:
    """The short source line stamped under a figure: profile, width, data, device, precision, the commits."""
    p = prov.get("config", {}).get("profile", {})
    data = str(prov.get("data_source") or "?")
    data = "JPEG CIFAR-10 copy" if "jpeg" in data.lower() else data
    sweep = prov.get("sweep") or {}
    partial = (f" | partial sweep: {sweep['runs_done']} of {sweep['runs_planned']} runs"
               if sweep and sweep["runs_done"] < sweep["runs_planned"] else "")
    return (f"profile {p.get('name', '?')} (width {p.get('width', '?')}) | {data} | {prov.get('device', '?')} | "
            f"{precision_used(prov)} | computed by {computed_by(prov)}{partial}")


def _commits_line(prov: dict) -> str:
    published = _short(str(prov.get("git_commit", "?")))
    if prov.get("commits"):
        return f"computed by `{computed_by(prov)}`, published by `{published}`"
    return f"published by `{published}` (the commits that computed its cached steps were not recorded then)"


def load_provenance(results_dir: Path, arch: str) -> str:
    """One line saying where an architecture's numbers come from."""
    prov = read_table(Path(results_dir) / arch / "models.csv")[1]
    p = prov["config"].get("profile", {})
    epochs = (p.get("arch_epochs") or {}).get(arch, p.get("epochs"))
    return (f"Profile `{p.get('name')}` (width {p.get('width')}, {p.get('train_size') or 'all'} training images, "
            f"{epochs} baseline epochs), data: {prov['data_source']}; device: {prov['device']}; "
            f"training precision: {precision_used(prov)}; torch {prov['versions'].get('torch')}; {_commits_line(prov)}. "
            f"Accuracy: final-epoch test top-1; "
            f"vs baseline: the difference in points, ± the 95% interval of the paired difference on the same test "
            f"images where the step paired them; latency: batch 1, median, all CPU threads.")


def replace_block(text: str, name: str, body: str) -> str:
    """`text` with what stands between `<!-- name:start -->` and `<!-- name:end -->` replaced by `body`
    (unchanged when the markers are absent): how the README's generated tables are kept in step."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        return text
    return text[: i + len(start)] + "\n" + body.strip("\n") + "\n" + text[j:]
