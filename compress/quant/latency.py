"""Latency a reviewer can rerun: every saved model timed in fresh processes, alternating, with its spread.

Timing inside a long pipeline measured the same model up to 3x apart (allocator state, thread pools warmed
by other work, a neighbour's load), so each number here comes from `processes` fresh Python processes per
(model, runtime, threads), started in rotation so that a drift of the machine's speed spreads over every
variant alike. Each process loads the saved artifact (`torch`: a compress checkpoint, run eagerly, or a
TorchScript `.ts` file, how torch.ao's INT8 models ship; `onnxruntime`: an .onnx file; `inductor`: a
`torch.export` .pt2 file compiled with Inductor + freezing during the warm-up; `openvino`: an IR .xml), warms
up, times `runs` batch-1 calls and reports their median and p90; the table keeps the median of those medians
and their min-max spread, and flags a row whose spread exceeds `SPREAD_LIMIT`.

    rows = measure([Variant("pruned 8x", "torch", ckpt), Variant("pruned 8x", "onnxruntime", onnx)])
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

RUNTIMES = ("torch", "onnxruntime", "inductor", "openvino")
SPREAD_LIMIT = 0.15  # (max - min) / min of the per-process medians above this is flagged, not hidden
COLUMNS = ["variant", "runtime", "threads", "latency_ms", "latency_p90_ms", "min_ms", "max_ms", "spread",
           "processes", "runs", "flagged"]


@dataclass(frozen=True)
class Variant:
    name: str
    runtime: str  # torch (.pt compress checkpoint, eager; .ts TorchScript) | onnxruntime | inductor | openvino
    path: Path

    def __post_init__(self):
        if self.runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {self.runtime!r}; choose one of {list(RUNTIMES)}")
        if not Path(self.path).is_file():
            raise FileNotFoundError(f"no saved model at {self.path} for {self.name!r}")


def measure(variants: list[Variant], *, threads=(1, 2), processes: int = 3, warmup: int = 20, runs: int = 200,
            timeout: float = 600) -> pd.DataFrame:
    """One row per (variant, threads): the median of `processes` fresh processes' median latencies (ms)."""
    if processes < 1 or runs < 1 or warmup < 0:
        raise ValueError(f"need processes >= 1, runs >= 1 and warmup >= 0; got {processes}, {runs}, {warmup}")
    jobs = [(v, t) for v in variants for t in threads]
    medians: dict[tuple, list[dict]] = {(v, t): [] for v, t in jobs}
    for round_ in range(processes):
        order = jobs[round_ % len(jobs):] + jobs[: round_ % len(jobs)] if jobs else []  # rotate the start
        for v, t in order:
            medians[(v, t)].append(_one_process(v, t, warmup, runs, timeout))
    rows = []
    for (v, t), timed in medians.items():
        ms = [r["median_ms"] for r in timed]
        lo, hi = min(ms), max(ms)
        spread = (hi - lo) / lo if lo > 0 else float("inf")
        rows.append({"variant": v.name, "runtime": v.runtime, "threads": t, "latency_ms": statistics.median(ms),
                     "latency_p90_ms": statistics.median(r["p90_ms"] for r in timed), "min_ms": lo, "max_ms": hi, "spread": spread, "processes": len(ms), "runs": runs,
                     "flagged": spread > SPREAD_LIMIT})
    return pd.DataFrame(rows, columns=COLUMNS)


def _one_process(v: Variant, threads: int, warmup: int, runs: int, timeout: float) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "compress.quant.latency", v.runtime, str(v.path), str(threads), str(warmup), str(runs)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"timing {v.name!r} ({v.runtime}, {threads} threads) failed: {last}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _time_here(runtime: str, path: str, threads: int, warmup: int, runs: int) -> dict:
    """In the fresh process: load the artifact, warm up (Inductor compiles here), time `runs` batch-1 calls."""
    import torch

    from ..metrics import latency_stats, time_callable

    torch.set_num_threads(threads)
    x = torch.randn(1, 3, 32, 32)
    if runtime in ("torch", "inductor"):
        model = _load_torch(runtime, path)
        with torch.inference_mode():
            times = time_callable(lambda: model(x), warmup=max(warmup, 2 if runtime == "inductor" else 0), runs=runs)
    elif runtime == "openvino":
        from . import openvino

        times = time_callable(openvino.runner(openvino.compiled(path, threads)), warmup=warmup, runs=runs)
    else:
        from .deploy import onnx_runner, onnx_session

        times = time_callable(onnx_runner(onnx_session(path, threads)), warmup=warmup, runs=runs)
    stats = latency_stats(times)
    return {"median_ms": stats["median_ms"], "p90_ms": stats["p90_ms"], "threads": torch.get_num_threads()}


def _load_torch(runtime: str, path: str):
    import torch

    if runtime == "inductor":
        from .pt2e import load_pt2e

        return load_pt2e(path)
    if path.endswith(".ts"):  # TorchScript: code and weights, no pickle (torch.ao INT8 models ship so)
        return torch.jit.load(path, map_location="cpu").eval()
    from ..checkpoint import load_checkpoint

    return load_checkpoint(path)[0].eval()


if __name__ == "__main__":
    from ..allocator import keep_freed_memory

    keep_freed_memory()  # every timing process runs as the CLI does (COMPRESS_MALLOC=system opts out)
    runtime, path, threads, warmup, runs = sys.argv[1:6]
    print(json.dumps(_time_here(runtime, path, int(threads), int(warmup), int(runs))))
