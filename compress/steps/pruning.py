"""Structured pruning steps: prune + fine-tune rounds per configuration, each round a cached step, the
configuration carried forward (chosen on validation), and the distillation comparison."""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

import pandas as pd
from torch import nn

from ..checkpoint import load_checkpoint
from ..metrics import model_summary
from ..models import conv_layers
from ..paired import COLUMNS as PAIRED, paired_difference
from ..data import calibration_batches
from ..iterative import prune_step
from ..pruning import ChannelPruner, arch_of, check_criterion, has_batchnorm, match_activation_scale, prune
from ..ratios import channel_targets, default_configs, expand, round_ratios, select_config
from .cache import fingerprint
from .keys import prune_config
from ..published import model_name
from ..train import evaluate, fit
from .session import Session
from .trained import trained_step

ROUND_COLUMNS = ["config", "round", "finetune_epochs", "criterion", "distill", "params", "macs", "size_mb",
                 "gzip_mb", "param_reduction", "mac_reduction", "test_top1", "test_top5", *PAIRED, "final_val_top1",
                 "best_val_top1", "mean_val_top1", "train_seconds", "selected", "step"]  # step: the cached step behind the row


@dataclass
class PruneResult:
    """What `prune_rounds` computed, with the settings that made it (so later steps need nothing else)."""

    rounds: pd.DataFrame  # one row per (config, round); round 0 = the unpruned baseline; `selected` marks `best`
    channels: pd.DataFrame  # tidy: config, round, layer, channels
    ratios: dict  # config -> every conv's target channel ratio
    checkpoints: dict = field(default_factory=dict)  # (config, round) -> its step (`StepRef`: path-like, round >= 1)
    settings: dict = field(default_factory=dict)  # rounds, criterion, round_to, distill
    best: str = ""  # the configuration carried forward: `ratios.select_config` on validation accuracy

    @property
    def smallest(self) -> str:
        """The configuration with the fewest MACs after its last round: how far pruning went."""
        last = self.rounds[self.rounds["round"] == self.rounds.groupby("config")["round"].transform("max")]
        return str(last.sort_values(["macs", "config"]).iloc[0].config)

    def model(self, config: str | None = None, device="cpu") -> nn.Module:
        """The last round's model of `config` (default: `best`)."""
        config = config or self.best
        k = max(r for c, r in self.checkpoints if c == config)
        model, _ = load_checkpoint(self.checkpoints[(config, k)])
        return model.to(device).eval()


def configurations(s: Session, scan: pd.DataFrame | None = None, max_drop: float = 1.0) -> dict:
    """The architecture's fixed configurations plus `sensitivity`, derived from a scan when given; only those
    the profile names in `prune_configs` (where it names any)."""
    configs = default_configs(s.arch, scan, max_drop)
    wanted = s.profile.prune_configs
    if wanted is None:
        return configs
    unknown = [n for n in wanted if n not in (*configs, "sensitivity")]
    if unknown:
        raise ValueError(f"profile {s.profile.name!r} names unknown configuration(s) {unknown}; known: {list(configs)}")
    return {n: configs[n] for n in wanted if n in configs}


