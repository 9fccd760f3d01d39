"""Is test-time flip worth its cost? A trained baseline scored on the test set as it is and with each image's
logits averaged with its mirror image's, compared image by image, with the time of each pass.

    python benchmarks/flip_eval.py --arch resnet18 --profile cpu      # ~1-2 min on 2 cores at full width

Reads the baseline from the step cache (it never trains; it says how when none is there). Prints a table;
the project's reported numbers never use the flip.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from compress import steps
from compress.models import ARCHS
from compress.paired import format_delta, paired_difference
from compress.steps.cache import MissingStep
from compress.provenance import device_name
from compress.train import evaluate
from compress.allocator import keep_freed_memory


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=ARCHS, default="resnet18")
    p.add_argument("--profile", default="quick")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    s = steps.Session.create(args.arch, args.profile, seed=args.seed)
    try:
        model = steps.train_baseline(s, train=False)
    except MissingStep as e:
        sys.exit(f"error: {e}")
    batch = s.profile.eval_batch_size
    print(f"{args.arch}, profile {args.profile}, seed {args.seed}, {s.data.summary()}; {device_name()}, "
          f"{torch.get_num_threads()} threads, fp32 evaluation, batch {batch}")
    scores = {}
    for split_name in ("val", "test"):
        split = getattr(s.data, split_name)
        for flip in (False, True):
            t0 = time.perf_counter()
            scores[split_name, flip] = evaluate(model, split, batch_size=batch, predictions=True, flip=flip)
            seconds = time.perf_counter() - t0
            print(f"  {split_name:4s} {'flip' if flip else 'plain':5s} top-1 {scores[split_name, flip]['top1']:.2f}%  "
                  f"{seconds:.1f} s ({len(split) / seconds:.0f} img/s)")
        d = paired_difference(scores[split_name, True]["pred"], scores[split_name, False]["pred"], split.labels)
        print(f"  {split_name:4s} flip - plain: {format_delta(d['paired_delta'], d['paired_ci95'])} points "
              f"(gained {d['gained']}, lost {d['lost']}, McNemar p {d['mcnemar_p']:.3f}) on {len(split)} images")


if __name__ == "__main__":
    keep_freed_memory()  # what the CLI does, so the figures match its runs (compress/allocator.py)
    main()
