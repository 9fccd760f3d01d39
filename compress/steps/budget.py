"""Pruning to a budget, as cached steps: the accuracy-vs-MACs curve and the controls a reviewer asks for.

    sweep = steps.budget_sweep(s, baseline, scan)   # methods compared on validation at one budget, then the curve

* every budget is reached in `budget_steps` prune + fine-tune steps (`iterative.iterative_prune`), toward
  the allocation `budget.allocate` finds for the final target; `budget_epochs` fine-tune epochs in all;
* the allocation method is chosen on VALIDATION accuracy at `budget_select_at` (all methods run there);
  the other budgets use the chosen one; every model's test accuracy is reported, none picked by it;
* *equal budget*: the unpruned baseline fine-tuned by the very same steps and epochs (method `none`, 1x),
  so extra training is not mistaken for the effect of pruning; every row is paired against it too;
* *from scratch*: the pruned architecture at `budget_scratch` budgets trained from random weights for the
  baseline's epochs plus the fine-tune's (Liu et al. 2019);
* *seed spread*: the `budget_select_at` fine-tune repeated with `budget_seeds` (same baseline, same pruning);
* *the peer* (`torch-pruning`, `peer.py`): torch-pruning's own global pruner, as its authors run it on CIFAR,
  decides its final channel counts on the baseline, and then walks there exactly as our methods do: the same
  `budget_steps` prune + fine-tune steps of the same schedule (`budget.schedule`), the same fine-tune recipe and
  epochs, its channels within each layer ranked by its own importance (`group_l2`). Only the allocation (and that
  ranking) differ, so the comparison is of pruners, not of training. It competes for selection on validation like
  the others; the `budget_peer` table pairs every method's `budget_select_at` model with the peer's on the same
  test images (the chosen one marked).

Each step's key names exactly what it reads (no whole profile), plus its version (`keys.VERSIONS`), raised
when the algorithm changes, so a changed profile field reruns only the steps that read it.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch import nn

from .. import budget as budget_alg
from .. import peer
from ..quant import latency
from ..checkpoint import load_checkpoint, save_checkpoint
from ..published import model_name
from ..iterative import prune_step
from ..metrics import count_macs, count_params, model_summary
from ..models import build_model, reinitialize
from ..paired import COLUMNS as PAIRED, paired_difference
from ..pruning import has_batchnorm, prune_to_channels
from ..data import calibration_batches
from .cache import fingerprint
from .keys import budget_config, scratch_config
from ..files import read_table, write_table
from ..train import TrainConfig, evaluate, fit
from .pruning import rescale_inputs
from .session import Session
from .trained import StepRef, trained_step

CRITERION = "l1"
COLUMNS = ["kind", "method", "target", "metric", "round", "steps", "finetune_epochs", "total_epochs", "seed",
           "params", "macs", "mac_reduction", "param_reduction", "target_error", "test_top1", "test_top5", *PAIRED,
           "vs_equal_delta", "vs_equal_ci95", "vs_equal_p", "final_val_top1", "train_seconds", "selected",
           "step"]  # step: the cached step that computed the row; the table's provenance says which commit, machine, precision
PEER_COLUMNS = ["method", "target", "selected", "test_top1", "peer_test_top1", *PAIRED, "step", "peer_step"]


@dataclass
class BudgetRun:
    """One budget reached by one method (or a control): a row per step, the last step's checkpoint."""

    kind: str  # pruned | equal_budget | scratch
    method: str
    target: float
    seed: int
    records: list  # one dict per step (round)
    checkpoint: StepRef  # the last step (path-like: its model file, fetched on demand)
    allocation: pd.DataFrame | None = None  # per conv: channels before / after, MACs share
    predictions: torch.Tensor | None = None  # the last step's test top-1 class per image


@dataclass
class BudgetSweep:
    table: pd.DataFrame  # the `budget` table: every run, every step
    layers: pd.DataFrame  # the `budget_layers` table: each (method, target)'s per-conv allocation
    chosen: str  # the method carried to every budget (validation accuracy at `budget_select_at`)
    runs: list
    planned: int = 0  # runs the whole sweep holds; fewer in `runs`: a partial sweep (`on_progress`)
    peer: pd.DataFrame | None = None  # the `budget_peer` table: each method against the peer at `budget_select_at`

    @property
    def complete(self) -> bool:
        return len(self.runs) >= self.planned


