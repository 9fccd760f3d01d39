"""Command line: `python -m compress <command> ...`; `--help` on each command lists its options.

{commands}

Every command runs the same cached steps as the notebooks (`compress.steps`) and writes the same tables to
`<results>/<arch>/<table>.csv` (default `runs/<profile>/results`), so `figures` draws whatever either made.
Bad input ends with one `error: ...` line and a non-zero exit; `--traceback` (or COMPRESS_TRACEBACK=1)
shows the full Python traceback instead.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from .allocator import keep_freed_memory
from .models import ARCHS
from .profiles import BUDGET_METHODS, PROFILES, default_profile_name
from .device import PRECISIONS
from .files import REPO_ROOT, check_output_file, check_output_folder
from .steps.pipeline import PIPELINE

TRACEBACK_ENV = "COMPRESS_TRACEBACK"


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one `error: ...` line (exit 2) instead of the usage block."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


# ----------------------------------------------------------------------------- argument types (one clear line each)
def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


SEED_MAX = 2**32 - 1  # numpy's generators take seeds below 2**32
MAX_ROUNDS = 20


def seed_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to {SEED_MAX}, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to {SEED_MAX}, got {value}")
    return value


def rounds_value(text: str) -> int:
    value = positive_int(text)
    if value > MAX_ROUNDS:
        raise argparse.ArgumentTypeError(f"at most {MAX_ROUNDS} rounds (each prunes 1/N of the target and fine-tunes: "
                                         f"more rounds prune nothing new), got {value}")
    return value


def folder_path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder, got an empty path")
    return Path(text)


def ratio_list(text: str) -> list[float]:
    """Comma-separated channel ratios, each in [0, 1)."""
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ratios in [0, 1) such as 0.2,0.5, got {text!r}") from None
    bad = [v for v in values if not 0 <= v < 1]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"ratios must lie in [0, 1), got {text!r}")
    return values


def ratios_json(text: str):
    """A custom configuration: a float, a list (per block / per conv) or a JSON object {conv: ratio}."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(
            f"expected a ratio as JSON: a number such as 0.5, a list such as [0.2, 0.3, ...], or an object such as "
            f"'{{\"layer1.0.conv1\": 0.5}}'; got {text!r}") from None


def bits_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a bit width (a whole number from 2 to 32), got {text!r}") from None
    if not 2 <= value <= 32:
        raise argparse.ArgumentTypeError(f"bit widths run from 2 to 32, got {value}")
    return value


# ----------------------------------------------------------------------------- shared options
def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", choices=ARCHS, default="resnet18")
    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help="run size (default: $COMPRESS_PROFILE, else full on a GPU and quick on a CPU)")
    p.add_argument("--data", default=None, help="the official binary version (folder or cifar-10-binary.tar.gz), 'torchvision', or an image-folder tree / .tar.gz (default: $COMPRESS_DATA)")
    p.add_argument("--seed", type=seed_value, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--results", type=folder_path, default=None,
                   help="tables go to <results>/<arch>/ (default: runs/<profile>/results)")


def _baseline_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="a baseline checkpoint (default: the cached baseline of `train` with the same profile and seed)")


BASELINE, PRUNED, SPARSE = ("baseline",), ("pruned", "scratch"), ("sparse",)  # what each checkpoint option takes


def _check_checkpoints(args, *paths_and_stages) -> None:
    """Fail on a wrong or unreadable checkpoint before the data is loaded (cheap checks first): each
    (path, stages) pair must hold a model of this architecture, width and stage."""
    from .checkpoint import load_checkpoint
    from .profiles import get_profile

    width = get_profile(args.profile or default_profile_name()).width
    for path, stages in paths_and_stages:
        if path is not None:
            load_checkpoint(path, args.arch, width=width, stages=stages)


def _check_outputs(args) -> None:
    """Everything the command will write, checked before any work: its results folder (`--results` pointing at a
    file used to fail only after the training it was to save), the step cache and an `--export` file."""
    from .steps.session import default_results_dir, step_cache

    label = "--results" if args.results is not None else "results folder"
    results = args.results if args.results is not None else default_results_dir(args.profile or default_profile_name())
    check_output_folder(results, label)
    check_output_folder(results / args.arch, label)
    check_output_folder(step_cache().root, "step cache ($COMPRESS_CACHE)")
    if getattr(args, "export", None) is not None:
        check_output_file(args.export, "--export")


