"""Structured (channel) pruning on torch-pruning's dependency graph, one-shot or in fine-tuned rounds.

Removing a conv's output channel also removes the BN entries, the next layer's input channels and, in
ResNet18, the same channel of every conv that writes into the same residual sum. torch-pruning's
`DependencyGraph` finds these couplings, so every pruned model stays a valid, smaller dense network.

The unit of pruning is a *channel set*: the output channels of one conv, or of several convs that are
coupled through a residual addition. In ResNet18 the sets are each block's `conv1` (the channels inside
the block) and, per stage, the residual stream (stage 1: the stem `conv1`, `layer1.0.conv2`,
`layer1.1.conv2`; stage s > 1: `layer{s}.0.conv2`, `layer{s}.0.downsample.0`, `layer{s}.1.conv2`).
In VGG every conv is its own set. Coupled convs must drop the same channels, so they take one ratio.

Ratios are CHANNEL ratios: 0.5 removes half of a layer's output channels. A conv whose inputs and outputs
are both pruned by p keeps (1 - p)^2 of its weights and MACs, so parameters fall much faster than channels.

We drive the dependency graph directly rather than through `tp.pruner.MetaPruner` because the pruner
resolves a ratio per *group* from whichever member it meets first; here coupled layers are checked to
agree, importance is measured once on the model as given, and the scan in `importance.py` can reuse
one graph for a whole sweep of ratios.

Pruning replaces parameters (`step()` in torch-pruning's words): build any optimizer after pruning
(`train.fit` builds its own, so fine-tuning with it is safe).
"""
from __future__ import annotations

import copy
import hashlib
import math
import numbers
import shutil
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .data import Batches, Split
from .metrics import model_summary
from .models import VGG, ResNet18, conv_layers, example_input
from .results import read_json, write_json, write_table
from .train import TrainConfig, evaluate, fit

CRITERIA = ("l1", "l2", "random", "bn_scale", "taylor")
RESNET18_BLOCKS = tuple(f"layer{s}.{b}" for s in range(1, 5) for b in range(2))
RESNET18_STAGE_STREAMS = ("conv1", "layer2.0.conv2", "layer3.0.conv2", "layer4.0.conv2")  # one conv per residual set


# ----------------------------------------------------------------------------- architecture helpers
def arch_of(model: nn.Module) -> str | None:
    """`resnet18`, `vgg16` or `vgg16_bn` for models built by `models.build_model`, else None."""
    if isinstance(model, ResNet18):
        return "resnet18"
    if isinstance(model, VGG):
        return "vgg16_bn" if any(isinstance(m, nn.BatchNorm2d) for m in model.modules()) else "vgg16"
    return None


def resnet18_ratios(blocks: Sequence[float], stages: Sequence[float] | None = None) -> dict[str, float]:
    """A ResNet18 ratio dict from 8 per-block ratios (each block's `conv1`) and optional 4 per-stage
    ratios for the residual streams (see the module docstring for which convs each stream covers)."""
    blocks, stages = list(blocks), list(stages) if stages is not None else [0.0] * 4
    if len(blocks) != len(RESNET18_BLOCKS) or len(stages) != len(RESNET18_STAGE_STREAMS):
        raise ValueError(f"resnet18_ratios takes 8 block ratios ({', '.join(RESNET18_BLOCKS)}) and 4 stage ratios; "
                         f"got {len(blocks)} and {len(stages)}")
    out = {f"{b}.conv1": r for b, r in zip(RESNET18_BLOCKS, blocks)}
    out.update(zip(RESNET18_STAGE_STREAMS, stages))
    return out


# ----------------------------------------------------------------------------- importance criteria
class FilterNorm(tp.importance.Importance):
    """Li et al. 2017: sum of |w|^p over a channel's filter, summed over every conv that writes the channel.

    For a coupled set this is the p-norm (to the p) of the concatenated filters; with p=2 the ranking
    equals the L2-norm ranking. Only producing filters count, not the consumers' input weights.
    """

    def __init__(self, p: int):
        self.p = p

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor:
        imp = torch.zeros(len(group[0].idxs), device=group[0].dep.target.module.weight.device)
        for item in group:
            layer = item.dep.target.module
            if isinstance(layer, nn.Conv2d) and item.dep.handler == tp.prune_conv_out_channels:
                score = layer.weight.detach()[item.idxs].flatten(1).abs().pow(self.p).sum(1)
                imp.index_add_(0, torch.as_tensor(item.root_idxs, device=imp.device), score.float())
        return imp


