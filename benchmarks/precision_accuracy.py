"""Does bf16 training cost accuracy? The same baseline (profile, seed, data) trained in fp32 and in bf16
autocast, compared image by image on the test set; and fp32 against bf16 evaluation of the bf16 model.

    python benchmarks/precision_accuracy.py --arch resnet18 --profile quick     # ~5 min on 2 cores

Trainings go through the step cache (`compress.steps`), so a rerun only evaluates. Prints a table.
"""
from __future__ import annotations

import argparse

from compress import steps
from compress.models import ARCHS
from compress.paired import format_delta, paired_difference
from compress.provenance import device_name
from compress.train import evaluate
from compress.allocator import keep_freed_memory


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=ARCHS, default="resnet18")
    p.add_argument("--profile", default="quick")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out = {}
    for precision in ("fp32", "bf16"):
        s = steps.Session.create(args.arch, args.profile, seed=args.seed, precision=precision)
        model = steps.train_baseline(s)
        record = s.tables["baseline"].iloc[0]
        test = evaluate(model, s.data.test, predictions=True)
        out[precision] = (record, test, s)
    s = out["bf16"][2]
    labels = s.data.test.labels
    bf16_eval = evaluate(steps.train_baseline(s), s.data.test, precision="bf16", predictions=True)
    print(f"{args.arch}, profile {args.profile}, seed {args.seed}, {s.data.summary()}; {device_name()}")
    for precision, (record, test, _) in out.items():
        print(f"  trained in {precision}: test top-1 {test['top1']:.2f}% (fp32 evaluation), "
              f"{record.train_images_per_second:.0f} train img/s")
    d = paired_difference(out["bf16"][1]["pred"], out["fp32"][1]["pred"], labels)
    print(f"  bf16 - fp32 training: {format_delta(d['paired_delta'], d['paired_ci95'])} points "
          f"(gained {d['gained']}, lost {d['lost']}, McNemar p {d['mcnemar_p']:.2f})")
    e = paired_difference(bf16_eval["pred"], out["bf16"][1]["pred"], labels)
    print(f"  bf16 - fp32 evaluation of the bf16-trained model: {format_delta(e['paired_delta'], e['paired_ci95'])} "
          f"points ({e['gained'] + e['lost']} of {len(labels)} predictions differ)")


if __name__ == "__main__":
    keep_freed_memory()  # what the CLI does, so the figures match its runs (compress/allocator.py)
    main()