def prune_rounds(s: Session, baseline: nn.Module, configs: dict, rounds: int | None = None, *,
                 distill: bool | None = None, criterion: str = "l1", round_to: int | None = None,
                 data_for_taylor=None, max_drop: float = 1.0) -> PruneResult:
    """Prune each configuration from `baseline` over `rounds` rounds, fine-tuning after every round.

    Round k prunes every layer to k/N of its target channel ratio (`ratios.round_ratios`), then fine-tunes
    with the profile's recipe (distilling from the unpruned baseline when `distill`), then measures. Each
    (config, round) is a cached step keyed on the baseline's weights, ratios, schedule and recipe; a round
    starts from the previous round's checkpoint and saves its training state every epoch, so a rerun
    resumes where it stopped. Every configuration is validated before any training. `baseline` is never
    modified. Records the `pruning` and `channels` tables.
    """
    rounds = s.profile.prune_rounds if rounds is None else rounds
    distill = s.profile.distill if distill is None else distill
    check_criterion(criterion, data_for_taylor)
    arch = arch_of(baseline)
    if arch != s.arch:
        raise ValueError(f"the baseline is a {arch}, but this session prunes {s.arch}")
    base_pruner = ChannelPruner(baseline)
    base_channels = {n: c.out_channels for n, c in base_pruner.convs.items()}
    expanded = {}
    for name, ratios in configs.items():  # validate every configuration before any training
        try:
            expanded[name] = expand(arch, list(base_pruner.convs), base_pruner.sets, ratios)
            previous = base_channels
            schedule = [channel_targets(base_channels, step, round_to) for step in round_ratios(expanded[name], rounds)]
            for k, targets in enumerate(schedule, 1):
                base_pruner.plan(targets, criterion)
                if targets == previous and schedule[-1] != base_channels:  # pruning to do, but not in this round
                    raise ValueError(f"round {k} of {rounds} prunes nothing (the ratios are too small to split over "
                                     f"{rounds} rounds at these channel counts); use fewer rounds")
                previous = targets
        except ValueError as e:
            raise ValueError(f"configuration {name!r}: {e}") from e
    unknown = sorted(set(s.profile.last_round_epochs) - {*default_configs(arch), "sensitivity"})
    if unknown:
        raise ValueError(f"profile {s.profile.name!r}: last_round_epochs names unknown configuration(s) {unknown}; "
                         f"known: {[*default_configs(arch), 'sensitivity']}")
    base_id = fingerprint(baseline)
    teacher = baseline.to(s.device) if distill else None
    rescale = not has_batchnorm(baseline)  # `pruning.match_activation_scale`: why a model without BN needs it

    base_cost = model_summary(baseline)
    base_test, base_val = evaluate(baseline, s.data.test, predictions=True), evaluate(baseline, s.data.val)
    labels = s.data.test.labels
    rows, channel_rows, checkpoints = [], [], {}
    for name, ratios in expanded.items():
        rows.append({"config": name, "round": 0, "finetune_epochs": 0, "criterion": criterion, "distill": distill, **base_cost,
                     "param_reduction": 1.0, "mac_reduction": 1.0, "test_top1": base_test["top1"],
                     "test_top5": base_test["top5"], **paired_difference(base_test["pred"], base_test["pred"], labels),
                     "final_val_top1": base_val["top1"],
                     "best_val_top1": base_val["top1"], "mean_val_top1": base_val["top1"], "train_seconds": 0.0,
                     "step": s.baseline_step})
        channel_rows += [{"config": name, "round": 0, "layer": n, "channels": c} for n, c in base_channels.items()]
        previous = None  # the previous round's step; None: start from the baseline
        for k, step in enumerate(round_ratios(ratios, rounds), 1):
            targets = channel_targets(base_channels, step, round_to)
            cfg = prune_config(s.profile, s.arch, s.seed, name, last_round=k == rounds)
            key = s.key("prune_round", baseline=base_id, config=name, ratios=ratios, round=k, criterion=criterion,
                        round_to=round_to, rescale=rescale,
                        **{**s.reads("prune_round", config=name, last_round=k == rounds), "rounds": rounds,
                           "distill": distill, "finetune": cfg.identity()})

            def start(k=k, targets=targets, previous=previous) -> nn.Module:
                model = load_checkpoint(previous, arch)[0] if previous is not None else copy.deepcopy(baseline)
                prune_step(model.to(s.device), targets, criterion=criterion, data_for_taylor=data_for_taylor, seed=s.seed + k,
                           rescale_inputs=rescale_inputs(s, s.seed + k) if rescale else None)
                return model

            def describe(model, result, k=k, name=name) -> dict:
                summary = result.summary()
                return {"config": name, "round": k, "criterion": criterion, "distill": distill, **model_summary(model),
                        **{c: summary[c] for c in ("test_top1", "test_top5", "final_val_top1", "best_val_top1",
                                                   "mean_val_top1", "train_seconds")},
                        **paired_difference(result.test["pred"], base_test["pred"], labels),
                        "channels": {n: c.out_channels for n, c in conv_layers(model).items()}}

            run_cfg = dataclasses.replace(cfg, desc=f"{name} round {k}/{rounds}")
            ref = trained_step(s, "prune_round", key, start=start, describe=describe,
                               meta={"stage": "pruned", "config": name, "round": k},
                               train=lambda model, state, run_cfg=run_cfg: fit(model, s.data, run_cfg, teacher=teacher,
                                                                               device=s.device, state_path=state))
            previous = ref
            record = dict(ref.record()["record"])
            chans = record.pop("channels")
            record["finetune_epochs"] = cfg.epochs
            record["param_reduction"] = base_cost["params"] / record["params"]
            record["mac_reduction"] = base_cost["macs"] / record["macs"]
            rows.append({**record, "step": ref.folder.name})
            channel_rows += [{"config": name, "round": k, "layer": n, "channels": c} for n, c in chans.items()]
            checkpoints[(name, k)] = ref
            if k == rounds:
                s.publish_model(ref.folder, model_name("prune_round", {"config": name}))

    table = pd.DataFrame(rows, columns=ROUND_COLUMNS)
    best = select_config(table, max_drop)
    table["selected"] = table.config == best
    result = PruneResult(table, pd.DataFrame(channel_rows, columns=["config", "round", "layer", "channels"]), expanded,
                         checkpoints, {"rounds": rounds, "criterion": criterion, "round_to": round_to,
                                       "distill": distill, "data_for_taylor": data_for_taylor}, best)
    s.record("pruning", result.rounds, steps=table.step.dropna())
    s.record("channels", result.channels, steps=table.step.dropna())
    last = table[table["round"] == rounds]
    for _, r in last.iterrows():
        s.add_model(f"pruned:{r.config}", "pruned", {**r.to_dict(), "top1": r.test_top1})
    return result