class SeededRandom(tp.importance.Importance):
    """Uniform random scores from a seeded generator: the control every criterion must beat.

    `ChannelPruner.scores` seeds one per channel set from (seed, set name), so a set's scores do not
    depend on which other sets are pruned with it.
    """

    def __init__(self, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, group) -> torch.Tensor:
        return torch.rand(len(group[0].idxs), generator=self.generator)


def make_importance(criterion: str, seed: int = 0) -> tp.importance.Importance:
    """The torch-pruning scorer behind each criterion name.

    l1 / l2: filter norms (Li et al. 2017); bn_scale: |gamma| of the following BN (network slimming,
    Liu et al. 2017); taylor: first-order Taylor |w * dL/dw| summed over the whole coupled group
    (Molchanov et al. 2019; gradients must be present); random: seeded uniform scores.
    """
    if criterion == "l1":
        return FilterNorm(1)
    if criterion == "l2":
        return FilterNorm(2)
    if criterion == "bn_scale":
        return tp.importance.BNScaleImportance(group_reduction="sum", normalizer=None)
    if criterion == "taylor":
        return tp.importance.GroupTaylorImportance(group_reduction="sum", normalizer=None)
    if criterion == "random":
        return SeededRandom(seed)
    raise ValueError(f"unknown criterion {criterion!r}; choose one of {list(CRITERIA)}")


def _taylor_batches(data) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(data, Split):
        return Batches(data, 128, train=False)
    return data


def _accumulate_gradients(model: nn.Module, data) -> None:
    """Loss gradients summed over `data` (a Split or (x, y) batches), in eval mode so BN stats stay put."""
    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    device = next(model.parameters()).device
    seen = 0
    with torch.enable_grad():
        for x, y in _taylor_batches(data):
            x, y = x.to(device), y.to(device)
            F.cross_entropy(model(x), y, reduction="sum").backward()
            seen += len(y)
    model.train(was_training)
    if seen == 0:
        raise ValueError("data_for_taylor yielded no batches")


