"""Where does FX QAT lose accuracy: in the fake-quantized fine-tune, or in the conversion to real INT8?

    python benchmarks/qat_gap.py --arch resnet18 --profile cpu     # ~8 min on 2 cores at full width

Runs the INT8 step's QAT exactly as the step does (the profile's epochs, lr and training subset, the `optimal`
preset, `QATConfig`'s freeze points unless given), then scores three models on the same test images: the FP32
baseline, the fake-quantized model at the end of the fine-tune (fp32 arithmetic, simulated INT8), and the
converted INT8 model (fbgemm kernels). Each difference is paired image by image. Reads the baseline from the
step cache (it never trains one); prints a table and writes nothing. `--control` adds the same fine-tune
without quantization, to tell the cost of fake quantization from the cost of the fine-tune recipe.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import time

import torch

from compress import steps
from compress.models import ARCHS
from compress.paired import format_delta, paired_difference
from compress.quant import Int8Config
from compress.quant.int8 import BACKENDS
from compress.quant.qat import QATConfig, quantize_qat
from compress.steps.cache import MissingStep
from compress.provenance import device_name
from compress.train import evaluate, fit
from compress.allocator import keep_freed_memory


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=ARCHS, default="resnet18")
    p.add_argument("--profile", default="quick")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--freeze-observers-at", type=float, default=QATConfig.freeze_observers_at)
    p.add_argument("--freeze-bn-at", type=float, default=QATConfig.freeze_bn_at)
    p.add_argument("--backend", choices=BACKENDS, default="x86",
                   help="x86 fake-quantizes activations to 7 bits (fbgemm's reduce_range), qnnpack to 8")
    p.add_argument("--control", action="store_true",
                   help="also fine-tune an FP32 copy with the same recipe, no quantization: what the fine-tune alone costs")
    args = p.parse_args()
    try:
        config = QATConfig(Int8Config("optimal", args.backend), args.freeze_observers_at, args.freeze_bn_at)
        s = steps.Session.create(args.arch, args.profile, seed=args.seed)
        baseline = steps.train_baseline(s, train=False)
    except (MissingStep, ValueError) as e:
        sys.exit(f"error: {e}")
    train = steps.qat_config(s)
    data = s.data.with_train_subset(s.profile.qat_train_size, s.seed)
    print(f"{args.arch}, profile {args.profile}, seed {args.seed}, {s.data.summary()}; {device_name()}, "
          f"{torch.get_num_threads()} threads; QAT {train.epochs} epoch(s) at lr {train.lr} on "
          f"{len(data.train)} images, freeze observers at {config.freeze_observers_at:.0%} and BN at "
          f"{config.freeze_bn_at:.0%} of the steps, {args.backend} backend", flush=True)
    fp32 = evaluate(baseline, s.data.test, s.profile.eval_batch_size, device="cpu", predictions=True)
    t0 = time.perf_counter()
    result = quantize_qat(baseline, data, train, config, device="cpu")
    print(f"QAT fine-tune and conversion: {time.perf_counter() - t0:.0f} s")
    labels = s.data.test.labels
    rows = {"FP32 baseline": fp32, "fake-quantized (end of QAT)": result.fit.test, "converted INT8": result.test}
    if args.control:
        rows["FP32 fine-tuned (control)"] = fit(copy.deepcopy(baseline), data, dataclasses.replace(
            train, precision="fp32", compile=False, desc="FP32 control"), device="cpu").test
    for name, scores in rows.items():
        d = paired_difference(scores["pred"], fp32["pred"], labels)
        print(f"  {name:28s} top-1 {scores['top1']:.2f}%  vs FP32 {format_delta(d['paired_delta'], d['paired_ci95'])}"
              f" (McNemar p {d['mcnemar_p']:.3f})")
    d = paired_difference(result.test["pred"], result.fit.test["pred"], labels)
    print(f"  converted - fake-quantized: {format_delta(d['paired_delta'], d['paired_ci95'])} points "
          f"(gained {d['gained']}, lost {d['lost']}) on {len(labels)} images")


if __name__ == "__main__":
    keep_freed_memory()  # what the CLI does, so the figures match its runs (compress/allocator.py)
    main()
