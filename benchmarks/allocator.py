"""Does keeping freed memory (compress/allocator.py) pay? Evaluation and training throughput with glibc's malloc
as it is (`COMPRESS_MALLOC=system`) and with freed blocks kept (`keep`, the default), each in fresh processes,
alternating, with the page faults each image cost.

    python benchmarks/allocator.py                        # full-width ResNet18, eval batch 500 fp32, ~3 min on 2 cores
    python benchmarks/allocator.py --arch vgg16_bn --precision bf16 --rounds 3

Synthetic images (same shapes and cost as CIFAR-10). Prints its figures; nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def child(args) -> dict:
    """One process's figures: images/s of evaluation and of training steps, minor page faults per image."""
    import torch

    from compress.allocator import keep_freed_memory
    from compress.data import synthetic_data
    from compress.models import build_model
    from compress.train import evaluate
    from compress.device import autocast

    kept = keep_freed_memory()  # as every entry point does; COMPRESS_MALLOC=system (the parent sets it) skips it
    data = synthetic_data(n_train=args.train_batch * (args.train_steps + 2), n_val=args.eval_images, n_test=8)
    model = build_model(args.arch, width=args.width)
    evaluate(model, data.val, args.eval_batch, "cpu", args.precision)  # warm-up pass
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    evaluate(model, data.val, args.eval_batch, "cpu", args.precision)
    eval_s, eval_faults = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults

    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = data.train.images[: args.train_batch].float().div(255)
    y = data.train.labels[: args.train_batch]

    def step():
        with autocast(torch.device("cpu"), args.precision):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    for _ in range(args.train_steps):
        step()
    train_s, train_faults = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    n_train = args.train_batch * args.train_steps
    return {"kept": kept, "eval": args.eval_images / eval_s, "train": n_train / train_s,
            "eval_faults": eval_faults / args.eval_images, "train_faults": train_faults / n_train}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--eval-batch", type=int, default=500)
    p.add_argument("--eval-images", type=int, default=2000)
    p.add_argument("--train-batch", type=int, default=128)
    p.add_argument("--train-steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2, help="processes per setting, alternating")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    import torch

    from compress.provenance import device_name
    print(f"{args.arch} width {args.width}, {args.precision}, eval batch {args.eval_batch} ({args.eval_images} images), "
          f"train batch {args.train_batch} ({args.train_steps} steps); {device_name()}, {torch.get_num_threads()} threads")
    results = {"system": [], "keep": []}
    for _ in range(args.rounds):
        for setting in results:
            out = subprocess.run([sys.executable, __file__, "--child", *sys.argv[1:]], capture_output=True, text=True,
                                 env={**os.environ, "COMPRESS_MALLOC": setting}, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results[setting].append(r)
            print(f"  {setting:6s} (applied: {r['kept']!s:5s})  eval {r['eval']:6.0f} img/s, {r['eval_faults']:6.0f} faults/img"
                  f"   train {r['train']:5.0f} img/s, {r['train_faults']:6.0f} faults/img", flush=True)
    for what in ("eval", "train"):
        base, kept = (statistics.median(r[what] for r in results[s]) for s in ("system", "keep"))
        print(f"{what}: median {base:.0f} -> {kept:.0f} img/s ({kept / base:.2f}x)")


if __name__ == "__main__":
    main()