# ----------------------------------------------------------------------------- the dependency graph
class ChannelPruner:
    """One model, its dependency graph and its channel sets; removes channels set by set.

    Channel indices given to `remove` always refer to the channels the model had when this pruner was
    built, so a sweep can remove more and more of one ranking without rebuilding the graph.
    """

    def __init__(self, model: nn.Module, example_inputs: torch.Tensor | None = None):
        self.model = model
        self.convs = conv_layers(model)
        if not self.convs:
            raise ValueError("the model has no conv layers to prune")
        example = example_input(1, next(model.parameters()).device) if example_inputs is None else example_inputs
        was_training = model.training
        try:
            with torch.enable_grad():  # the graph is traced through autograd: never under no_grad
                self.graph = tp.DependencyGraph().build_dependency(model, example_inputs=(example,), verbose=False)
        finally:
            model.train(was_training)  # tracing switches the model to eval mode
        self.sets: dict[str, tuple[str, ...]] = {}  # first conv in forward order -> every coupled conv
        self.set_of: dict[str, str] = {}
        names = {m: n for n, m in self.convs.items()}
        for name, conv in self.convs.items():
            if name in self.set_of:
                continue
            members = {names[item.dep.target.module] for item in self._group(name)
                       if item.dep.target.module in names and item.dep.handler == tp.prune_conv_out_channels}
            ordered = tuple(n for n in self.convs if n in members)
            self.sets[name] = ordered
            self.set_of.update((m, name) for m in ordered)
        self._alive = {s: list(range(self.convs[s].out_channels)) for s in self.sets}
        self._removed = False

    def _group(self, name: str, idxs: Sequence[int] | None = None):
        conv = self.convs[name]
        return self.graph.get_pruning_group(conv, tp.prune_conv_out_channels,
                                            list(range(conv.out_channels)) if idxs is None else list(idxs))

    def channels(self, name: str) -> int:
        return self.convs[name].out_channels

    def has_batchnorm(self, name: str) -> bool:
        """Whether a BatchNorm normalises this set's channels (needed by the bn_scale criterion)."""
        return any(isinstance(item.dep.target.module, nn.BatchNorm2d) for item in self._group(self.set_of[name]))

    def scores(self, set_names: Iterable[str], criterion: str = "l1", *, data_for_taylor=None,
               seed: int = 0) -> dict[str, torch.Tensor]:
        """Per-channel importance of each set, measured on the model as it is now (before any removal)."""
        if self._removed:
            raise RuntimeError("score channels before removing any: indices would no longer line up")
        set_names = list(set_names)
        if not set_names:
            return {}
        importance = make_importance(criterion, seed)
        if criterion == "taylor":
            _accumulate_gradients(self.model, data_for_taylor)
        try:
            out = {}
            for s in set_names:
                if criterion == "random":
                    importance = SeededRandom(zlib.crc32(f"{seed}:{s}".encode()))
                imp = importance(self._group(s))
                if imp is None:
                    raise ValueError(f"criterion {criterion!r} found nothing to score for {s!r}")
                out[s] = imp.detach().float().cpu()
            return out
        finally:
            if criterion == "taylor":
                self.model.zero_grad(set_to_none=True)

    def plan(self, targets: Mapping[str, int], criterion: str = "l1") -> dict[str, int]:
        """Channels to keep per channel set (only sets that lose some), validated against this model.

        `targets` maps conv names to output channels to keep; coupled convs must agree.
        """
        unknown = [k for k in targets if k not in self.convs]
        if unknown:
            raise ValueError(f"unknown conv layer(s) {unknown}; valid names: {list(self.convs)}")
        plan = {}
        for s, members in self.sets.items():
            wanted = {targets[m] for m in members if m in targets}
            if len(wanted) > 1:
                raise ValueError(f"coupled convs {list(members)} must keep the same number of channels, got "
                                 f"{ {m: targets[m] for m in members if m in targets} }")
            if not wanted:
                continue
            keep, n = wanted.pop(), self.channels(s)
            if isinstance(keep, bool) or not isinstance(keep, numbers.Integral) or not 1 <= keep <= n:
                raise ValueError(f"{s}: can keep between 1 and its {n} channels, asked for {keep!r}")
            if keep < n:
                plan[s] = int(keep)
        if criterion == "bn_scale":
            no_bn = [s for s in plan if not self.has_batchnorm(s)]
            if no_bn:
                raise ValueError(f"criterion 'bn_scale' ranks channels by their BatchNorm scale, but {no_bn[:3]} "
                                 f"have no BatchNorm (vgg16 has none: use vgg16_bn or another criterion)")
        return plan

    def apply(self, plan: Mapping[str, int], criterion: str = "l1", *, data_for_taylor=None, seed: int = 0) -> None:
        """Score every planned set first, then remove each set's least important channels."""
        scores = self.scores(plan, criterion, data_for_taylor=data_for_taylor, seed=seed)
        for s, keep in plan.items():
            order = torch.argsort(scores[s], stable=True)  # least important first; ties by index
            self.remove(s, order[: self.channels(s) - keep].tolist())

    def remove(self, name: str, idxs: Iterable[int]) -> None:
        """Remove channels `idxs` (indices at construction time) of the set containing conv `name`."""
        s = self.set_of[name]
        alive = self._alive[s]
        position = {c: i for i, c in enumerate(alive)}
        drop = sorted(set(int(i) for i in idxs))
        missing = [i for i in drop if i not in position]
        if missing:
            raise ValueError(f"channels {missing[:5]} of {s!r} are already removed or out of range")
        if not drop:
            return
        if len(drop) >= len(alive):
            raise ValueError(f"removing {len(drop)} of {len(alive)} channels would leave {s!r} with none")
        group = self._group(s, [position[i] for i in drop])
        if not self.graph.check_pruning_group(group):
            raise RuntimeError(f"torch-pruning refused to prune {s!r}: a coupled layer would lose every channel")
        group.prune()
        self._removed = True
        gone = set(drop)
        self._alive[s] = [c for c in alive if c not in gone]