def _finetune_config(s: Session, seed: int) -> TrainConfig:
    return budget_config(s.profile, s.arch, seed)


_PEER_ALLOCATIONS: dict[tuple, budget_alg.Allocation] = {}


def allocation_for(s: Session, baseline: nn.Module, method: str, target: float, scan: pd.DataFrame | None = None,
                   round_to: int | None = None, metric: str = "macs") -> budget_alg.Allocation:
    """The allocation of `method` for `target`x fewer MACs (or `metric`) on `baseline` (milliseconds; deterministic).
    The peer's takes hundreds of pruning steps (a minute or more at full width on a CPU), so it is computed once
    per process and baseline: deterministic, and the budget steps' keys need it on every (cached) rerun."""
    compute = lambda: budget_alg.allocate(baseline, budget_alg.Target(metric, float(target)), method,  # noqa: E731
                                          scan=scan, criterion=CRITERION, seed=s.seed, round_to=round_to)
    if method != peer.METHOD:
        return compute()
    memo = (fingerprint(baseline), float(target), metric, round_to)
    if memo not in _PEER_ALLOCATIONS:
        _PEER_ALLOCATIONS[memo] = compute()
    return _PEER_ALLOCATIONS[memo]


def criterion_for(method: str) -> str:
    """Which channels of a layer each step removes: the peer by its own importance, our methods by L1 norm."""
    return peer.CRITERION if method == peer.METHOD else CRITERION


def _base_predictions(s: Session, baseline: nn.Module) -> dict:
    return evaluate(baseline, s.data.test, s.profile.eval_batch_size, s.device, predictions=True)


def _costs(model: nn.Module) -> dict:
    """What the reductions divide by: MACs and parameters (not `model_summary`, which also gzips the weights)."""
    return {"macs": count_macs(model), "params": count_params(model)}


def _record(s: Session, model: nn.Module, result, base: dict, base_cost: dict, target: float, metric: str) -> dict:
    summary = result.summary()
    cost = model_summary(model)
    labels = s.data.test.labels
    goal = base_cost[metric] / target
    return {**cost, "mac_reduction": base_cost["macs"] / cost["macs"], "param_reduction": base_cost["params"] / cost["params"],
            "target_error": abs(goal - cost[metric]) / goal,
            **{c: summary[c] for c in ("test_top1", "test_top5", "final_val_top1", "train_seconds")},
            **paired_difference(result.test["pred"], base["pred"], labels),
            "channels": {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}}


