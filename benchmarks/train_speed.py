"""Training and evaluation throughput per architecture; with --full, the whole recipe end to end.

    python benchmarks/train_speed.py                      # images/s for each architecture (timed steps)
    python benchmarks/train_speed.py --full --arch resnet18 --profile full   # wall time + final test accuracy

Prints its figures; nothing is asserted. `--precision auto` trains as `fit` does: bf16 autocast + channels_last
where bf16 is native and faster (CUDA; CPUs with AMX, or AMD with AVX512-BF16), fp32 elsewhere (channels_last on
CPUs); `--precision fp32 bf16` compares both on this machine.
"""
from __future__ import annotations

import argparse
import time

import torch

from compress.data import Batches, load_for_profile, synthetic_data
from compress.models import ARCHS, build_model
from compress.profiles import get_profile
from compress.provenance import device_name
from compress.train import evaluate, fit
from compress.device import autocast, channels_last_pays, default_device, resolve_precision
from compress.allocator import keep_freed_memory


def throughput(arch: str, data, device, batch_size: int, steps: int, width: float, compile: bool, precision: str) -> dict:
    """Images/s of optimiser steps (after warm-up) and of evaluation passes, on data already on the device."""
    model = build_model(arch, width=width).to(device)
    precision = resolve_precision(precision, device)
    cl = channels_last_pays(precision, device)  # the trainer's memory layout for this precision and device
    if cl:
        model.to(memory_format=torch.channels_last)
    fwd = torch.compile(model) if compile else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    batches = Batches(data.train, batch_size, train=True, generator=torch.Generator(device=device).manual_seed(0), channels_last=cl)

    def run(n):
        done = 0
        while done < n:
            for x, y in batches:
                with autocast(device, precision):
                    loss = torch.nn.functional.cross_entropy(fwd(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                done += 1
                if done == n:
                    break
        if device.type == "cuda":
            torch.cuda.synchronize()

    run(max(2, steps // 5))  # warm-up (and compilation)
    t0 = time.perf_counter()
    run(steps)
    train_ips = steps * batch_size / (time.perf_counter() - t0)
    evaluate(model, data.test, 1024, device, precision)
    t0 = time.perf_counter()
    evaluate(model, data.test, 1024, device, precision)
    eval_ips = len(data.test) / (time.perf_counter() - t0)
    return {"arch": arch, "precision": precision, "train_img_s": train_ips, "eval_img_s": eval_ips}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=ARCHS, nargs="*", default=list(ARCHS))
    p.add_argument("--profile", default=None, help="profile for --full (default: full on CUDA, quick on CPU)")
    p.add_argument("--data", default=None, help="data source (default: $COMPRESS_DATA); synthetic if omitted for throughput")
    p.add_argument("--width", type=float, default=None, help="width multiplier (default: 1 on CUDA, 0.25 on CPU)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--precision", nargs="*", default=["auto"], choices=["auto", "bf16", "fp32"])
    p.add_argument("--full", action="store_true", help="run the profile's whole recipe and print wall time + accuracy")
    args = p.parse_args()
    device = default_device()
    cuda = device.type == "cuda"
    width = args.width or (1.0 if cuda else 0.25)
    print(f"device: {device_name(str(device))}; torch {torch.__version__}; threads {torch.get_num_threads()}")
    if args.full:
        prof = get_profile(args.profile or ("full" if cuda else "quick"))
        data = load_for_profile(prof, args.data).to(device)
        print(f"data: {data.summary()}")
        for arch in args.arch:
            cfg = prof.train_config(arch, compile=args.compile, progress=False, precision=args.precision[0])
            model = build_model(arch, width=prof.width if args.width is None else width)
            t0 = time.perf_counter()
            r = fit(model, data, cfg, device=device)
            wall = time.perf_counter() - t0
            print(f"{arch:9s} epochs {cfg.epochs:3d}  wall {wall:7.1f} s  (train {r.train_seconds:7.1f} s, "
                  f"{r.images_per_second:8.0f} img/s)  final test top1 {r.test['top1']:.2f}%  final val top1 {r.final_val_top1:.2f}%")
        return
    data = (load_for_profile(get_profile("quick"), args.data) if args.data else synthetic_data(4096, 128, 2048)).to(device)
    steps = args.steps or (100 if cuda else 10)
    print(f"width {width}, batch {args.batch_size}, {steps} timed steps, data: {data.source}")
    for arch in args.arch:
        for precision in args.precision:
            r = throughput(arch, data, device, args.batch_size, steps, width, args.compile, precision)
            print(f"{arch:9s} {r['precision']:5s} train {r['train_img_s']:9.0f} img/s   eval {r['eval_img_s']:9.0f} img/s")


if __name__ == "__main__":
    keep_freed_memory()  # what the CLI does, so the figures match its runs (compress/allocator.py)
    main()