# ----------------------------------------------------------------------------- ratios -> channel targets
def check_ratio(where: str, value) -> float:
    """`value` as a float channel ratio in [0, 1), else a ValueError naming `where`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{where}: ratio must be a number in [0, 1), got {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{where}: ratio {value} is outside [0, 1) (a channel ratio; 1 would remove every filter)")
    return float(value)


def _expand(arch: str | None, pruner: ChannelPruner, ratios) -> dict[str, float]:
    names = list(pruner.convs)
    if isinstance(ratios, numbers.Real) and not isinstance(ratios, bool):
        r = check_ratio("uniform ratio", ratios)
        return {n: r for n in names}
    if isinstance(ratios, Mapping):
        given = dict(ratios)
    elif isinstance(ratios, Sequence) and not isinstance(ratios, str):
        if arch == "resnet18":
            keys = [f"{b}.conv1" for b in RESNET18_BLOCKS]
            form = "8 per-block ratios (layer1.0 .. layer4.1; each prunes its block's conv1)"
        elif arch in ("vgg16", "vgg16_bn"):
            keys = names
            form = f"{len(names)} per-conv ratios ({names[0]} .. {names[-1]})"
        else:
            raise ValueError("a list of ratios is only defined for resnet18 (per block) and vgg16 / vgg16_bn "
                             "(per conv); pass a dict by layer name instead")
        if len(ratios) != len(keys):
            raise ValueError(f"{arch} takes {form}; got a list of {len(ratios)}")
        given = dict(zip(keys, ratios))
    else:
        raise ValueError(f"ratios must be a float, a dict by conv name or a list; got {type(ratios).__name__}")
    unknown = [k for k in given if k not in pruner.convs]
    if unknown:
        raise ValueError(f"unknown conv layer(s) {unknown}; valid names: {names}")
    given = {k: check_ratio(k, v) for k, v in given.items()}
    out = {}
    for s, members in pruner.sets.items():
        values = {given[m] for m in members if m in given}
        if len(values) > 1:
            detail = {m: given[m] for m in members if m in given}
            raise ValueError(f"coupled convs share their output channels and need one ratio; got {detail} "
                             f"(the set is {list(members)})")
        r = values.pop() if values else 0.0
        out.update((m, r) for m in members)
    return {n: out[n] for n in names}


def expand_ratios(arch: str, model: nn.Module, ratios) -> dict[str, float]:
    """Every conv layer's channel ratio, from any accepted form; validates without touching the model.

    Forms: a float (every conv, residual streams included); a dict by conv name (unnamed convs keep all
    channels; naming one conv of a coupled set prunes the whole set, and members named twice must agree);
    for resnet18 a list of 8 per-block ratios, each pruning the block's `conv1` output channels only,
    which leaves the residual stream (stem, every `conv2`, downsample convs) as it is: prune that per
    stage by name or with `resnet18_ratios(blocks, stages)`; for vgg16 / vgg16_bn a list of 13 per-conv
    ratios. Ratios are channel ratios in [0, 1).
    """
    found = arch_of(model)
    if found is not None and found != arch:
        raise ValueError(f"the model is a {found}, not a {arch}")
    return _expand(arch, ChannelPruner(model), ratios)


def _keep(n: int, ratio: float, round_to: int | None) -> int:
    keep = int(round(n * (1 - ratio)))
    if round_to and keep > 0:
        keep = min(n, max(round_to, round_to * int(round(keep / round_to))))
    return keep


def channel_targets(channels: Mapping[str, int], ratios: Mapping[str, float], round_to: int | None = None) -> dict[str, int]:
    """Output channels to keep per conv: round(n * (1 - ratio)), then to a multiple of `round_to`.

    A ratio that would leave a layer with no filter is an error, not a silent clamp.
    """
    if round_to is not None and (isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1):
        raise ValueError(f"round_to must be a positive integer or None, got {round_to!r}")
    out = {}
    for name, ratio in ratios.items():
        n = channels[name]
        if int(round(n * (1 - ratio))) < 1:
            raise ValueError(f"ratio {ratio} would leave {name} ({n} filters) with 0 filters; use at most "
                             f"{(n - 1) / n:.3f} for this layer")
        out[name] = _keep(n, ratio, round_to)
    return out


# ----------------------------------------------------------------------------- one-shot pruning
def check_criterion(criterion: str, data_for_taylor=None) -> None:
    """A known criterion, with the data it needs."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; choose one of {list(CRITERIA)}")
    if criterion == "taylor" and data_for_taylor is None:
        raise ValueError("criterion 'taylor' needs data_for_taylor (a Split or (x, y) batches) to compute gradients")


