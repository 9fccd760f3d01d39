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
    train_baseline(s, **overrides)
    record = s.tables["baseline"].iloc[0].to_dict()
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
def _pruning_options(p: argparse.ArgumentParser) -> None:
    from .pruning import CRITERIA

    p.add_argument("--checkpoint", type=Path, default=None,
                   help="baseline checkpoint (default: <out>/baseline.pt, written by `python -m compress train`)")
    p.add_argument("--criterion", choices=CRITERIA, default="l1", help="channel importance criterion")
    p.add_argument("--taylor-images", type=int, default=512, help="training images for the taylor criterion's gradients")


def _load_baseline(args, s):
    from .checkpoint import load_checkpoint

    path = args.checkpoint or _out(args) / "baseline.pt"
    if not Path(path).is_file():
        raise SystemExit(f"no baseline checkpoint at {path}: run `python -m compress train --arch {args.arch} "
                         f"--profile {args.profile}` first, or pass --checkpoint")
    model, _ = load_checkpoint(path, args.arch)
    return model.to(s.device).eval(), path


def _taylor_data(args, s):
    from .data import stratified_indices

    if args.criterion != "taylor":
        return None
    return s.data.train.subset(stratified_indices(s.data.train.labels.cpu().numpy(), args.taylor_images, args.seed))


def add_sensitivity(sub) -> None:
    p = sub.add_parser("sensitivity", help="prune each conv alone at growing ratios; writes sensitivity.csv and l1_ranking.csv")
    _common(p)
    _pruning_options(p)
    p.add_argument("--ratios", default=None, help="comma-separated channel ratios (default: the profile's)")
    p.add_argument("--layers", default=None, help="comma-separated conv names (default: every conv)")
    p.add_argument("--eval-size", type=int, default=None, help="validation images per point (default: the profile's)")
    p.add_argument("--max-drop", type=float, default=1.0, help="accuracy budget (points) for the suggested ratios")
    p.set_defaults(func=cmd_sensitivity)


def cmd_sensitivity(args) -> None:
    from .data import stratified_indices
    from .importance import l1_ranking, ratios_from_sensitivity, sensitivity_scan
    from .results import write_json, write_table

    s = _session(args)
    model, path = _load_baseline(args, s)
    ratios = [float(r) for r in args.ratios.split(",")] if args.ratios else list(s.profile.sensitivity_ratios)
    layers = args.layers.split(",") if args.layers else None
    size = args.eval_size or s.profile.sensitivity_eval_size
    val = s.data.val.subset(stratified_indices(s.data.val.labels.cpu().numpy(), size, args.seed))
    print(f"sensitivity scan of {path} ({args.criterion}) on {len(val)} validation images [{s.device}]")
    scan = sensitivity_scan(model, val, ratios, layers=layers, criterion=args.criterion,
                            batch_size=s.profile.eval_batch_size, data_for_taylor=_taylor_data(args, s), seed=args.seed)
    out = _out(args)
    prov = s.provenance({"step": "sensitivity", "checkpoint": str(path), "criterion": args.criterion, "ratios": ratios,
                         "eval_images": len(val)})
    write_table(out / "sensitivity.csv", scan, prov)
    write_table(out / "l1_ranking.csv", l1_ranking(model), prov)
    suggested = ratios_from_sensitivity(scan, args.max_drop)
    write_json(out / "sensitivity_ratios.json", {"max_drop": args.max_drop, "ratios": suggested, "provenance": prov})
    print(scan.pivot_table(index="layer", columns="ratio", values="top1", sort=False).round(1).to_string())
    print(f"wrote {out / 'sensitivity.csv'}, {out / 'l1_ranking.csv'} and {out / 'sensitivity_ratios.json'}")


