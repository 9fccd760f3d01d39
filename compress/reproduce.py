"""One command from nothing to the README's numbers: plan, run the notebooks headless, draw the figures.

    python -m compress reproduce --profile smoke           # seconds: runs/smoke/{results,assets,notebooks}
    python -m compress reproduce --profile cpu             # every notebook that fits here (published: minutes)
    python -m compress reproduce --profile cpu --plan      # what would run, on which device, for how long
    python -m compress reproduce --profile cpu --arch vgg16 --allow-long   # compute one that does not fit

Before anything runs, the plan says which steps each notebook will compute (and which are published or
cached), on which device, and an estimate from the profile's sizes and a speed measured here and now. A
notebook whose estimate is over `max_hours` does not run unless `allow_long`: without `archs` the others
still run (so the main job works on a fresh clone of a partly published study) and each one left out is
listed with its hours and the command that computes it; with `archs` named, the plan is refused. Every step
is cached, so a rerun after an interruption picks up where it stopped.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from pathlib import Path

import torch

from .allocator import keep_freed_memory
from .models import ARCHS, build_model
from .profiles import Profile, get_profile
from .steps.pipeline import Sizes, Speed, estimate
from .files import REPO_ROOT, check_output_folder
from .steps.cache import RECOMPUTE_ENV

NOTEBOOKS = REPO_ROOT / "notebooks"
RESULTS_DIR = REPO_ROOT / "results"
ASSETS_DIR = REPO_ROOT / "assets"


def output_dirs(profile: str, publish: bool = False) -> tuple[Path, Path, Path]:
    """(results, assets, executed notebooks): the committed folders only when publishing."""
    if publish:
        return RESULTS_DIR, ASSETS_DIR, NOTEBOOKS
    base = REPO_ROOT / "runs" / profile
    return base / "results", base / "assets", base / "notebooks"


# ----------------------------------------------------------------------------- the plan
def measure_speed(arch: str, profile: Profile, device: torch.device, steps: int = 3) -> Speed:
    """A few timed training and evaluation batches with the trainer's own path (precision, memory layout), after
    a warm-up. Small batches on a CPU (64 images: per image a CPU costs about the same at any batch size), so the
    plan of three full-width architectures prints within seconds. A busy machine measures far too slow (6 img/s
    where it trains at 169), so the fastest speed measured on this kind of CPU is kept (`speeds.json` in the
    step cache) and used when it is faster than today's. Where this machine trained a baseline to its end, that
    training's own speed replaces the probe's (`trained_speed`)."""
    from .kernels import channels_last_training
    from .device import channels_last_pays, resolve_precision
    from .provenance import device_name
    from .steps.session import step_cache
    from .files import read_json, write_json

    precision = resolve_precision(profile.train_config(arch).precision, device)
    model = build_model(arch, width=profile.width).to(device)
    with channels_last_training(model, device, channels_last_pays(precision, device)) as channels_last:
        now = _timed_steps(model, profile, device, precision, channels_last, steps)
    path = step_cache().root / "speeds.json"
    key = f"{device_name(device)} | {arch} | width {profile.width:g} | {precision}"
    try:
        known = read_json(path)
        best = known.get(key, {}) if isinstance(known, dict) else {}
    except (OSError, ValueError):
        known, best = {}, {}
    speed = Speed(max(now.train, float(best.get("train", 0))), max(now.eval, float(best.get("eval", 0))))
    if speed != Speed(float(best.get("train", 0)), float(best.get("eval", 0))):
        try:
            write_json(path, {**(known if isinstance(known, dict) else {}), key: {"train": speed.train, "eval": speed.eval}})
        except OSError:  # a read-only cache: the plan still prints
            pass
    trained = trained_speed(arch, profile.width, precision, device_name(device))
    return Speed(trained, speed.eval) if trained else speed


def trained_speed(arch: str, width: float, precision: str, device: str) -> float | None:
    """Training images/s of the last baseline this machine trained to its end (width and precision the same),
    from its record: a whole training's speed, data augmentation and all, where a probe of a few batches
    flatters (or, beside another job, slights) it. None where this machine trained none."""
    from .files import read_json
    from .steps.cache import DONE, RECORD
    from .steps.session import step_cache

    found = []
    for done_path in step_cache().root.glob(f"baseline-*/{DONE}"):
        try:
            done = read_json(done_path)
            key, prov = done.get("config", {}), done.get("provenance", {})
            if (key.get("arch"), key.get("width"), prov.get("device"), prov.get("precision")) != (
                    arch, float(width), device, precision):
                continue
            found.append((done.get("finished", 0), float(read_json(done_path.parent / RECORD)["record"]["train_images_per_second"])))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return max(found)[1] if found else None


def _timed_steps(model, profile: Profile, device: torch.device, precision: str, channels_last: bool, steps: int) -> Speed:
    from .device import autocast

    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    batch = min(profile.batch_size, 256 if device.type == "cuda" else 64)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (batch,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def train_step():
        with autocast(device, precision):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def eval_step():
        with torch.no_grad(), autocast(device, precision):
            model(x)

    out = []
    for fn in (train_step, eval_step):
        fn()  # warm-up (the first call picks kernels and allocates)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        out.append(steps * batch / (time.perf_counter() - t0))
    return Speed(*out)


def baseline_progress(s) -> float:
    """The share of the session's baseline that is there: 1.0 when it is cached or published, epochs saved over
    epochs when an interrupted run left a resumable state (e.g. 8/18), else 0.0."""
    from .steps.baseline import baseline_key
    from .steps.cache import STATE
    from .train import progress_path
    from .files import read_json

    _, key = baseline_key(s)
    if s.cache.status("baseline", key) is not None:
        return 1.0
    try:
        saved = read_json(progress_path(s.cache.folder("baseline", key) / STATE))
        return min(1.0, saved["epoch"] / saved["epochs"])
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):  # none saved (or unreadable): all to do
        return 0.0


def print_plan(profile: Profile, archs, data, seed: int, device: torch.device) -> dict[str, float]:
    """Print each notebook's stages: how many of their steps are published or cached, and the estimate of the
    rest; returns the estimated seconds per architecture."""
    from .provenance import device_name
    from .steps.session import Session, step_cache

    sizes = Sizes(len(data.train), len(data.val), len(data.test))
    print(f"plan: profile {profile.name} (width {profile.width}) on {data.summary()}; device "
          f"{device_name(device)}", flush=True)
    totals = {}
    for arch in archs:
        s = Session(arch, profile, data, device, seed, step_cache(), RESULTS_DIR)
        found = s.cache.inventory({"arch": arch, "width": float(profile.width), "seed": seed, "data": data.identity()})
        speed = measure_speed(arch, profile, device)
        rows = estimate(arch, profile, speed, sizes, found)
        saved = baseline_progress(s)
        if 0.0 < saved < 1.0 and not rows[0]["published"] + rows[0]["cached"]:  # a resumed run trains what is left
            rows[0] = {**rows[0], "seconds": rows[0]["seconds"] * (1.0 - saved), "saved": saved}
        totals[arch] = sum(r["seconds"] for r in rows)
        print(f"  {arch}: {speed.train:.0f} train / {speed.eval:.0f} eval images/s here; estimate {_hours(totals[arch])}",
              flush=True)
        for r in rows:
            there = [f"{r[k]} {k}" for k in ("published", "cached") if r[k]]
            status = (f"{', '.join(there)} of {r['planned']} steps" if there else f"{r['planned']} steps to compute")
            if "saved" in r:
                status += f" ({r['saved']:.0%} of the baseline saved)"
            print(f"    {r['step']:<12} {status:<40} {_hours(r['seconds'])}", flush=True)
    print(f"  estimate {span(totals)} (published and cached steps are read, not computed)", flush=True)
    return totals


def span(totals: dict[str, float]) -> str:
    """An estimate over several notebooks: the total and the slowest notebook, each named as what it is (a
    refusal once quoted the slowest as if it were the whole)."""
    if len(totals) == 1:
        (arch, seconds), = totals.items()
        return f"{_hours(seconds)} for {arch}"
    slowest = max(totals, key=totals.get)
    return f"{_hours(sum(totals.values()))} in all; the slowest notebook, {slowest}, {_hours(totals[slowest])}"


def left_out(profile: str, too_long: dict[str, float], max_hours: float, data: str | None, seed: int) -> str:
    """What the main job did not run: each notebook over the limit, its hours here and the command that computes
    it (the same run, that architecture alone, with `--allow-long`)."""
    extra = (f" --data {data}" if data else "") + (f" --seed {seed}" if seed else "")
    lines = [f"not published (or only in part), so not run: over the {max_hours:g} h limit per notebook here "
             f"({span(too_long)}). Each computes with:"]
    for arch, seconds in too_long.items():
        lines.append(f"  {arch:<9} {_hours(seconds):>7} here: python -m compress reproduce --profile {profile} "
                     f"--arch {arch}{extra} --allow-long")
    return "\n".join(lines)


def recompute_names(names) -> list[str]:
    """Stage names (`baseline`, `prune`, `budget`, ...) or step names, as the step names to compute anyway."""
    from .steps.keys import STEPS
    from .steps.pipeline import PIPELINE

    stages = {s.name: s.steps for s in PIPELINE if s.steps}
    out = []
    for name in names:
        if name in stages:
            out += stages[name]
        elif name in STEPS:
            out.append(name)
        else:
            raise ValueError(f"--recompute {name!r}: not a stage ({', '.join(stages)}) or a step ({', '.join(STEPS)})")
    return list(dict.fromkeys(out))


def _hours(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


# ----------------------------------------------------------------------------- running the notebooks
class NotebookProgress(logging.Formatter):
    """papermill's log lines labelled with the notebook they come from, `[vgg16] ...`, and its cell markers
    ("Executing Cell 7-----", no total) as `[vgg16] cell 7/31` and `[vgg16] cell 7/31 done`. papermill numbers
    every cell, markdown included, of the notebook it writes (the parameters it injects are one more)."""

    MARKER = re.compile(r"^(Executing|Ending) Cell (\d+)-*$")

    def __init__(self, arch: str, cells: int):
        super().__init__()
        self.arch, self.cells = arch, cells

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        marker = self.MARKER.match(message)
        if marker:
            message = f"cell {marker[2]}/{self.cells}" + (" done" if marker[1] == "Ending" else "")
        return f"[{self.arch}] {message}"


def executed_cells(source: Path, parameters: dict) -> int:
    """How many cells papermill runs from `source`: all of them, plus the parameters cell it injects (it replaces
    one an executed notebook already holds)."""
    cells = json.loads(Path(source).read_text())["cells"]
    injected = any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in cells)
    return len(cells) + (1 if parameters and not injected else 0)


def run_notebook(arch: str, out_path: Path, parameters: dict, timeout: int | None = None) -> Path:
    """Execute `notebooks/<arch>.ipynb` with papermill into `out_path`, streaming each cell's output."""
    import papermill as pm

    out_path.parent.mkdir(parents=True, exist_ok=True)
    source = NOTEBOOKS / f"{arch}.ipynb"
    tmp = out_path.with_name(f".{out_path.stem}.running.ipynb")  # the committed notebook is replaced only on success
    logger = logging.getLogger("papermill")
    handler = logging.StreamHandler(sys.stdout)  # this notebook's, removed after it: the next one has its own label
    handler.setFormatter(NotebookProgress(arch, executed_cells(source, parameters)))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        pm.execute_notebook(str(source), str(tmp), parameters=parameters, cwd=str(NOTEBOOKS), kernel_name="python3",
                            progress_bar=False, log_output=True, execution_timeout=timeout)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    os.replace(tmp, out_path)
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
    # code cells only, counted from 1; an executed notebook's papermill cell is skipped: our parameters are
    # injected after the `parameters` cell instead
    code = [c for c in nb["cells"] if c["cell_type"] == "code"
            and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    for i, cell in enumerate(code, 1):
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        t0 = time.perf_counter()
        print(f"[{arch} cell {i}/{len(code)}] {source.splitlines()[0][:70] if source else ''}", flush=True)
        exec(compile(source, f"{arch}.ipynb[{i}]", "exec"), ns)  # our own committed notebook
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            ns.update(parameters)
        plt.close("all")
        print(f"[{arch} cell {i}/{len(code)}] done in {time.perf_counter() - t0:.1f} s", flush=True)
    return ns


def reproduce(profile: str, archs=None, data: str | None = None, seed: int = 0, *, publish: bool = False,
              engine: str = "papermill", allow_long: bool = False, max_hours: float = 6.0,
              plan_only: bool = False, results: Path | None = None, assets: Path | None = None,
              recompute: tuple = ()) -> dict:
    """Plan, then run the notebooks (papermill, or `inprocess` where Jupyter is absent), then the figures.
    `archs` None: every architecture, those over `max_hours` left out and listed (not an error: on a fresh
    clone of a partly published study the main job reproduces what is published); named `archs` over it are
    refused unless `allow_long`. `results` / `assets` override the folders `output_dirs` picks. Published steps
    are read, not computed, except those of the stages (or step names) in `recompute`. Returns the seconds
    each notebook ran (the estimates with `plan_only`)."""
    from .data import load_for_profile, resolve_source
    from .report.figures import make_figures
    from .report.summary import headline
    from .steps.session import parse_device

    if engine not in ("papermill", "inprocess"):
        raise ValueError(f"engine must be 'papermill' or 'inprocess', got {engine!r}")
    every = archs is None
    archs = list(ARCHS if every else archs)
    keep_freed_memory()  # the in-process engine's cells and the plan's speed test run here (allocator.py)
    prof = get_profile(profile)
    os.environ[RECOMPUTE_ENV] = ",".join(recompute_names(recompute))  # the notebooks' kernels inherit it
    # the notebooks run in notebooks/: hand them an absolute data path, whichever way it was given
    source = resolve_source(data)
    if source not in ("torchvision", "official", "synthetic"):
        source = str(Path(source).expanduser().resolve())
        os.environ["COMPRESS_DATA"] = source
    device = parse_device(None)
    default_results, default_assets, executed = output_dirs(profile, publish)
    results, assets = Path(results or default_results).resolve(), Path(assets or default_assets).resolve()
    if not plan_only:  # every folder it will write, before the data, the plan or any notebook
        from .steps.session import step_cache

        for folder, what in ((results, "results folder"), (assets, "assets folder"), (executed, "notebook folder"),
                             (step_cache().root, "step cache ($COMPRESS_CACHE)")):
            check_output_folder(folder, what)
    loaded = load_for_profile(prof, source, seed=seed)  # bad data fails here, in one line, before any notebook
    totals = print_plan(prof, archs, loaded, seed, device)
    too_long = {a: s for a, s in totals.items() if s > max_hours * 3600} if not allow_long else {}
    if plan_only:
        return totals
    if too_long and not every:
        raise ValueError(f"profile {profile!r} would take about {span(too_long)} on {device} (limit {max_hours:g} h "
                         f"per notebook): choose a smaller profile, or pass --allow-long to run it anyway")
    if too_long:
        print(left_out(profile, too_long, max_hours, data, seed), flush=True)
        archs = [a for a in archs if a not in too_long]
        if not archs:
            print("nothing else to reproduce here: no notebook ran", flush=True)
            return {}
    timings = {}
    for arch in archs:
        t0 = time.perf_counter()
        params = {"ARCH": arch, "PROFILE": profile, "DATA": source, "SEED": seed, "RESULTS_DIR": str(results)}
        print(f"{arch}: running the notebook ({engine}); estimate {_hours(totals[arch])}", flush=True)
        if engine == "papermill":
            run_notebook(arch, executed / f"{arch}.ipynb", params)
        else:
            run_inprocess(arch, params)
        timings[arch] = time.perf_counter() - t0
        print(f"{arch}: notebook ran in {_hours(timings[arch])} ({engine})", flush=True)
    make_figures(results, assets, archs, readme=REPO_ROOT / "README.md" if publish else None)
    for arch in archs:
        h = headline(results, arch)
        if len(h):
            print(f"\n{arch} ({profile} profile):")
            print(h[["model", "kind", "top1", "top1_delta", "params_x", "macs_x", "size_x", "latency_x"]].round(2).to_string(index=False))
    return timings
