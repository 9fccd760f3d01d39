"""Batch-1 CPU latency of FP32 eager, FP32 Inductor, PT2E INT8 Inductor (freezing on) and torch.ao FX INT8,
at 1 thread and at all threads, in one run.

    python benchmarks/pt2e_latency.py --arch resnet18            # full width: minutes of compiling
    python benchmarks/pt2e_latency.py --width 0.25 --runs 20     # a smoke run

By default an untrained model (BN statistics randomised so calibration sees realistic ranges);
`--checkpoint` measures a trained one (e.g. a baseline from the step cache), calibrated on random images.
Inductor compiles once per thread count (it bakes the thread count into its kernels) in the untimed warm-up;
`compile_s` is the first compile, at all threads. The variants are timed in alternating blocks
(`metrics.interleaved_latency`); `others_cpu` is the share of the CPU other processes took meanwhile.
Prints a table; nothing is asserted.
"""
from __future__ import annotations

import argparse
import math

import pandas as pd
import torch

from compress import metrics
from compress.checkpoint import load_checkpoint
from compress.pruning import arch_of
from compress.models import ARCHS, build_model
from compress.quant import Int8Config, quantize_int8
from compress.quant.pt2e import PT2E_PRESETS, Pt2eConfig, export_fp32, pt2e_available, quantize_pt2e
from compress.provenance import device_name
from compress.allocator import keep_freed_memory
from latency import randomise_bn  # the sibling script (a script's folder is first on sys.path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=ARCHS, default="resnet18")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--preset", choices=PT2E_PRESETS, default="default")
    p.add_argument("--checkpoint", default=None, help="a trained model's checkpoint (its architecture and width)")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=20)
    args = p.parse_args()
    ok, why = pt2e_available()
    if not ok:
        raise SystemExit(f"PT2E INT8 is unavailable: {why}")
    torch.manual_seed(0)
    if args.checkpoint:
        model = load_checkpoint(args.checkpoint)[0].eval()
        args.arch = arch_of(model)
    else:
        model = randomise_bn(build_model(args.arch, width=args.width))
    calib = [torch.randn(32, 3, 32, 32) for _ in range(4)]
    all_threads = torch.get_num_threads()
    print(f"{device_name()}; torch {torch.__version__}; {why}")
    print(f"{args.arch}, {args.checkpoint or f'width {args.width}, untrained'}; batch 1, median of {args.runs} runs after {args.warmup} warm-up")

    fp32_inductor = export_fp32(model, example=calib[0])
    pt2e = quantize_pt2e(model, Pt2eConfig(args.preset), calib)
    variants = {"fp32 eager": (model, math.nan),
                "fp32 inductor": (fp32_inductor.model, fp32_inductor.compile_s),
                f"pt2e int8 inductor ({args.preset})": (pt2e.model, pt2e.compile_s),
                "fx int8 (torch.ao, x86)": (quantize_int8(model, Int8Config("optimal"), calib).model, math.nan)}
    rows = []
    x = torch.randn(1, 3, 32, 32)
    for threads in sorted({1, all_threads}):
        fns = {name: (lambda m=m: m(x)) for name, (m, _) in variants.items()}
        lats = metrics.interleaved_latency(fns, threads=threads, warmup=args.warmup, runs=args.runs)
        for name, lat in lats.items():
            rows.append({"variant": name, "threads": lat["threads"], "latency_ms": lat["median_ms"],
                         "p90_ms": lat["p90_ms"], "others_cpu": lat["others_cpu"], "compile_s": variants[name][1]})
    df = pd.DataFrame(rows)
    base = df[df.variant == "fp32 eager"].set_index("threads").latency_ms
    df["speedup_vs_eager"] = [base[t] / lat for t, lat in zip(df.threads, df.latency_ms)]
    print(df.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    keep_freed_memory()  # what the CLI does, so the figures match its runs (compress/allocator.py)
    main()
