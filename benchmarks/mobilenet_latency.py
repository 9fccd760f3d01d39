"""Does pruning MobileNetV2 make it faster? Batch-1 CPU latency at 1x, 2x and 4x fewer MACs, in torch and in
onnxruntime FP32 and INT8, each timed in fresh processes by `compress.quant.latency.measure`.

    python benchmarks/mobilenet_latency.py [--threads 1] [--processes 3] [--runs 200] [--out results/benchmarks]

The model: torchvision's `mobilenet_v2` (10 classes, width 1.0) with its stem at stride 1 for 32x32 inputs (as in
tests/test_budget_grouped.py), random weights (latency does not depend on their values), pruned by
`budget.prune_to_budget(..., method="global")`. Runtimes: `torch` is the model traced to TorchScript (`.ts`, the
torch format the fresh-process harness loads: the same ATen kernels as eager, without Python's per-module
overhead); `onnxruntime` FP32 is `deploy.export_onnx`, INT8 is `deploy.quantize_onnx` (static QDQ, per-channel,
calibrated on random batches: fine for timing, not for accuracy). Each row: the median over `processes` fresh
processes of each one's median over `runs` calls after `warmup`. Depthwise convs are memory-bound on CPUs, so
fewer MACs need not mean less time: the table says what was measured, nothing is asserted.
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import torch
import torchvision

from compress.budget import prune_to_budget
from compress.files import write_table
from compress.metrics import count_macs, count_params
from compress.provenance import provenance
from compress.quant import latency
from compress.quant.deploy import export_onnx, quantize_onnx


def mobilenet_v2_cifar() -> torch.nn.Module:
    model = torchvision.models.mobilenet_v2(num_classes=10)
    model.features[0][0].stride = (1, 1)
    return model.eval()


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--factors", type=float, nargs="+", default=[1.0, 2.0, 4.0], help="MAC reductions (1 = unpruned)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--out", default=None, help="folder for mobilenet_latency.csv (default: print only)")
    args = ap.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="mobilenet-latency-"))
    torch.manual_seed(0)
    base = mobilenet_v2_cifar()
    calib = [torch.randn(32, 3, 32, 32) for _ in range(4)]
    variants, costs = [], {}
    for factor in args.factors:
        name = f"{factor:g}x"
        model = copy.deepcopy(base)
        if factor > 1:
            model, _ = prune_to_budget(model, factor, "global")
        model.eval()
        costs[name] = {"macs": count_macs(model), "params": count_params(model)}
        ts = folder / f"{name}.ts"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.jit.save(torch.jit.trace(model, calib[0][:1]), str(ts))
        fp32 = export_onnx(model, folder / f"{name}-fp32.onnx")
        int8 = quantize_onnx(fp32, folder / f"{name}-int8.onnx", calib)
        variants += [latency.Variant(f"{name} torch fp32", "torch", ts), latency.Variant(f"{name} onnxruntime fp32", "onnxruntime", fp32),
                     latency.Variant(f"{name} onnxruntime int8", "onnxruntime", int8)]
        print(f"{name}: {costs[name]['macs'] / 1e6:.2f}M MACs, {costs[name]['params'] / 1e6:.3f}M parameters", flush=True)

    timed = latency.measure(variants, threads=tuple(args.threads), processes=args.processes, warmup=args.warmup,
                            runs=args.runs)
    parts = timed.variant.str.split(" ", expand=True)
    table = timed.assign(mac_reduction=parts[0], precision=parts[2],
                         macs=[costs[p]["macs"] for p in parts[0]], params=[costs[p]["params"] for p in parts[0]])
    base_ms = {(r.runtime, r.precision, r.threads): r.latency_ms for r in table[table.mac_reduction == f"{args.factors[0]:g}x"].itertuples()}
    table["speedup"] = [base_ms[(r.runtime, r.precision, r.threads)] / r.latency_ms for r in table.itertuples()]
    table = table[["mac_reduction", "runtime", "precision", "threads", "macs", "params", "latency_ms", "latency_p90_ms",
                   "min_ms", "max_ms", "spread", "flagged", "speedup", "processes", "runs"]]
    print(table.round(3).to_string(index=False))
    if args.out:
        path = Path(args.out) / "mobilenet_latency.csv"
        write_table(path, table, provenance({**vars(args), "model": "torchvision mobilenet_v2, stem stride 1, 10 classes",
                                             "input": [1, 3, 32, 32], "method": "global", "warmup_runs": args.warmup},
                                            device="cpu"))
        print(f"wrote {path}")
    return table


if __name__ == "__main__":
    main()