def distillation_effect(s: Session, baseline: nn.Module, result: PruneResult, config: str | None = None) -> pd.DataFrame:
    """The same ratios pruned over the same rounds, fine-tuned with and without distillation from the
    baseline: `config`'s rows of `result` (default: its `best`) beside a rerun with distillation flipped.

    Paired columns: against the baseline (`paired_*`, as in the pruning table) and against the other run's
    model of the same round (`vs_other_delta` / `_ci95` / `_p`: this row minus the other, same images)."""
    config = config or result.best
    st = result.settings
    other = prune_rounds(_quiet(s), baseline, {config: result.ratios[config]}, st["rounds"], distill=not st["distill"],
                         criterion=st["criterion"], round_to=st["round_to"], data_for_taylor=st["data_for_taylor"])
    table = pd.concat([result.rounds[result.rounds.config == config], other.rounds], ignore_index=True)
    table = table[["config", "round", "distill", "params", "macs", "test_top1", *PAIRED, "final_val_top1",
                   "best_val_top1", "mean_val_top1"]].copy()
    # the question asked here is with against without: pair the two runs' models of each round directly
    labels = s.data.test.labels
    for k in range(1, st["rounds"] + 1):
        preds = {}
        for run in (result, other):
            model, _ = load_checkpoint(run.checkpoints[(config, k)])
            preds[run.settings["distill"]] = evaluate(model.to(s.device), s.data.test, predictions=True)["pred"]
        for distill in (True, False):
            vs = paired_difference(preds[distill], preds[not distill], labels)
            at = (table["round"] == k) & (table["distill"] == distill)
            for column, value in (("delta", "paired_delta"), ("ci95", "paired_ci95"), ("p", "mcnemar_p")):
                table.loc[at, f"vs_other_{column}"] = vs[value]
    return s.record("distillation", table, steps=[*result.rounds.step.dropna(), *other.rounds.step.dropna()])


def rescale_inputs(s: Session, seed: int):
    """256 training images on which a model without BN gets each layer's activation scale back after pruning."""
    return calibration_batches(s.data.train, 1, 256, seed=seed)[0].to(s.device)


def _rescale(s: Session, model: nn.Module, reference: nn.Module, seed: int) -> None:
    """Restore each layer's activation scale after pruning a model without BN, on 256 training images."""
    match_activation_scale(model, reference, rescale_inputs(s, seed))


def _quiet(s: Session) -> Session:
    """The same session with a separate output log: a comparison run must not replace the main tables."""
    return Session(s.arch, s.profile, s.data, s.device, s.seed, s.cache, s.results_dir)


def finetune_ratios(s: Session, baseline: nn.Module, ratios, *, criterion: str = "l1") -> dict:
    """One-shot prune with `ratios`, fine-tune with the profile's recipe (distilled), measure (cached).
    Used by the interactive panel; validates the ratios before anything is cached."""
    model = prune(copy.deepcopy(baseline), ratios, criterion=criterion)  # a bad ratio fails here
    cfg = prune_config(s.profile, s.arch, s.seed)
    rescale = not has_batchnorm(baseline)
    key = s.key("finetune_ratios", baseline=fingerprint(baseline), ratios=ratios, criterion=criterion, rescale=rescale,
                **s.reads("finetune_ratios"))
    if rescale:
        _rescale(s, model, baseline, seed=s.seed)
    teacher = baseline if s.profile.distill else None
    ref = trained_step(s, "finetune_ratios", key, start=lambda: model, meta={"stage": "pruned", "ratios": ratios},
                       train=lambda m, state: fit(m, s.data, cfg, teacher=teacher, device=s.device, state_path=state),
                       describe=lambda m, result: {**model_summary(m), **result.summary()})
    return ref.record()["record"]