def add_prune(sub) -> None:
    p = sub.add_parser("prune", help="iterative structured pruning + fine-tuning; writes prune_rounds.csv and prune_channels.csv")
    _common(p)
    _pruning_options(p)
    p.add_argument("--configs", default=None, help="comma-separated default configuration names (default: all)")
    p.add_argument("--ratios", default=None, help="a custom configuration as JSON: a float, a list, or {conv: ratio}")
    p.add_argument("--rounds", type=int, default=None, help="pruning rounds (default: the profile's)")
    p.add_argument("--distill", action=argparse.BooleanOptionalAction, default=None,
                   help="distil from the baseline while fine-tuning (default: the profile's)")
    p.add_argument("--round-to", type=int, default=None, help="keep a multiple of this many channels per layer")
    p.add_argument("--sensitivity", type=Path, default=None,
                   help="a sensitivity.csv for the `sensitivity` configuration (default: <out>/sensitivity.csv if present)")
    p.add_argument("--max-drop", type=float, default=1.0, help="accuracy budget (points) of the sensitivity configuration")
    p.set_defaults(func=cmd_prune)


def cmd_prune(args) -> None:
    from .pruning import default_configs, prune_rounds
    from .results import read_table

    s = _session(args)
    baseline, path = _load_baseline(args, s)
    scan_path = args.sensitivity or _out(args) / "sensitivity.csv"
    scan = read_table(scan_path)[0] if Path(scan_path).is_file() else None
    if args.sensitivity and scan is None:
        raise SystemExit(f"no sensitivity table at {args.sensitivity}: run `python -m compress sensitivity` first")
    available = default_configs(args.arch, scan, args.max_drop)
    names = args.configs.split(",") if args.configs else ([] if args.ratios else list(available))
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {unknown}; available: {sorted(available)}"
                         + ("" if scan is not None else " (run `sensitivity` first for the sensitivity one)"))
    configs = {n: available[n] for n in names}
    if args.ratios:
        configs["custom"] = json.loads(args.ratios)
    print(f"pruning {path} ({', '.join(configs)}; {args.criterion}) on {s.data.summary()} [{s.device}]")
    result = prune_rounds(s, baseline, configs, args.rounds, distill=args.distill, criterion=args.criterion,
                          round_to=args.round_to, data_for_taylor=_taylor_data(args, s), out_dir=_out(args))
    cols = ["config", "round", "params", "macs", "param_reduction", "mac_reduction", "test_top1", "final_val_top1"]
    print(result.rounds[cols].round(2).to_string(index=False))
    print(f"wrote {_out(args) / 'prune_rounds.csv'}, {_out(args) / 'prune_channels.csv'} and {_out(args) / 'checkpoints'}/")


COMMANDS += [add_sensitivity, add_prune]

# [quantize command]
def add_quantize(sub) -> None:
    from .quant import BACKENDS, METHODS

    p = sub.add_parser("quantize", help="fixed-point, INT8 PTQ / QAT / ONNX and pruned + INT8 tables of a checkpoint")
    _common(p)
    p.add_argument("--checkpoint", type=Path, default=None, help="FP32 model (default: runs/<profile>/<arch>/baseline.pt)")
    p.add_argument("--pruned", type=Path, default=None, help="a pruned checkpoint: adds the pruned + INT8 table")
    p.add_argument("--sparse", type=Path, default=None, help="a sparse checkpoint: adds sparse + INT8 rows (needs --pruned)")
    p.add_argument("--bits", type=int, nargs="+", default=[4, 6, 8, 16, 32], help="fixed-point bit widths")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="fixed-point formats")
    p.add_argument("--backend", choices=BACKENDS, default="x86", help="INT8 kernels")
    p.add_argument("--no-qat", action="store_true", help="skip quantization-aware training")
    p.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime rows")
    p.set_defaults(func=cmd_quantize)


