"""What the oneDNN guard (compress/kernels.py) costs: training steps of a pruned ResNet18 whose downsample convs
fall in the broken family, guarded channels_last against the whole model in NCHW (the other correct choice).

    python benchmarks/kernel_guard.py [--width 1.0] [--stream-ratio 0.9] [--steps 10] [--precision fp32]

Prints images/s of each layout (median of `--repeats` timed runs of `--steps` optimiser steps, after warm-up)
and the guarded convs. Unguarded channels_last is not timed: it computes wrong gradients or hangs."""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from compress.kernels import affected_convs, channels_last_training
from compress.models import build_model
from compress.pruning import prune
from compress.provenance import device_name
from compress.device import PRECISIONS, autocast, resolve_precision
from compress.allocator import keep_freed_memory


def images_per_second(model, precision: str, channels_last: bool, batch: int, steps: int, repeats: int) -> float:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        with autocast(torch.device("cpu"), precision):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps * batch / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--stream-ratio", type=float, default=0.9, help="channel ratio of the residual streams")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--precision", choices=PRECISIONS, default="auto")
    args = p.parse_args()
    precision = resolve_precision(args.precision, "cpu")
    model = build_model("resnet18", width=args.width)
    r = args.stream_ratio
    prune(model, {"conv1": r, "layer2.0.conv2": r, "layer3.0.conv2": r, "layer4.0.conv2": r})
    model.train()
    print(f"{device_name(torch.device('cpu'))}, {torch.get_num_threads()} threads, {precision}, batch {args.batch}")
    with channels_last_training(model, "cpu") as cl:
        guarded = {n: c.in_channels for n, c in affected_convs(model).items()}
        print(f"guarded convs (name: input channels): {guarded}")
        fast = images_per_second(model, precision, cl, args.batch, args.steps, args.repeats)
    nchw = images_per_second(model, precision, False, args.batch, args.steps, args.repeats)
    print(f"guarded channels_last: {fast:.0f} img/s")
    print(f"whole model NCHW:      {nchw:.0f} img/s  (guarded / NCHW = {fast / nchw:.2f}x)")


if __name__ == "__main__":
    keep_freed_memory()  # what the CLI does, so the figures match its runs (compress/allocator.py)
    main()
