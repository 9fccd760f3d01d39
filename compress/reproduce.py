"""One command from nothing to the README's numbers: run the three notebooks headless, then the figures.

    python -m compress reproduce --profile full     # GPU: results/ and assets/ (what the README shows)
    python -m compress reproduce --profile smoke    # seconds: runs/smoke/{results,assets,notebooks}

Notebooks run with papermill, so the executed copies (with their outputs) land next to the results and
the committed notebooks are never rewritten. Every notebook step is cached, so a rerun after an
interruption picks up where it stopped.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .figures import ASSETS_DIR, RESULTS_DIR, headline, make_figures
from .models import ARCHS
from .results import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"


def output_dirs(profile: str) -> tuple[Path, Path, Path]:
    """(results, assets, executed notebooks): the committed folders only for the full profile."""
    if profile == "full":
        return RESULTS_DIR, ASSETS_DIR, REPO_ROOT / "runs" / "full" / "notebooks"
    base = REPO_ROOT / "runs" / profile
    return base / "results", base / "assets", base / "notebooks"


def run_notebook(arch: str, out_path: Path, parameters: dict, timeout: int | None = None) -> Path:
    """Execute `notebooks/<arch>.ipynb` with papermill into `out_path`; raises on any failing cell."""
    import papermill as pm

    out_path.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(NOTEBOOKS / f"{arch}.ipynb"), str(out_path), parameters=parameters,
                        cwd=str(NOTEBOOKS), kernel_name="python3", progress_bar=False, execution_timeout=timeout)
    return out_path


def run_inprocess(arch: str, parameters: dict) -> dict:
    """Execute the notebook's code cells in this process, parameters injected after the `parameters` cell.

    For machines without Jupyter (a lent GPU): the same cells, in the same order, minus the kernel.
    Returns the notebook's namespace.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nb = json.loads((NOTEBOOKS / f"{arch}.ipynb").read_text())
    ns: dict = {"__name__": "__notebook__"}
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        t0 = time.perf_counter()
        exec(compile(source, f"{arch}.ipynb[{i}]", "exec"), ns)  # noqa: S102 - our own committed notebook
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            ns.update(parameters)
        plt.close("all")
        print(f"[{arch} cell {i}] {time.perf_counter() - t0:6.1f} s  {source.splitlines()[0][:70]}", flush=True)
    return ns


def reproduce(profile: str = "full", archs=ARCHS, data: str | None = None, seed: int = 0, *,
              results: Path | None = None, assets: Path | None = None, engine: str = "papermill") -> dict:
    """Run every notebook (papermill, or `inprocess` where Jupyter is absent), draw the figures, summarise."""
    default_results, default_assets, executed = output_dirs(profile)
    # the notebooks run in notebooks/: hand them absolute paths
    results, assets = Path(results or default_results).resolve(), Path(assets or default_assets).resolve()
    if data and Path(data).exists():
        data = str(Path(data).resolve())
    if engine not in ("papermill", "inprocess"):
        raise ValueError(f"engine must be 'papermill' or 'inprocess', got {engine!r}")
    timings = {}
    for arch in archs:
        t0 = time.perf_counter()
        params = {"ARCH": arch, "PROFILE": profile, "DATA": data, "SEED": seed, "RESULTS_DIR": str(results)}
        if engine == "papermill":
            run_notebook(arch, executed / f"{arch}.ipynb", params)
        else:
            run_inprocess(arch, params)
        timings[arch] = time.perf_counter() - t0
        print(f"{arch}: notebook ran in {timings[arch]:.0f} s ({engine})")
    make_figures(results, assets, archs)
    for arch in archs:
        h = headline(results, arch)
        if len(h):
            print(f"\n{arch} ({profile} profile):")
            print(h[["model", "kind", "top1", "top1_delta", "params_x", "macs_x", "size_x", "latency_x"]].round(2).to_string(index=False))
    return timings