def prune(model: nn.Module, ratios, *, criterion: str = "l1", round_to: int | None = None,
          example_inputs: torch.Tensor | None = None, data_for_taylor=None, seed: int = 0) -> nn.Module:
    """Remove the least important output channels of each conv, in place; returns `model`.

    `ratios` are CHANNEL ratios in any form `expand_ratios` accepts (a conv pruned by p on both its
    inputs and outputs keeps ~(1 - p)^2 of its parameters). Importance is measured once, on the model as
    given, before anything is removed. The classifier's outputs are never pruned: only conv output
    channels are, with their BNs and consumers following. Every input is validated before the model
    changes. Parameters are replaced, so build optimizers afterwards.
    """
    check_criterion(criterion, data_for_taylor)
    pruner = ChannelPruner(model, example_inputs)
    ratios = _expand(arch_of(model), pruner, ratios)
    targets = channel_targets({n: c.out_channels for n, c in pruner.convs.items()}, ratios, round_to)
    pruner.apply(pruner.plan(targets, criterion), criterion, data_for_taylor=data_for_taylor, seed=seed)
    return model


def prune_to_channels(model: nn.Module, channels: Mapping[str, int], *, criterion: str = "l1",
                      example_inputs: torch.Tensor | None = None, data_for_taylor=None, seed: int = 0) -> nn.Module:
    """Like `prune`, but with the number of output channels to keep per conv (coupled convs must agree)."""
    check_criterion(criterion, data_for_taylor)
    pruner = ChannelPruner(model, example_inputs)
    pruner.apply(pruner.plan(channels, criterion), criterion, data_for_taylor=data_for_taylor, seed=seed)
    return model


# ----------------------------------------------------------------------------- default configurations
# Fixed configurations per architecture; `default_configs(arch, scan)` adds a fourth, `sensitivity`, from a
# sensitivity scan. `per_block` doubles the classic increasing-with-depth [0.1, 0.1, 0.2, ..., 0.3, 0.3].
_R18_PER_BLOCK = [0.1, 0.1, 0.2, 0.2, 0.2, 0.2, 0.3, 0.3]
DEFAULT_CONFIGS: dict[str, dict[str, object]] = {
    "resnet18": {
        "uniform": 0.5,
        "per_block": resnet18_ratios([2 * r for r in _R18_PER_BLOCK], [0.2, 0.2, 0.4, 0.6]),
        # >= 19x fewer MACs and >= 50x fewer parameters on the full-width model (tests/test_pruning.py)
        "aggressive": resnet18_ratios([0.7, 0.7, 0.8, 0.8, 0.85, 0.85, 0.9, 0.9], [0.7, 0.75, 0.85, 0.9]),
    },
    "vgg16": {
        "uniform": 0.5,
        "increasing": [0.3, 0.3, 0.4, 0.4, 0.5, 0.5, 0.5, 0.6, 0.7, 0.7, 0.8, 0.8, 0.8],
        # >= 8x fewer MACs and >= 50x fewer parameters on the full-width model (tests/test_pruning.py)
        "aggressive": [0.5, 0.6, 0.6, 0.6, 0.7, 0.75, 0.85, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9],
    },
}
DEFAULT_CONFIGS["vgg16_bn"] = DEFAULT_CONFIGS["vgg16"]
TARGET_REDUCTION = {"resnet18": {"macs": 19, "params": 50}, "vgg16": {"macs": 8, "params": 50},
                    "vgg16_bn": {"macs": 8, "params": 50}}