def _session(args, **profile_overrides):
    from .steps import Session

    return Session.create(args.arch, args.profile, source=args.data, seed=args.seed, device=args.device,
                          results_dir=args.results, **profile_overrides)


def _baseline(args, s):
    from . import steps

    if args.checkpoint is not None:
        return steps.load_model(s, args.checkpoint, BASELINE)
    return steps.train_baseline(s, train=False)


# ----------------------------------------------------------------------------- train
def add_train(sub) -> None:
    p = sub.add_parser("train", help=HELP["train"])
    _common(p)
    p.add_argument("--epochs", type=positive_int, default=None, help="baseline epochs (default: the profile's)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the profile's)")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="training arithmetic (default: the profile's; auto = bf16 where the hardware has it)")
    p.add_argument("--export", type=Path, default=None, help="also copy the trained checkpoint to this file")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> None:
    import shutil

    from . import steps

    _check_outputs(args)
    overrides = {"epochs": args.epochs, "arch_epochs": {}} if args.epochs is not None else {}  # for every arch
    if args.precision is not None:
        overrides["precision"] = args.precision
    s = _session(args, **overrides)
    train = {"lr": args.lr} if args.lr is not None else {}
    print(f"training {args.arch} ({s.profile.name}) on {s.data.summary()} [{s.device}]", flush=True)
    steps.train_baseline(s, **train)
    record = s.tables["baseline"].iloc[0]
    model_file = steps.baseline_folder(s, **train) / steps.MODEL
    if args.export:
        args.export.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_file, args.export)
    steps.save_results(s)
    print(json.dumps({k: record[k] for k in ("test_top1", "test_top5", "final_val_top1", "params", "macs", "size_mb",
                                              "train_seconds", "train_images_per_second")}, indent=2, default=float))
    print(f"checkpoint: {model_file}" + (f" (copied to {args.export})" if args.export else ""))


# ----------------------------------------------------------------------------- sensitivity / prune
def _criterion_options(p: argparse.ArgumentParser) -> None:
    from .pruning import CRITERIA

    p.add_argument("--criterion", choices=CRITERIA, default="l1", help="channel importance criterion")
    p.add_argument("--taylor-images", type=positive_int, default=512, help="training images for the taylor criterion")


def add_sensitivity(sub) -> None:
    p = sub.add_parser("sensitivity", help=HELP["sensitivity"])
    _common(p)
    _baseline_option(p)
    _criterion_options(p)
    p.add_argument("--ratios", type=ratio_list, default=None, help="comma-separated channel ratios (default: the profile's)")
    p.add_argument("--layers", default=None, help="comma-separated conv names (default: every conv)")
    p.add_argument("--eval-size", type=positive_int, default=None, help="validation images per point (default: the profile's)")
    p.set_defaults(func=cmd_sensitivity)


def cmd_sensitivity(args) -> None:
    from . import steps

    _check_outputs(args)
    _check_checkpoints(args, (args.checkpoint, BASELINE))
    s = _session(args)
    model = _baseline(args, s)
    layers = [t.strip() for t in args.layers.split(",") if t.strip()] if args.layers else None
    print(f"sensitivity scan ({args.criterion}) of the {args.arch} baseline on the validation split [{s.device}]", flush=True)
    steps.l1_ranking(s, model)
    scan = steps.sensitivity(s, model, args.criterion, ratios=args.ratios, layers=layers, eval_size=args.eval_size,
                             taylor_images=args.taylor_images)
    print(scan.pivot_table(index="layer", columns="ratio", values="top1", sort=False).round(1).to_string())
    steps.save_results(s)


def add_prune(sub) -> None:
    p = sub.add_parser("prune", help=HELP["prune"])
    _common(p)
    _baseline_option(p)
    _criterion_options(p)
    p.add_argument("--configs", default=None, help="comma-separated configuration names (default: all, "
                                                   "`sensitivity` included; none when --ratios is given)")
    p.add_argument("--ratios", type=ratios_json, default=None, help="a custom configuration as JSON: a float, a list or {conv: ratio}")
    p.add_argument("--rounds", type=rounds_value, default=None, help=f"pruning rounds, at most {MAX_ROUNDS} "
                                                                        "(default: the profile's)")
    p.add_argument("--distill", action=argparse.BooleanOptionalAction, default=None,
                   help="distil from the baseline while fine-tuning (default: the profile's)")
    p.add_argument("--round-to", type=positive_int, default=None, help="keep a multiple of this many channels per layer")
    p.add_argument("--max-drop", type=float, default=1.0, help="validation accuracy budget (points) of the sensitivity "
                                                               "configuration and of the one carried forward")
    budget = p.add_argument_group("pruning to a budget (instead of configurations)")
    target = budget.add_mutually_exclusive_group()
    target.add_argument("--macs", type=budget_target, default=None,
                        help="reach this many MACs: a factor such as 4x (4 times fewer) or a count such as 25M")
    target.add_argument("--params", type=budget_target, default=None, help="the same for parameters, e.g. 10x")
    budget.add_argument("--method", choices=BUDGET_METHODS, default="global",
                        help="how the budget is spread over the layers (sensitivity runs the validation scan first)")
    p.set_defaults(func=cmd_prune)


