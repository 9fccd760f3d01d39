"""Why in-pipeline latency was up to 3x slow: the same saved models timed in fresh processes and inside one
long-lived process, before and after the work a pipeline does first (training, onnxruntime sessions).

    python benchmarks/latency_inprocess.py --arch resnet18 --threads 1 2 --out results/benchmarks

Prints one line per (model, condition, threads) and writes `latency_inprocess.csv` (with provenance) to --out.
Conditions, in this order, all in this process but `fresh`:
  fresh        `latency.measure`: 3 new processes per row, each loading the saved file (what the tables use)
  loaded       this process, right after loading the file, nothing else done yet
  after_train  after a few full-width SGD steps at batch 128 (the QAT fine-tune before the timing)
  after_ort    after an onnxruntime session with its own thread pool ran next to it (the ONNX rows)
  ort_alive    the same, while that session (and its spinning threads) is still alive
Nothing is asserted: read the ratios.
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import torch

from compress.quant import latency
from compress.data import synthetic_data
from compress.files import write_table
from compress.metrics import latency_stats, num_threads, time_callable
from compress.models import build_model
from compress.provenance import provenance
from compress.quant.deploy import export_onnx, onnx_runner, onnx_session
from compress.quant.int8 import Int8Config, quantize_int8
from compress.train import TrainConfig, fit
from compress.allocator import keep_freed_memory


def _timed(model, threads: int, warmup: int, runs: int) -> float:
    x = torch.randn(1, 3, 32, 32)
    with num_threads(threads), torch.inference_mode():
        return latency_stats(time_callable(lambda: model(x), warmup=warmup, runs=runs))["median_ms"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--out", default=None, help="folder for latency_inprocess.csv (default: print only)")
    args = ap.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="latency-inprocess-"))
    torch.manual_seed(0)
    fp32 = build_model(args.arch, width=args.width).eval()
    calib = [torch.randn(128, 3, 32, 32) for _ in range(2)]
    models = {"fp32": fp32, "int8-optimal": quantize_int8(fp32, Int8Config("optimal"), calib).model}
    paths = {}
    for name, m in models.items():
        paths[name] = folder / f"{name}.ts"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.jit.save(torch.jit.trace(m, calib[0][:1]), str(paths[name]))
    loaded = {name: torch.jit.load(str(p)) for name, p in paths.items()}

    rows = []

    def record(condition: str) -> None:
        for name, m in loaded.items():
            for t in args.threads:
                ms = _timed(m, t, args.warmup, args.runs)
                rows.append({"model": name, "condition": condition, "threads": t, "latency_ms": ms})
                print(f"{name:13s} {condition:12s} {t} threads  {ms:7.3f} ms", flush=True)

    fresh = latency.measure([latency.Variant(n, "torch", p) for n, p in paths.items()], threads=args.threads,
                            processes=3, warmup=args.warmup, runs=args.runs)
    for r in fresh.itertuples():
        rows.append({"model": r.variant, "condition": "fresh", "threads": r.threads, "latency_ms": r.latency_ms})
        print(f"{r.variant:13s} {'fresh':12s} {r.threads} threads  {r.latency_ms:7.3f} ms (spread {r.spread:.1%})")
    record("loaded")
    data = synthetic_data(n_train=128 * args.train_steps, n_val=0, n_test=0)
    fit(copy.deepcopy(fp32).train(), data, TrainConfig(epochs=1, batch_size=128, lr=0.01, progress=False,
                                                         warmup_epochs=0.1))
    record("after_train")
    onnx = export_onnx(fp32, folder / "fp32.onnx")
    session = onnx_session(onnx, max(args.threads))
    time_callable(onnx_runner(session), warmup=5, runs=50)
    record("ort_alive")
    del session
    record("after_ort")

    table = pd.DataFrame(rows)
    base = table[table.condition == "fresh"].set_index(["model", "threads"]).latency_ms
    table["vs_fresh"] = [ms / base[(m, t)] for m, t, ms in zip(table.model, table.threads, table.latency_ms)]
    print(table.pivot_table(index=["model", "threads"], columns="condition", values="vs_fresh",
                            sort=False).round(2).to_string())
    if args.out:
        path = Path(args.out) / f"latency_inprocess_{args.arch}.csv"
        write_table(path, table, provenance(vars(args), device="cpu"))
        print(f"wrote {path}")


if __name__ == "__main__":
    keep_freed_memory()  # what the CLI does, so the figures match its runs (compress/allocator.py)
    main()
