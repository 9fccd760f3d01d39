"""Which torchvision classification CNNs `budget.prune_to_budget` handles: each model (10 classes, 32x32 inputs,
random weights) pruned to a MAC budget with one method, in its own process with a time limit, so one slow or
broken model cannot stall the rest. Prints one line per model: the MAC reduction reached and the pruned model's
forward pass, or the one-line reason it was refused.

    python benchmarks/torchvision_budget.py [--target 4x] [--method global] [--timeout 240] [models ...]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

MODELS = ("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
          "regnet_x_400mf", "regnet_y_400mf", "resnext50_32x4d", "shufflenet_v2_x1_0", "densenet121", "squeezenet1_1",
          "mnasnet0_5", "convnext_tiny")

ONE = """
import sys, time, torch, torchvision
from compress.budget import prune_to_budget
name, target, method = sys.argv[1:4]
torch.manual_seed(0)
model = torchvision.models.get_model(name, weights=None, num_classes=10).eval()
start = time.perf_counter()
try:
    model, a = prune_to_budget(model, target, method)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10), out.shape
    print(f"ok {a.mac_reduction:.3f}x fewer MACs ({a.base_macs / 1e6:.1f}M -> {a.macs / 1e6:.1f}M), "
          f"{time.perf_counter() - start:.0f} s")
except ValueError as e:
    print(f"refused: {e}")
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(MODELS))
    parser.add_argument("--target", default="4x")
    parser.add_argument("--method", default="global")
    parser.add_argument("--timeout", type=float, default=240, help="seconds per model")
    args = parser.parse_args(argv)
    for name in args.models:
        start = time.perf_counter()
        try:
            run = subprocess.run([sys.executable, "-c", ONE, name, args.target, args.method], capture_output=True,
                                 text=True, timeout=args.timeout)
            lines = run.stdout.strip().splitlines()
            line = lines[-1] if lines and run.returncode == 0 else \
                f"crashed (exit {run.returncode}): {(run.stderr.strip().splitlines() or ['?'])[-1]}"
        except subprocess.TimeoutExpired:
            line = f"skipped: over {args.timeout:.0f} s"
        print(f"{name:20s} {args.method} {args.target}: {line}  [{time.perf_counter() - start:.0f} s wall]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
