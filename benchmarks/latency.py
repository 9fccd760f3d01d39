"""CPU size and batch-1 latency of a full-width model: FP32, INT8, pruned, pruned + INT8, in PyTorch and
onnxruntime, at 1 thread and at all threads, all measured in one run; the torch models in alternating blocks
(`metrics.interleaved_latency`: a change in the machine's speed cannot pose as a speedup), each onnxruntime
session on its own; `others_cpu` is the share of the CPU other processes took meanwhile (keep it near 0).

    python benchmarks/latency.py --arch resnet18 --config aggressive

Latency and file size do not depend on the weights' values, so this runs on an untrained model (BN
statistics randomised so INT8 calibration sees realistic ranges); accuracy needs a trained model and is
the notebooks' job. Prints a table; nothing is asserted.
"""
from __future__ import annotations

import argparse
import copy
import tempfile

import pandas as pd
import torch

from compress import metrics
from compress.models import ARCHS, build_model
from compress.pruning import prune
from compress.ratios import DEFAULT_CONFIGS
from compress.quant import Int8Config, export_fp32_int8, onnx_runner, onnx_session, quantize_int8
from compress.quant.deploy import file_sizes_mb
from compress.provenance import device_name
from compress.allocator import keep_freed_memory


def randomise_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = 0.5 + torch.rand(m.num_features, generator=g)
            m.running_var.data = 0.5 + torch.rand(m.num_features, generator=g)
            m.running_mean.data = 0.1 * torch.randn(m.num_features, generator=g)
    return model.eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=ARCHS, default="resnet18")
    p.add_argument("--config", default="aggressive", help="a pruning.DEFAULT_CONFIGS name")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=30)
    args = p.parse_args()
    torch.manual_seed(0)
    fp32 = randomise_bn(build_model(args.arch))
    pruned = randomise_bn(prune(copy.deepcopy(fp32), DEFAULT_CONFIGS[args.arch][args.config]))
    calib = [torch.randn(32, 3, 32, 32) for _ in range(4)]
    folder = tempfile.mkdtemp(prefix="compress-latency-")
    all_threads = torch.get_num_threads()
    print(f"{device_name('cpu')}; torch {torch.__version__}; {args.arch}, pruned config {args.config!r}; "
          f"batch 1, median of {args.runs} runs after {args.warmup} warm-up")
    rows = []
    for label, model in (("fp32", fp32), (f"pruned:{args.config}", pruned)):
        int8 = quantize_int8(model, Int8Config("optimal"), calib).model
        onnx = export_fp32_int8(model, folder, calib, name=label.replace(":", "_"))
        x = torch.randn(1, 3, 32, 32)
        names = {key: (label + ("+int8" if "int8" in key else ""), "onnxruntime") for key in onnx}
        sizes = {(label, "torch"): metrics.size_mb(model), (f"{label}+int8", "torch"): metrics.size_mb(int8),
                 **{names[key]: file_sizes_mb(path)[0] for key, path in onnx.items()}}
        for threads in sorted({1, all_threads}):
            timing = dict(threads=threads, warmup=args.warmup, runs=args.runs)
            fns = {(label, "torch"): lambda: model(x), (f"{label}+int8", "torch"): lambda: int8(x)}
            lats = metrics.interleaved_latency(fns, **timing)
            for key, path in onnx.items():  # each session alone: its thread pool would slow its neighbours
                lats |= metrics.interleaved_latency({names[key]: onnx_runner(onnx_session(path, threads))}, **timing)
            for (name, runtime), lat in lats.items():
                rows.append({"model": name, "runtime": runtime, "threads": threads, "size_mb": sizes[name, runtime],
                             "params": metrics.count_params(model), "macs": metrics.count_macs(model),
                             "latency_ms": lat["median_ms"], "p90_ms": lat["p90_ms"], "others_cpu": lat["others_cpu"]})
    df = pd.DataFrame(rows)
    ref = df[(df.model == "fp32") & (df.runtime == "torch")].set_index("threads")
    df["size_x"] = ref.size_mb.iloc[0] / df.size_mb
    df["speedup_vs_torch_fp32"] = [ref.latency_ms[t] / lat for t, lat in zip(df.threads, df.latency_ms)]
    df["params"] = df.params / 1e6
    df["macs"] = df.macs / 1e6
    print(df.round(2).to_string(index=False))


if __name__ == "__main__":
    keep_freed_memory()  # what the CLI does, so the figures match its runs (compress/allocator.py)
    main()