def default_configs(arch: str, scan: pd.DataFrame | None = None, max_drop: float = 1.0) -> dict[str, object]:
    """The fixed configurations of `arch`, plus `sensitivity` (from a scan's accuracy budget) when given."""
    if arch not in DEFAULT_CONFIGS:
        raise ValueError(f"no default configurations for {arch!r}; choose one of {sorted(DEFAULT_CONFIGS)}")
    configs = dict(DEFAULT_CONFIGS[arch])
    if scan is not None:
        from .importance import ratios_from_sensitivity

        configs["sensitivity"] = ratios_from_sensitivity(scan, max_drop)
    return configs


# ----------------------------------------------------------------------------- iterative rounds
def round_ratios(ratios: Mapping[str, float], rounds: int) -> list[dict[str, float]]:
    """Cumulative channel ratio per layer after each round (torch-pruning's linear schedule): round k of
    N reaches k/N of the target, always relative to the unpruned model."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    per_layer = {n: tp.pruner.algorithms.scheduler.linear_scheduler(r, rounds) for n, r in ratios.items()}
    return [{n: s[k] for n, s in per_layer.items()} for k in range(1, rounds + 1)]


def fingerprint(model: nn.Module) -> str:
    """A hash of the weights and their names: identifies a baseline in cache keys."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass
class PruneResult:
    rounds: pd.DataFrame  # one row per (config, round), round 0 = the unpruned baseline
    channels: pd.DataFrame  # tidy: config, round, layer, channels
    checkpoints: dict = field(default_factory=dict)  # (config, round) -> checkpoint path (round >= 1)


ROUND_COLUMNS = ["config", "round", "criterion", "distill", "params", "macs", "size_mb", "gzip_mb",
                 "param_reduction", "mac_reduction", "test_top1", "test_top5", "final_val_top1", "best_val_top1",
                 "mean_val_top1", "train_seconds"]


def _width_of(model: nn.Module) -> float:
    """The `build_model` width of an unpruned model (its first conv has 64 * width filters)."""
    return next(iter(conv_layers(model).values())).out_channels / 64