def budget_run(s: Session, baseline: nn.Module, method: str, target: float, *, scan: pd.DataFrame | None = None,
               seed: int | None = None, base: dict | None = None, metric: str = "macs") -> BudgetRun:
    """`target`x fewer MACs (or `metric`: params) by `method` in the profile's steps, each a cached step that
    resumes from its saved epoch; `method="none"` with `target=1` is the equal-budget control (the same
    fine-tunes, unpruned)."""
    seed = s.seed if seed is None else seed
    p = s.profile
    control = method == "none"
    if control and target != 1:
        raise ValueError("method 'none' is the equal-budget control: it prunes nothing, so its target is 1")
    base = base or _base_predictions(s, baseline)
    base_cost = _costs(baseline)
    if control:
        allocation = None
        channels = {n: m.out_channels for n, m in baseline.named_modules() if isinstance(m, nn.Conv2d)}
        schedule = [channels] * p.budget_steps
    else:
        allocation = allocation_for(s, baseline, method, target, scan, metric=metric)
        schedule = budget_alg.schedule(baseline, allocation, p.budget_steps)
    cfg = _finetune_config(s, seed)
    rescale = not has_batchnorm(baseline)
    base_id = fingerprint(baseline)
    criterion = criterion_for(method)
    previous, records = None, []
    for k, channels in enumerate(schedule, 1):
        key = s.key("budget_round", seed=seed, baseline=base_id, method=method, target=float(target), metric=metric,
                    round=k, channels=channels, criterion=criterion,
                    previous=previous.folder.name if previous is not None else None, rescale=rescale,
                    **s.reads("budget_round", seed=seed))

        def start(k=k, channels=channels, previous=previous) -> nn.Module:
            model = load_checkpoint(previous, s.arch)[0] if previous is not None else copy.deepcopy(baseline)
            prune_step(model.to(s.device), channels, criterion=criterion, seed=seed + k,
                       rescale_inputs=rescale_inputs(s, seed + k) if rescale else None)
            return model

        run_cfg = dataclasses.replace(cfg, desc=f"{method} {target:g}x step {k}/{p.budget_steps}")
        previous = trained_step(
            s, "budget_round", key, start=start,
            train=lambda model, state, run_cfg=run_cfg: fit(model, s.data, run_cfg, device=s.device, state_path=state),
            describe=lambda model, result: _record(s, model, result, base, base_cost, target, metric),
            meta={"stage": "pruned", "method": method, "target": float(target), "round": k})
        stored = previous.record()
        record = dict(stored["record"])
        if k < len(schedule):  # an intermediate step aims at its own share of the budget, not at the target
            record["target_error"] = float("nan")
        records.append({"kind": "equal_budget" if control else "pruned", "method": method, "target": float(target),
                        "metric": metric, "round": k, "steps": p.budget_steps, "finetune_epochs": cfg.epochs,
                        "total_epochs": cfg.epochs * p.budget_steps, "seed": seed, **record, "step": previous.folder.name})
    table = None if allocation is None else allocation.table.assign(method=method, target=float(target))
    if not control:  # the equal-budget control is as large as the baseline: its record suffices downstream
        s.publish_model(previous.folder, model_name("budget_round", {"method": method, "target": target,
                                                                    "seed_suffix": seed if seed != s.seed else None}))
    return BudgetRun("equal_budget" if control else "pruned", method, float(target), seed, records,
                     previous, table, torch.tensor(stored["pred"]))


def scratch_run(s: Session, baseline: nn.Module, pruned: BudgetRun, *, base: dict | None = None) -> BudgetRun:
    """The pruned architecture of `pruned` trained from random weights for the baseline's epochs plus the
    budget's fine-tune epochs, with the baseline's recipe (cached, resumable)."""
    p = s.profile
    base = base or _base_predictions(s, baseline)
    base_cost = _costs(baseline)
    channels = pruned.records[-1]["channels"]
    cfg = scratch_config(p, s.arch, s.seed)
    key = s.key("budget_scratch", channels=channels, **s.reads("budget_scratch"))

    def start() -> nn.Module:
        model = build_model(s.arch, width=p.width)
        prune_to_channels(model, channels)  # the architecture only: every weight is drawn afresh below
        torch.manual_seed(s.seed)
        reinitialize(model)
        return model

    run_cfg = dataclasses.replace(cfg, desc=f"scratch {pruned.target:g}x")
    ref = trained_step(s, "budget_scratch", key, start=start,
                       train=lambda model, state: fit(model, s.data, run_cfg, device=s.device, state_path=state),
                       describe=lambda model, result: _record(s, model, result, base, base_cost, pruned.target, "macs"),
                       meta={"stage": "scratch", "target": pruned.target})
    stored = ref.record()
    s.publish_model(ref.folder, model_name("budget_scratch", {"target": pruned.target}))
    record = {"kind": "scratch", "method": pruned.method, "target": pruned.target, "metric": "macs", "round": 1, "steps": 1,
              "finetune_epochs": 0, "total_epochs": cfg.epochs, "seed": s.seed, **stored["record"], "step": ref.folder.name}
    return BudgetRun("scratch", pruned.method, pruned.target, s.seed, [record], ref, None, torch.tensor(stored["pred"]))


def choose_method(runs: list[BudgetRun]) -> str:
    """The method whose last step has the best VALIDATION accuracy (never test); ties by name."""
    last = sorted(((-r.records[-1]["final_val_top1"], r.method) for r in runs))
    return last[0][1]