def cmd_quantize(args) -> None:
    from .checkpoint import load_checkpoint
    from .quant import Int8Config, compare_int8, fixed_point_table, pruned_int8_table
    from .results import write_table
    from .train import TrainConfig

    out = _out(args)
    ckpt = args.checkpoint or out / "baseline.pt"
    if args.sparse and not args.pruned:
        raise SystemExit("--sparse adds rows to the pruned + INT8 table: pass --pruned too")
    if not ckpt.is_file():
        raise SystemExit(f"no checkpoint at {ckpt}: run `python -m compress train --arch {args.arch} --profile "
                         f"{args.profile}` first, or pass --checkpoint")
    model, _ = load_checkpoint(ckpt, args.arch)
    s = _session(args)
    prof = s.profile
    print(f"quantizing {ckpt} on {s.data.summary()} [{s.device}]")
    calib = {"calib_batches": prof.calib_batches, "calib_batch_size": prof.calib_batch_size, "seed": args.seed}
    qat = None if args.no_qat else TrainConfig.finetune_from_profile(prof, epochs=prof.qat_epochs, lr=prof.qat_lr, seed=args.seed)
    tables = {
        "fixed_point.csv": fixed_point_table(model, s.data, args.bits, args.methods, arch=args.arch, device=s.device, **calib),
        "int8.csv": compare_int8(model, s.data, backend=args.backend, qat=qat, onnx=not args.no_onnx,
                                 onnx_folder=out / "onnx", runs=prof.latency_runs, warmup=prof.latency_warmup, **calib),
    }
    if args.pruned:
        pruned, _ = load_checkpoint(args.pruned, args.arch)
        sparse = load_checkpoint(args.sparse, args.arch)[0] if args.sparse else None
        tables["pruned_int8.csv"] = pruned_int8_table(model, pruned, s.data, sparse=sparse,
                                                      config=Int8Config("optimal", args.backend), **calib)
    config = {"step": "quantize", "checkpoint": str(ckpt), "pruned": args.pruned, "sparse": args.sparse, "bits": args.bits,
              "methods": args.methods, "backend": args.backend, "qat": qat.to_dict() if qat else None}
    for name, df in tables.items():
        print(df.to_string(index=False))
        print(f"wrote {write_table(out / name, df, s.provenance(config))}")


COMMANDS.append(add_quantize)

# [figures/reproduce commands]
def add_figures(sub) -> None:
    p = sub.add_parser("figures", help="regenerate every README figure in assets/ from the tables in results/")
    p.add_argument("--results", type=Path, default=REPO_ROOT / "results")
    p.add_argument("--assets", type=Path, default=REPO_ROOT / "assets")
    p.add_argument("--arch", choices=ARCHS, nargs="*", default=list(ARCHS))
    p.set_defaults(func=cmd_figures)


def cmd_figures(args) -> None:
    from .figures import make_figures

    make_figures(args.results, args.assets, args.arch)


def add_reproduce(sub) -> None:
    p = sub.add_parser("reproduce", help="run the notebooks headless (papermill), then the figures and a summary")
    p.add_argument("--profile", choices=sorted(PROFILES), default="full")
    p.add_argument("--arch", choices=ARCHS, nargs="*", default=list(ARCHS))
    p.add_argument("--data", default=None, help="data source passed to the notebooks (default: $COMPRESS_DATA)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results", type=Path, default=None, help="results folder (default: results/ for full, else runs/<profile>/results)")
    p.add_argument("--assets", type=Path, default=None, help="figures folder (default: assets/ for full, else runs/<profile>/assets)")
    p.add_argument("--engine", choices=("papermill", "inprocess"), default="papermill",
                   help="inprocess runs the notebook cells without Jupyter (e.g. on a GPU box without it)")
    p.set_defaults(func=cmd_reproduce)


def cmd_reproduce(args) -> None:
    from .reproduce import reproduce

    reproduce(args.profile, args.arch, args.data, args.seed, results=args.results, assets=args.assets, engine=args.engine)


COMMANDS += [add_figures, add_reproduce]


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