def cmd_prune(args) -> None:
    _check_outputs(args)
    if args.macs is not None or args.params is not None:
        return _prune_to_budget(args)
    from . import steps
    from .ratios import DEFAULT_CONFIGS, default_configs

    if args.ratios is not None and not _prunes_something(args.ratios):
        raise ValueError(f"--ratios {json.dumps(args.ratios)} prunes nothing: give at least one ratio above 0")
    known = [*DEFAULT_CONFIGS[args.arch], "sensitivity"]
    names = [t.strip() for t in args.configs.split(",") if t.strip()] if args.configs else ([] if args.ratios is not None else known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown configuration(s) {unknown}; choose from {known}")
    _check_checkpoints(args, (args.checkpoint, BASELINE))
    s = _session(args)
    baseline = _baseline(args, s)
    scan = steps.sensitivity(s, baseline) if "sensitivity" in names else None
    if args.configs:  # named: any of the architecture's configurations, whichever the profile prunes by default
        available = default_configs(args.arch, scan, args.max_drop)
        configs = {n: available[n] for n in names}
    else:
        configs = steps.configurations(s, scan, args.max_drop) if args.ratios is None else {}
    if args.ratios is not None:
        configs["custom"] = args.ratios
    data_for_taylor = steps.taylor_data(s, args.taylor_images) if args.criterion == "taylor" else None
    print(f"pruning the {args.arch} baseline ({', '.join(configs)}; {args.criterion}) on {s.data.summary()} [{s.device}]",
          flush=True)
    result = steps.prune_rounds(s, baseline, configs, args.rounds, distill=args.distill, criterion=args.criterion,
                                round_to=args.round_to, data_for_taylor=data_for_taylor, max_drop=args.max_drop)
    cols = ["config", "round", "params", "macs", "param_reduction", "mac_reduction", "test_top1", "final_val_top1"]
    print(result.rounds[cols].round(2).to_string(index=False))
    print(f"carried forward (validation): {result.best}")
    for (name, k), path in sorted(result.checkpoints.items()):
        print(f"checkpoint {name} round {k}: {path}")
    steps.save_results(s)


def _prunes_something(ratios) -> bool:
    if isinstance(ratios, dict):
        return any(_prunes_something(v) for v in ratios.values())
    if isinstance(ratios, list):
        return any(_prunes_something(v) for v in ratios)
    return not isinstance(ratios, bool) and isinstance(ratios, (int, float)) and ratios != 0


def _prune_to_budget(args) -> None:
    import pandas as pd

    from . import steps
    from .metrics import count_macs, count_params

    if args.configs or args.ratios is not None:
        raise ValueError("--macs / --params prune to a budget: leave out --configs and --ratios")
    metric, text = ("macs", args.macs) if args.macs is not None else ("params", args.params)
    _check_checkpoints(args, (args.checkpoint, BASELINE))
    s = _session(args)
    baseline = _baseline(args, s)
    base = {"macs": count_macs(baseline), "params": count_params(baseline)}[metric]
    factor = base / text.count(base)  # an absolute count becomes the factor it asks for
    scan = steps.sensitivity(s, baseline) if args.method == "sensitivity" else None
    print(f"pruning the {args.arch} baseline to {text.describe()} ({args.method}, {s.profile.budget_steps} "
          f"steps, {s.profile.budget_epochs} fine-tune epochs) on {s.data.summary()} [{s.device}]", flush=True)
    run = steps.budget_run(s, baseline, args.method, factor, scan=scan, metric=metric)
    print(run.allocation[["layer", "channels_before", "channels_after", "mac_share"]].round(3).to_string(index=False))
    cols = ["round", "params", "macs", "mac_reduction", "param_reduction", "target_error", "test_top1", "final_val_top1"]
    records = pd.DataFrame(run.records)
    print(records[cols].round(4).to_string(index=False))
    print(f"checkpoint: {run.checkpoint}")
    s.record("budget", records, steps=records.step)
    s.record("budget_layers", run.allocation, steps=records.step)
    steps.save_results(s)


def budget_target(text: str):
    from .budget import Target

    try:
        target = Target.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if target.factor and target.value <= 1:
        raise argparse.ArgumentTypeError(f"a reduction factor must be above 1x, got {text!r}")
    return target


def add_budget(sub) -> None:
    p = sub.add_parser("budget", help=HELP["budget"])
    _common(p)
    p.set_defaults(func=cmd_budget)


def cmd_budget(args) -> None:
    from . import steps

    _check_outputs(args)
    s = _session(args)
    prof = s.profile
    print(f"budget sweep of {args.arch} ({prof.name}): {', '.join(f'{f:g}x' for f in prof.budget_factors_for(args.arch))} "
          f"fewer MACs; "
          f"methods {', '.join(prof.budget_methods)} compared on validation at {prof.budget_select_at:g}x; "
          f"{prof.budget_steps} steps, {prof.budget_epochs} fine-tune epochs per budget; on {s.data.summary()} "
          f"[{s.device}]", flush=True)
    baseline = steps.train_baseline(s)
    scan = steps.sensitivity(s, baseline) if "sensitivity" in prof.budget_methods else None
    def progress(sweep) -> None:  # the tables of every finished run, so an interrupted sweep leaves its numbers
        print(f"budget sweep: {len(sweep.runs)} of {sweep.planned} runs done", flush=True)
        steps.save_results(s)

    sweep = steps.budget_sweep(s, baseline, scan, on_progress=progress)
    cols = ["kind", "method", "target", "seed", "mac_reduction", "param_reduction", "test_top1", "paired_delta",
            "paired_ci95", "vs_equal_delta", "vs_equal_ci95", "final_val_top1"]
    from .report.tables import budget_finals

    print(budget_finals(sweep.table)[cols].round(3).to_string(index=False))
    print(f"allocation method (validation at {prof.budget_select_at:g}x): {sweep.chosen}")
    print("batch-1 CPU latency, fresh processes (torch eager FP32, onnxruntime FP32 and INT8) ...", flush=True)
    timed = steps.budget_latency(s, sweep, baseline=baseline, round_to_at=prof.budget_select_at)
    print(timed[["kind", "target", "round_to", "runtime", "variant", "threads", "latency_ms", "spread",
                 "flagged"]].round(3).to_string(index=False))
    steps.save_results(s)


# ----------------------------------------------------------------------------- quantize
def add_quantize(sub) -> None:
    from .quant import BACKENDS, METHODS

    p = sub.add_parser("quantize", help=HELP["quantize"])
    _common(p)
    _baseline_option(p)
    p.add_argument("--pruned", type=Path, default=None, help="a pruned checkpoint: adds the pruned + INT8 tables")
    p.add_argument("--sparse", type=Path, default=None, help="a sparse checkpoint: adds sparse + INT8 rows (needs --pruned)")
    p.add_argument("--bits", type=bits_value, nargs="+", default=None, help="fixed-point bit widths (default: the profile's)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="fixed-point formats")
    p.add_argument("--backend", choices=BACKENDS, default="x86", help="INT8 kernels")
    p.add_argument("--no-qat", action="store_true", help="skip quantization-aware training")
    p.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime rows")
    p.set_defaults(func=cmd_quantize)


def cmd_quantize(args) -> None:
    from . import steps

    if args.sparse and not args.pruned:
        raise ValueError("--sparse adds rows to the pruned + INT8 table: pass --pruned too")
    _check_outputs(args)
    _check_checkpoints(args, (args.checkpoint, BASELINE), (args.pruned, PRUNED), (args.sparse, SPARSE))
    s = _session(args)
    model = _baseline(args, s)
    pruned = steps.load_model(s, args.pruned, PRUNED) if args.pruned else None  # checked before any work
    sparse = steps.load_model(s, args.sparse, SPARSE) if args.sparse else None
    print(f"quantizing the {args.arch} baseline on {s.data.summary()} [{s.device}]", flush=True)
    opts = {"backend": args.backend, "qat": not args.no_qat, "onnx": not args.no_onnx}
    for table in (steps.fixed_point(s, model, args.bits, tuple(args.methods)), steps.int8(s, model, **opts)):
        print(table.round(3).to_string(index=False))
    if pruned is not None:
        print(steps.pruned_int8(s, pruned, args.pruned.stem, baseline=model, **opts).round(3).to_string(index=False))
        print(steps.combined(s, model, pruned, args.pruned.stem, sparse, backend=args.backend).round(3).to_string(index=False))
    steps.save_results(s)


# ----------------------------------------------------------------------------- figures / reproduce
def add_figures(sub) -> None:
    p = sub.add_parser("figures", help=HELP["figures"] + " (no arguments: "
                                       "redraws the committed results/, assets/ and the README's generated blocks)")
    p.add_argument("--results", type=folder_path, default=REPO_ROOT / "results")
    p.add_argument("--assets", type=Path, default=None, help="where the figures go (default: assets/ for results/, "
                                                             "else <results>/../assets)")
    p.add_argument("--arch", choices=ARCHS, nargs="*", default=list(ARCHS))
    p.set_defaults(func=cmd_figures)


def cmd_figures(args) -> None:
    from .report.figures import make_figures

    results = args.results.resolve()
    if not results.is_dir():
        raise FileNotFoundError(f"no results folder at {results}: run a notebook, `reproduce` or a CLI command first")
    if not any((results / a).is_dir() for a in args.arch):
        raise FileNotFoundError(f"{results} holds no tables for {', '.join(args.arch)} (expected {results}/<arch>/*.csv)")
    assets = args.assets or (REPO_ROOT / "assets" if results == (REPO_ROOT / "results").resolve() else results.parent / "assets")
    committed = results == (REPO_ROOT / "results").resolve()
    check_output_folder(assets, "--assets" if args.assets is not None else "assets folder")
    make_figures(results, assets, args.arch, readme=REPO_ROOT / "README.md" if committed else None)


def add_reproduce(sub) -> None:
    p = sub.add_parser("reproduce", help=HELP["reproduce"])
    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help="run size (default: $COMPRESS_PROFILE, else full on a GPU and quick on a CPU)")
    p.add_argument("--arch", choices=ARCHS, nargs="+", default=None,
                   help="the notebooks to run; a named one whose estimate exceeds --max-hours is refused (default: "
                        "every one that fits, the others listed with their hours and the command that computes them)")
    p.add_argument("--data", default=None, help="data source passed to the notebooks (default: $COMPRESS_DATA)")
    p.add_argument("--seed", type=seed_value, default=0,
                   help="the run's seed: its published and cached steps are those of this seed (default: %(default)s)")
    p.add_argument("--publish", action="store_true",
                   help="write the committed results/, assets/ and executed notebooks (what the README shows)")
    p.add_argument("--engine", choices=("papermill", "inprocess"), default="papermill",
                   help="inprocess runs the notebook cells without Jupyter (e.g. on a GPU box without it)")
    p.add_argument("--allow-long", action="store_true", help="run even the notebooks whose estimate exceeds --max-hours")
    p.add_argument("--max-hours", type=float, default=6.0,
                   help="a notebook estimated over this many hours here does not run without --allow-long "
                        "(default: %(default)g)")
    p.add_argument("--plan", action="store_true", help="print the plan and the estimate, then stop")
    p.add_argument("--recompute", nargs="+", default=[], metavar="STAGE",
                   help="compute these stages (baseline, importance, prune, budget, quantize, combine) or steps here, "
                        "even where published (default: published steps are read, not computed)")
    p.set_defaults(func=cmd_reproduce)


def cmd_reproduce(args) -> None:
    from .reproduce import reproduce

    reproduce(args.profile or default_profile_name(), args.arch, args.data, args.seed, publish=args.publish,
              engine=args.engine, allow_long=args.allow_long, max_hours=args.max_hours, plan_only=args.plan,
              recompute=tuple(args.recompute))


def add_verify(sub) -> None:
    p = sub.add_parser("verify", help=HELP["verify"])
    p.add_argument("--arch", choices=ARCHS, default=None, help="one architecture (default: every one published)")
    p.add_argument("--results", type=folder_path, default=None,
                   help="the results folder whose models/ to check (default: $COMPRESS_RESULTS, else results/)")
    p.add_argument("--data", default=None, help="the data the models were published on (default: $COMPRESS_DATA)")
    p.set_defaults(func=cmd_verify)


def cmd_verify(args) -> None:
    from .verification import verify

    verify(args.arch, root=args.results, source=args.data)


def add_study(sub) -> None:
    from .study import STUDY_ARCHS, units

    p = sub.add_parser("study", help=HELP["study"])
    p.add_argument("--profile", choices=sorted(PROFILES), default="cpu", help="run size (default: %(default)s)")
    p.add_argument("--arch", choices=ARCHS, nargs="+", default=list(STUDY_ARCHS),
                   help="the architectures whose units run (default: %(default)s)")
    p.add_argument("--only", nargs="+", default=None, metavar="UNIT",
                   help="only these units, by name (e.g. curve) or arch:name (e.g. resnet18:curve); units: "
                        + ", ".join(dict.fromkeys(u.name for u in units())))
    p.add_argument("--data", default=None, help="data source (default: $COMPRESS_DATA)")
    p.add_argument("--seed", type=seed_value, default=0, help="the run's seed (default: %(default)s)")
    p.add_argument("--results", type=folder_path, default=None,
                   help="where each finished step is published (default: the repository's results/)")
    p.set_defaults(func=cmd_study)


def cmd_study(args) -> None:
    from .study import Study, run

    run(Study(args.profile, args.data, args.seed, results_dir=args.results or REPO_ROOT / "results"),
        tuple(args.arch), args.only)


def add_publish(sub) -> None:
    p = sub.add_parser("publish", help=HELP["publish"])
    p.add_argument("--results", type=folder_path, default=None,
                   help="the results folder to write into (default: $COMPRESS_RESULTS, else results/)")
    p.add_argument("--cache", type=folder_path, default=None,
                   help="the step cache holding the unfinished steps (default: $COMPRESS_CACHE, else data/cache/steps)")
    p.set_defaults(func=cmd_publish)


def cmd_publish(args) -> None:
    from .published import results_root
    from .steps.resume import export
    from .steps.session import step_cache

    cache = step_cache(args.cache).root
    if not cache.is_dir():
        raise ValueError(f"no step cache at {cache}: nothing to publish")
    done = export(cache, results_root(args.results))
    print(f"{len(done['written'])} resume point(s) written, {len(done['deleted'])} deleted; the finished steps are "
          f"published as each finishes (results/<arch>/models/): commit both")


# the pipeline's commands in its order (`steps.pipeline.PIPELINE`), then the ones that read or run it whole
HELP = {**{stage.command: stage.summary for stage in PIPELINE if stage.command},
        "figures": "draw every figure and the summary from a results folder",
        "reproduce": "run the notebooks headless (plan and time estimate first), then the figures",
        "verify": "check every published model: its sha256, and its test top-1 against its table rows",
        "study": "run the study's units in the order that decides results first, publishing each step",
        "publish": "write the resume point of every unfinished training step into results/, ready to commit"}
_ADD = {"train": add_train, "sensitivity": add_sensitivity, "prune": add_prune, "budget": add_budget,
        "quantize": add_quantize, "figures": add_figures, "reproduce": add_reproduce, "verify": add_verify,
        "study": add_study, "publish": add_publish}
COMMANDS = [_ADD[name] for name in HELP]


def description() -> str:
    """The module's text with its command list drawn from HELP."""
    return __doc__.format(commands="\n".join(f"    {name:<12} {text}" for name, text in HELP.items()))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m compress", description=description(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traceback", action="store_true", help="show the full Python traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; any failure is one `error: ...` line on stderr and exit code 1 (2 for bad arguments)."""
    keep_freed_memory()  # before any tensor exists: CPU evaluation runs 1.3-1.8x faster (allocator.py)
    argv = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in argv or bool(os.environ.get(TRACEBACK_ENV))
    args = build_parser().parse_args([a for a in argv if a != "--traceback"])  # accepted anywhere on the line
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("error: interrupted; finished steps are cached, so the same command resumes", file=sys.stderr)
        return 130
    except Terminated:
        print("error: terminated (SIGTERM); finished steps are cached, so the same command resumes", file=sys.stderr)
        return 143
    except Exception as e:  # every failure becomes one line unless a traceback is asked for
        if show_traceback:
            raise
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = "" if isinstance(e, (ValueError, LookupError, OSError, RuntimeError)) else " (rerun with --traceback for details)"
        print(f"error: {message}{hint}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so it ends like Ctrl-C: one line, the cache as it was."""


def _terminated(_signum, _frame):
    raise Terminated()
