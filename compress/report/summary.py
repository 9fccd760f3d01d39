"""The documents' tables, from the results tables alone: the JPEG-copy run's headline table and one row per model
with the run's provenance, for docs/results.md (the README's first table is `study_table.py`'s)."""
from __future__ import annotations

import re
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
    """A summary never puts stand-in numbers beside real ones: a synthetic smoke run beside CIFAR-10 results is an
    error, not one table. Two real data sets may stand side by side while a study is recomputed architecture by
    architecture (the official set beside the old JPEG copy): each architecture's section names its data."""
    sources = {}
    for arch in archs:
        path = Path(results_dir) / arch / "models.csv"
        if path.is_file():
            sources[arch] = str(read_table(path)[1].get("data_source"))
    if len({src == "synthetic" for src in sources.values()}) > 1:
        detail = "; ".join(f"{a}: {src}" for a, src in sources.items())
        raise ValueError(f"{results_dir} mixes data sets ({detail}): draw each into its own results folder")


def summary_markdown(results_dir: Path, archs=ARCHS, heading: str = "###") -> str:
    """Markdown tables of every model per architecture, from `models.csv` (what docs/results.md shows)."""
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


FRONT_ARCH = "resnet18"  # the architecture the headline table of docs/results.md shows
FRONT_RUNTIMES = ("onnxruntime", "torch")  # the runtime its three rows share: the first the table has all three in


def _front_rows(m: pd.DataFrame, config: str) -> pd.DataFrame | None:
    """Baseline FP32, the pruned configuration `config` in FP32 and in INT8, all in one runtime (a latency ratio
    across runtimes would mix two things); None where no runtime has all three."""
    def base_of(model: str) -> str:  # "pruned:sensitivity+onnx-int8" -> "pruned:sensitivity": the model it converts
        return model.split("+", 1)[0]

    for runtime in FRONT_RUNTIMES:
        r = m[m.runtime == runtime]
        picks = [r[(r.family == "baseline") & (r.precision == "FP32")],
                 r[(r.family == "pruned") & (r.precision == "FP32") & (r.model.map(base_of) == f"pruned:{config}")],
                 r[(r.family == "pruned") & (r.precision == "INT8") & (r.model.map(base_of) == f"pruned:{config}")]]
        if all(len(p) for p in picks):  # the first INT8 variant in the table's order: the preset fixed in advance
            return pd.concat([p.iloc[[0]] for p in picks])
    return None


def front_table_markdown(results_dir: Path, arch: str = FRONT_ARCH) -> str:
    """The headline of docs/results.md: the baseline, the pruned model the run carried forward (chosen on validation,
    `ratios.select_config`, never on test accuracy) and that model in INT8, from `models.csv` and `pruning.csv`,
    with the run's data and machine beside the numbers; "" without those tables."""
    folder = Path(results_dir) / arch
    if not (folder / "models.csv").is_file() or not (folder / "pruning.csv").is_file():
        return ""
    m, prov = read_table(folder / "models.csv")
    rounds = read_table(folder / "pruning.csv")[0]
    if "selected" not in rounds or not rounds.selected.astype(bool).any():
        return ""
    config = str(rounds.loc[rounds.selected.astype(bool), "config"].iloc[0])
    rows = _front_rows(m, config)
    if rows is None:
        return ""
    base = rows.iloc[0]
    names = ["baseline", f"pruned (`{config}`)", f"pruned (`{config}`) + INT8"]
    out = [f"| {arch} | top-1 % | MACs (M) | file MB | latency ms |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, r in zip(names, rows.itertuples()):
        if name == "baseline":
            out.append(f"| {name} | {r.top1:.2f} | {r.macs / 1e6:.0f} | {r.size_mb:.1f} | {r.latency_ms:.2f} |")
            continue
        ci = getattr(r, "paired_ci95", float("nan"))
        delta = f"{r.top1 - base.top1:+.2f}" + ("" if pd.isna(ci) else f" ± {ci:.2f}")
        out.append(f"| {name} | {r.top1:.2f} ({delta}) | {r.macs / 1e6:.0f} ({base.macs / r.macs:.1f}x fewer) | "
                   f"{r.size_mb:.1f} ({base.size_mb / r.size_mb:.1f}x smaller) | "
                   f"{r.latency_ms:.2f} ({base.latency_ms / r.latency_ms:.1f}x faster) |")
    threads = getattr(base, "latency_threads", float("nan"))
    if pd.isna(threads):  # a table from before the count was kept: one figure, on the machine's every thread
        machine = re.search(r"(\d+) threads\)", str(prov.get("device", "")))
        at = f"{machine[1]} threads (all the machine's; the table does not record the count)" if machine else \
            "all the machine's threads (the table does not record how many)"
    else:
        at = f"{int(threads)} thread{'s' if threads != 1 else ''}"
    int8 = folder / "int8.csv"
    timed = (", timed inside the pipeline (a table from before fresh-process timing)"
             if int8.is_file() and "processes" not in read_table(int8)[0] else ", median of fresh processes")
    source = prov.get("data_source") or "data not recorded"
    data = "the JPEG CIFAR-10 copy" if "jpeg" in str(source).lower() else str(source)
    out += ["", f"Test top-1 on {data}; in brackets the difference to the baseline in points (± its paired 95% "
                f"interval where the run paired it). Latency: all three in {base.runtime} (INT8: "
                f"`{rows.iloc[2].model.split('+', 1)[-1]}`), batch 1, median at {at}{timed}, on {prov.get('device')}.",
            f"`{config}` is the configuration the run carried forward, chosen on validation. Every model and runtime: "
            f"below."]
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
    (unchanged when the markers are absent): how the documents' generated blocks are kept in step."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        return text
    return text[: i + len(start)] + "\n" + body.strip("\n") + "\n" + text[j:]
