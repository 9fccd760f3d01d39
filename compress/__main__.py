"""Command line: `python -m compress <command> ...`; `--help` on each command lists its options.

    train        train a baseline and write its checkpoint and results
    sensitivity  per-layer sensitivity scan of a baseline checkpoint
    prune        iterative structured pruning rounds over a baseline checkpoint
    quantize     fixed-point, INT8 PTQ, QAT and pruned + INT8 tables
    figures      regenerate every README figure in assets/ from results/
    reproduce    run the notebooks headless and collect their results
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .models import ARCHS
from .profiles import PROFILES
from .results import REPO_ROOT


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", choices=ARCHS, default="resnet18")
    p.add_argument("--profile", choices=sorted(PROFILES), default="smoke")
    p.add_argument("--data", default=None, help="'torchvision', or an image-folder tree / .tar.gz (default: $COMPRESS_DATA)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: runs/<profile>/<arch>)")


def _out(args) -> Path:
    return args.out or REPO_ROOT / "runs" / args.profile / args.arch


def _session(args, **overrides):
    from .pipeline import Session

    return Session.create(args.arch, args.profile, source=args.data, seed=args.seed, device=args.device, **overrides)


# ----------------------------------------------------------------------------- train
def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a baseline; writes baseline.pt and baseline.json")
    _common(p)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> None:
    import shutil

    from .pipeline import baseline_folder, train_baseline
    from .results import write_json

    s = _session(args, epochs=args.epochs)
    overrides = {"compile": True} if args.compile else {}
    if args.lr is not None:
        overrides["lr"] = args.lr
    print(f"training {args.arch} ({args.profile}) on {s.data.summary()} [{s.device}]")
    model, record = train_baseline(s, **overrides)
    out = _out(args)
    out.mkdir(parents=True, exist_ok=True)
    folder = baseline_folder(s, **overrides)
    shutil.copyfile(folder / "model.pt", out / "baseline.pt")
    write_json(out / "baseline.json", json.loads((folder / "result.json").read_text()))
    print(json.dumps({k: record[k] for k in ("test_top1", "test_top5", "final_val_top1", "params", "macs", "size_mb",
                                              "train_seconds", "train_images_per_second")}, indent=2))
    print(f"wrote {out / 'baseline.pt'} and {out / 'baseline.json'}")


# ----------------------------------------------------------------------------- commands added by other modules
# Each block below registers one command; keep them independent so they can be edited separately.
COMMANDS = [add_train]

# [sensitivity/prune commands]

# [quantize command]

# [figures/reproduce commands]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compress", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