def budget_sweep(s: Session, baseline: nn.Module, scan: pd.DataFrame | None = None, *,
                 on_progress: Callable[[BudgetSweep], None] | None = None) -> BudgetSweep:
    """The whole curve with its controls, in the order that decides results first: the methods at
    `budget_select_at`, the equal-budget control (so every later row is paired against it at once), the other
    budgets with the chosen method from the cheapest (fewest MACs) up, the seed spread, then from scratch.
    Records the `budget` and `budget_layers` tables after every run and hands the sweep so far to
    `on_progress`, so an interrupted sweep leaves the tables of what it finished (`BudgetSweep.complete`
    says whether it is whole)."""
    p = s.profile
    methods = [m for m in p.budget_methods if m != "sensitivity" or scan is not None]
    if not methods:
        raise ValueError("budget_methods names only 'sensitivity', but no sensitivity scan was given")
    others = sorted((f for f in p.budget_factors_for(s.arch) if f != p.budget_select_at), reverse=True)
    seeds, scratch = p.budget_seeds.get(s.arch, ()), p.budget_scratch.get(s.arch, ())
    planned = len(methods) + 1 + len(others) + len(seeds) + len(scratch)
    base = _base_predictions(s, baseline)
    runs: list[BudgetRun] = []
    chosen = equal = None  # read by `add` as they are when it runs: None until the selection / control is done

    def add(run: BudgetRun) -> BudgetRun:
        runs.append(run)
        sweep = _sweep(s, runs, equal, chosen, planned)
        if on_progress is not None:
            on_progress(sweep)
        return run

    selection = [add(budget_run(s, baseline, m, p.budget_select_at, scan=scan, base=base)) for m in methods]
    chosen = choose_method(selection)
    equal = budget_run(s, baseline, "none", 1, base=base)
    add(equal)
    for f in others:
        add(budget_run(s, baseline, chosen, f, scan=scan, base=base))
    for seed in seeds:
        add(budget_run(s, baseline, chosen, p.budget_select_at, scan=scan, seed=seed, base=base))
    by_target = {r.target: r for r in runs if r.kind == "pruned" and r.method == chosen and r.seed == s.seed}
    for f in scratch:
        add(scratch_run(s, baseline, by_target[f], base=base))
    return _sweep(s, runs, equal, chosen, planned)


def _sweep(s: Session, runs: list[BudgetRun], equal: BudgetRun | None, chosen: str | None, planned: int) -> BudgetSweep:
    """The sweep so far, its tables recorded (`chosen` None: still selecting; `equal` None: no control yet)."""
    table = _table(s, runs, equal, chosen)
    allocations = [r.allocation for r in runs if r.allocation is not None and r.seed == s.seed]
    layers = pd.concat(allocations, ignore_index=True) if allocations else pd.DataFrame()
    s.record("budget", table, steps=table.step)
    s.record("budget_layers", layers, steps=table.step)
    notes = {"sweep": {"runs_done": len(runs), "runs_planned": planned}}
    s.table_notes["budget"] = s.table_notes["budget_layers"] = notes
    against_peer = peer_table(s, runs, chosen)
    if against_peer is not None:
        s.record("budget_peer", against_peer, steps=list(against_peer.step) + list(against_peer.peer_step))
        s.table_notes["budget_peer"] = notes
    return BudgetSweep(table, layers, chosen, list(runs), planned, against_peer)


def peer_table(s: Session, runs: list[BudgetRun], chosen: str | None) -> pd.DataFrame | None:
    """Each method's `budget_select_at` model (main seed) paired with the peer's on the same test images: the
    difference in points, its 95% interval, images gained / lost, McNemar's p (`selected`: the method chosen on
    validation; no row while still selecting). None when the peer has not run."""
    at = float(s.profile.budget_select_at)
    finals = {r.method: r for r in runs if r.kind == "pruned" and r.target == at and r.seed == s.seed}
    other = finals.get(peer.METHOD)
    if other is None:
        return None
    labels = s.data.test.labels
    rows = [{"method": m, "target": at, "selected": m == chosen, "test_top1": r.records[-1]["test_top1"],
             "peer_test_top1": other.records[-1]["test_top1"],
             **paired_difference(r.predictions, other.predictions, labels),
             "step": r.records[-1]["step"], "peer_step": other.records[-1]["step"]}
            for m, r in sorted(finals.items()) if m != peer.METHOD]
    return pd.DataFrame(rows, columns=PEER_COLUMNS)