def prune_rounds(session, baseline: nn.Module, configs: Mapping[str, object], rounds: int | None = None, *,
                 distill: bool | None = None, criterion: str = "l1", round_to: int | None = None,
                 data_for_taylor=None, out_dir: str | Path | None = None, progress: bool = True,
                 **finetune_overrides) -> PruneResult:
    """Prune each configuration from `baseline` over `rounds` rounds, fine-tuning after every round.

    Round k prunes every layer to k/N of its target channel ratio (`round_ratios`), then fine-tunes with
    `TrainConfig.finetune_from_profile` (distilling from the unpruned baseline when `distill`), then
    measures. Each (config, round) is a cached step keyed on the session, baseline weights, ratios,
    schedule and fine-tune recipe; a round starts from the previous round's checkpoint, so a rerun
    resumes where it stopped. `baseline` itself is never modified. With `out_dir`, writes
    `prune_rounds.csv`, `prune_channels.csv` and `checkpoints/<config>-round<k>.pt`.
    """
    s = session
    rounds = s.profile.prune_rounds if rounds is None else rounds
    distill = s.profile.distill if distill is None else distill
    check_criterion(criterion, data_for_taylor)
    arch = arch_of(baseline)
    base_pruner = ChannelPruner(baseline)
    base_channels = {n: c.out_channels for n, c in base_pruner.convs.items()}
    expanded = {}
    for name, ratios in configs.items():  # validate every configuration before any training
        expanded[name] = _expand(arch, base_pruner, ratios)
        schedule = round_ratios(expanded[name], rounds)
        for k, step in enumerate(schedule, 1):
            base_pruner.plan(channel_targets(base_channels, step, round_to), criterion)
    width = _width_of(baseline)
    cfg = TrainConfig.finetune_from_profile(s.profile, arch=arch, seed=s.seed, progress=progress, **finetune_overrides)
    base_id = fingerprint(baseline)
    teacher = baseline if distill else None

    baseline = baseline.to(s.device)
    base_cost = model_summary(baseline)
    base_test, base_val = evaluate(baseline, s.data.test), evaluate(baseline, s.data.val)
    rows, channel_rows, checkpoints = [], [], {}
    for name, ratios in expanded.items():
        rows.append({"config": name, "round": 0, "criterion": criterion, "distill": distill, **base_cost,
                     "param_reduction": 1.0, "mac_reduction": 1.0, "test_top1": base_test["top1"],
                     "test_top5": base_test["top5"], "final_val_top1": base_val["top1"],
                     "best_val_top1": base_val["top1"], "mean_val_top1": base_val["top1"], "train_seconds": 0.0})
        channel_rows += [{"config": name, "round": 0, "layer": n, "channels": c} for n, c in base_channels.items()]
        previous = None  # folder of the previous round's step; None: start from the baseline
        for k, step in enumerate(round_ratios(ratios, rounds), 1):
            targets = channel_targets(base_channels, step, round_to)
            key = s.key(step="prune_round", baseline=base_id, config=name, ratios=ratios, rounds=rounds, round=k,
                        criterion=criterion, round_to=round_to, distill=distill,
                        finetune=cfg.to_dict() | {"progress": None, "desc": None})

            def compute(folder: Path, k=k, targets=targets, previous=previous, name=name) -> None:
                model = (load_checkpoint(previous / "model.pt", arch)[0] if previous is not None
                         else copy.deepcopy(baseline)).to(s.device)
                prune_to_channels(model, targets, criterion=criterion, data_for_taylor=data_for_taylor, seed=s.seed + k)
                run_cfg = TrainConfig(**{**cfg.to_dict(), "desc": f"{name} round {k}/{rounds}"})
                result = fit(model, s.data, run_cfg, teacher=teacher, device=s.device)
                record = {"config": name, "round": k, "criterion": criterion, "distill": distill,
                          **model_summary(model), **{c: result.summary()[c] for c in (
                              "test_top1", "test_top5", "final_val_top1", "best_val_top1", "mean_val_top1",
                              "train_seconds")}}
                chans = {n: c.out_channels for n, c in conv_layers(model).items()}
                save_checkpoint(model, folder / "model.pt", arch, width,
                                meta={"stage": "pruned", "config": name, "round": k, "channels": chans})
                prov = s.provenance({"step": "prune_round", "config": name, "round": k, "finetune": cfg.to_dict()})
                write_table(folder / "history.csv", result.history, prov)
                write_json(folder / "record.json", {"record": record, "channels": chans, "provenance": prov})

            folder, _ = s.cache.run("prune_round", key, compute)
            previous = folder
            stored = read_json(folder / "record.json")
            record = stored["record"]
            record["param_reduction"] = base_cost["params"] / record["params"]
            record["mac_reduction"] = base_cost["macs"] / record["macs"]
            rows.append(record)
            channel_rows += [{"config": name, "round": k, "layer": n, "channels": c} for n, c in stored["channels"].items()]
            checkpoints[(name, k)] = folder / "model.pt"

    result = PruneResult(pd.DataFrame(rows, columns=ROUND_COLUMNS),
                         pd.DataFrame(channel_rows, columns=["config", "round", "layer", "channels"]), checkpoints)
    if out_dir is not None:
        write_prune_outputs(session, result, out_dir, {"configs": expanded, "rounds": rounds, "criterion": criterion,
                                                       "round_to": round_to, "distill": distill, "baseline": base_id,
                                                       "finetune": cfg.to_dict()})
    return result


def write_prune_outputs(session, result: PruneResult, out_dir: str | Path, config: dict) -> Path:
    """The two tidy tables (with provenance) and a copy of every round's checkpoint under `out_dir`."""
    out = Path(out_dir)
    prov = session.provenance({"step": "prune_rounds", **config})
    write_table(out / "prune_rounds.csv", result.rounds, prov)
    write_table(out / "prune_channels.csv", result.channels, prov)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    for (name, k), path in result.checkpoints.items():
        shutil.copyfile(path, out / "checkpoints" / f"{name}-round{k}.pt")
    return out