def _table(s: Session, runs: list[BudgetRun], equal: BudgetRun | None, chosen: str | None) -> pd.DataFrame:
    labels = s.data.test.labels
    rows = []
    for r in runs:
        for record in r.records:
            row = dict(record)
            if record is r.records[-1] and equal is not None:  # the budget's model: pair it with the control
                vs = paired_difference(r.predictions, equal.predictions, labels)
                row.update(vs_equal_delta=vs["paired_delta"], vs_equal_ci95=vs["paired_ci95"], vs_equal_p=vs["mcnemar_p"])
            row["selected"] = r.kind == "pruned" and r.method == chosen
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


LATENCY_COLUMNS = ["kind", "method", "target", "round_to", "macs", "size_mb", "int8_size_mb", *latency.COLUMNS]


def budget_latency(s: Session, sweep: BudgetSweep, *, baseline: nn.Module | None = None, round_to_at: float | None = None,
                   processes: int = 3) -> pd.DataFrame:
    """Batch-1 CPU latency of every budget's final model (the chosen method, main seed) and of the unpruned
    equal-budget model, in torch eager FP32 and onnxruntime FP32 and INT8 (static QDQ, calibrated on training
    images), at 1 and 2 threads, each from fresh processes (`latency.measure`). With `baseline` and
    `round_to_at`, also the architecture `budget.allocate` gives at that budget with round_to 8 against 1
    (latency does not depend on the weights, so these are not fine-tuned). Cached per machine: a latency is a
    property of the CPU it was timed on. Records the `budget_latency` table."""
    from ..quant.deploy import export_fp32_int8, file_sizes_mb
    from ..provenance import device_name

    runs = [r for r in sweep.runs if (r.kind == "pruned" and r.method == sweep.chosen and r.seed == s.seed)
            or r.kind == "equal_budget"]
    models = [(r.kind, r.method, r.target, None, load_checkpoint(r.checkpoint, s.arch)[0]) for r in runs]
    if baseline is not None and round_to_at is not None:
        for round_to in (1, 8):
            shape = allocation_for(s, baseline, sweep.chosen, round_to_at, round_to=round_to)
            model = prune_to_channels(copy.deepcopy(baseline), shape.channels)
            models.append(("architecture", sweep.chosen, float(round_to_at), round_to, model))
    p = s.profile
    key = s.key("budget_latency", machine=device_name(torch.device("cpu")),
                models=[fingerprint(m) for *_, m in models], round_to=[rt for *_, rt, _ in models],
                processes=processes, **s.reads("budget_latency"))

    def compute(folder: Path) -> None:
        calib = calibration_batches(s.data.train, p.calib_batches, p.calib_batch_size, seed=s.seed)
        rows = []
        for i, (kind, method, target, round_to, model) in enumerate(models):
            model = model.cpu().eval()
            save_checkpoint(model, folder / f"m{i}.pt", s.arch, p.width, meta={"stage": "pruned"})
            onnx = export_fp32_int8(model, folder, [b.cpu() for b in calib], name=f"m{i}")
            variants = [latency.Variant(f"m{i}", "torch", folder / f"m{i}.pt"),
                        latency.Variant(f"m{i}", "onnxruntime", onnx["onnx-fp32"]),
                        latency.Variant(f"m{i}-int8", "onnxruntime", onnx["onnx-int8"])]
            timed = latency.measure(variants, threads=(1, 2), processes=processes, warmup=p.latency_warmup,
                                    runs=p.latency_runs)
            timed["variant"] = timed.variant.map({f"m{i}": "fp32", f"m{i}-int8": "int8"})
            cost = model_summary(model)
            rows.append(timed.assign(kind=kind, method=method, target=target, round_to=round_to, macs=cost["macs"],
                                     size_mb=cost["size_mb"], int8_size_mb=file_sizes_mb(onnx["onnx-int8"])[0]))
        table = pd.concat(rows, ignore_index=True)[LATENCY_COLUMNS]
        write_table(folder / "budget_latency.csv", table, s.provenance({"step": "budget_latency", **key}))

    folder, _ = s.run("budget_latency", key, compute)
    return s.record("budget_latency", read_table(folder / "budget_latency.csv")[0], steps=[folder])
