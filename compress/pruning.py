"""Structured (channel) pruning on torch-pruning's dependency graph: a model and ratios in, a smaller model out.

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
agree, importance is measured once on the model as given, and the scan in `sensitivity.py` can reuse
one graph for a whole sweep of ratios.

Pruning replaces parameters (`step()` in torch-pruning's words): build any optimizer after pruning
(`train.fit` builds its own, so fine-tuning with it is safe). Ratio forms and schedules are in `ratios.py`;
prune + fine-tune rounds, with their cache, are a step (`steps/pruning.py`).
"""
from __future__ import annotations

import copy
import math
import numbers
import zlib
from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from .data import Batches, Split
from .models import VGG, ResNet18, conv_layers, example_input
from .ratios import channel_targets, expand

CRITERIA = ("l1", "l2", "random", "bn_scale", "taylor", "group_l2")


# ----------------------------------------------------------------------------- architecture helpers
def arch_of(model: nn.Module) -> str | None:
    """`resnet18`, `vgg16` or `vgg16_bn` for models built by `models.build_model`, else None."""
    if isinstance(model, ResNet18):
        return "resnet18"
    if isinstance(model, VGG):
        return "vgg16_bn" if any(isinstance(m, nn.BatchNorm2d) for m in model.modules()) else "vgg16"
    return None


# ----------------------------------------------------------------------------- importance criteria
class FilterNorm(tp.importance.Importance):
    """Li et al. 2017: sum of |w|^p over a channel's filter, summed over every conv that writes the channel
    (a depthwise conv writes the channel its producer wrote, so its one-input filter counts too).

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
            if isinstance(layer, nn.Conv2d) and item.dep.handler in (tp.prune_conv_out_channels,
                                                                     tp.prune_depthwise_conv_out_channels):
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
    (Molchanov et al. 2019; gradients must be present); random: seeded uniform scores; group_l2: torch-pruning's
    `GroupMagnitudeImportance(p=2)`, squared L2 norm over every layer of the group (consumers' inputs and BN
    included), averaged: the peer's importance (`peer.py`), so its channels go by its own ranking.
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
    if criterion == "group_l2":
        return tp.importance.GroupMagnitudeImportance(p=2)
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
        except Exception as e:  # noqa: BLE001 - one line, not a trace from inside the engine
            raise ValueError(f"cannot prune this model: torch-pruning cannot trace it ({type(e).__name__}: "
                             f"{_one_line(e)})") from None
        finally:
            model.train(was_training)  # tracing switches the model to eval mode
        self.sets: dict[str, tuple[str, ...]] = {}  # first conv in forward order -> every coupled conv
        self.set_of: dict[str, str] = {}
        names = {m: n for n, m in self.convs.items()}
        writes = (tp.prune_conv_out_channels, tp.prune_depthwise_conv_out_channels)  # a depthwise conv's outputs are its inputs
        for name, conv in self.convs.items():
            if name in self.set_of:
                continue
            try:
                group = self._group(name)
            except Exception as e:  # the graph could not follow this layer's channels: say which and why
                raise ValueError(f"cannot prune layer {name!r}: torch-pruning cannot trace its channels "
                                 f"({type(e).__name__}: {_one_line(e)})") from None
            members = {names[item.dep.target.module] for item in group
                       if item.dep.target.module in names and item.dep.handler in writes}
            members.add(name)
            ordered = tuple(n for n in self.convs if n in members)
            self.sets[name] = ordered
            self.set_of.update((m, name) for m in ordered)
        self.groups: dict[str, int] = {}  # set -> conv groups its channels are split into (1: any channel may go)
        self.frozen: dict[str, str] = {}  # set -> why its channels cannot move
        for s in self.sets:
            self.groups[s], reason = self._grouping(s)
            if reason:
                self.frozen[s] = reason
        self._size = {s: self.convs[s].out_channels for s in self.sets}  # at construction, as `remove`'s indices
        self._alive = {s: list(range(n)) for s, n in self._size.items()}
        self._removed = False

    def _grouping(self, s: str) -> tuple[int, str | None]:
        """How the channels of set `s` are split by grouped convs (not depthwise: those lose channels one by one,
        together with their producer): a grouped conv of g groups reads or writes them in g equal blocks, and
        every block must keep the same size (and, for its inputs, the same positions: one weight tensor serves
        every group). Returns (g, None), or (g, reason) where the set cannot lose a channel."""
        n, g = self.channels(s), 1
        names = {m: k for k, m in self.convs.items()}
        for item in self._group(s):
            m, handler = item.dep.target.module, item.dep.handler
            if not isinstance(m, nn.Conv2d) or m.groups == 1 or handler not in (tp.prune_conv_out_channels,
                                                                               tp.prune_conv_in_channels):
                continue
            side = m.out_channels if handler == tp.prune_conv_out_channels else m.in_channels
            if len(item.idxs) != side:  # e.g. a grouped conv reading a concatenation: blocks and channels do not line up
                return n, (f"grouped conv {names.get(m, type(m).__name__)} ({m.groups} groups) sees only "
                           f"{len(item.idxs)} of its {side} channels through this set, so its groups cannot stay equal")
            g = math.lcm(g, m.groups)
        if any(isinstance(item.dep.target.module, tp.ops._OutputOp) for item in self._group(s)):
            return n, "no layer reads its channels: they are the model's outputs (a conv classifier keeps its classes)"
        if n % g:
            return n, f"its {n} channels do not split into {g} equal conv groups"
        if g == n:
            return n, f"a grouped conv ({g} groups) has one channel per group here; only whole groups could go"
        return g, None

    def _group(self, name: str, idxs: Sequence[int] | None = None):
        conv = self.convs[name]
        return self.graph.get_pruning_group(conv, tp.prune_conv_out_channels,
                                            list(range(conv.out_channels)) if idxs is None else list(idxs))

    def channels(self, name: str) -> int:
        return self.convs[name].out_channels

    def set_has_batchnorm(self, name: str) -> bool:
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
            if keep < n and s in self.frozen:
                raise ValueError(f"cannot prune layer {s!r}: {self.frozen[s]}")
            g = self.groups[s]
            if keep % g:
                raise ValueError(f"{s}: its channels feed or leave a grouped conv of {g} groups, so it keeps a multiple "
                                 f"of {g} (every group the same size); asked for {keep}")
            if keep < n:
                plan[s] = int(keep)
        if criterion == "bn_scale":
            no_bn = [s for s in plan if not self.set_has_batchnorm(s)]
            if no_bn:
                raise ValueError(f"criterion 'bn_scale' ranks channels by their BatchNorm scale, but {no_bn[:3]} "
                                 f"have no BatchNorm (vgg16 has none: use vgg16_bn or another criterion)")
        return plan

    def apply(self, plan: Mapping[str, int], criterion: str = "l1", *, data_for_taylor=None, seed: int = 0) -> None:
        """Score every planned set first, then remove each set's least important channels."""
        scores = self.scores(plan, criterion, data_for_taylor=data_for_taylor, seed=seed)
        for s, keep in plan.items():
            self.remove(s, self.ranking(s, scores[s])[: self.channels(s) - keep])

    def ranking(self, name: str, scores: torch.Tensor) -> list[int]:
        """Channels of the set containing `name`, least important first (ties by index). In a set split into g
        conv groups a channel's score is the mean of its position over the groups (as torch-pruning ranks
        grouped convs) and positions go whole: the g channels of the weakest position, then the next."""
        s = self.set_of[name]
        g = self.groups[s]
        if g == 1:
            return torch.argsort(scores, stable=True).tolist()
        per = len(scores) // g
        positions = torch.argsort(scores.view(g, per).mean(0), stable=True).tolist()
        return [p + k * per for p in positions for k in range(g)]

    def position_scores(self, name: str, scores: torch.Tensor) -> torch.Tensor:
        """Per-channel scores with every channel given its position's mean over the set's conv groups (as
        `ranking` ranks them); unchanged for sets of one group."""
        g = self.groups[self.set_of[name]]
        if g == 1:
            return scores
        return scores.view(g, -1).mean(0).repeat(g)

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
        if s in self.frozen:
            raise ValueError(f"cannot prune layer {s!r}: {self.frozen[s]}")
        g = self.groups[s]
        if g > 1:
            per = self._size[s] // g
            if set(drop) != {p % per + k * per for p in drop for k in range(g)}:
                raise ValueError(f"{s}: channels feed or leave a grouped conv of {g} groups, so each removed position "
                                 f"goes from every group (channel c with c + {per}, c + {2 * per}, ...)")
        group = self._group(s, [position[i] for i in drop])
        if not self.graph.check_pruning_group(group):
            raise RuntimeError(f"torch-pruning refused to prune {s!r}: a coupled layer would lose every channel")
        try:
            group.prune()
        except Exception as e:  # an op the engine cannot resize: name the set, not a library's index error
            raise ValueError(f"cannot prune layer {s!r}: torch-pruning failed to remove its channels "
                             f"({type(e).__name__}: {_one_line(e)})") from None
        self._removed = True
        gone = set(drop)
        self._alive[s] = [c for c in alive if c not in gone]


def _one_line(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------- ratios on a real model
def _expand(arch: str | None, pruner: ChannelPruner, ratios) -> dict[str, float]:
    return expand(arch, list(pruner.convs), pruner.sets, ratios)


def expand_ratios(arch: str, model: nn.Module, ratios) -> dict[str, float]:
    """Every conv layer's channel ratio, from any form `ratios.expand` accepts, checked against this model's
    layers and coupled channel sets; validates without touching the model."""
    found = arch_of(model)
    if found is not None and found != arch:
        raise ValueError(f"the model is a {found}, not a {arch}")
    return _expand(arch, ChannelPruner(model), ratios)


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
    targets = channel_targets({n: c.out_channels for n, c in pruner.convs.items()}, ratios, round_to,
                              {n: pruner.groups[s] for n, s in pruner.set_of.items() if s not in pruner.frozen})
    _apply_checked(pruner, pruner.plan(targets, criterion), criterion, example_inputs, data_for_taylor, seed)
    return model


def prune_to_channels(model: nn.Module, channels: Mapping[str, int], *, criterion: str = "l1",
                      example_inputs: torch.Tensor | None = None, data_for_taylor=None, seed: int = 0) -> nn.Module:
    """Like `prune`, but with the number of output channels to keep per conv (coupled convs must agree)."""
    check_criterion(criterion, data_for_taylor)
    pruner = ChannelPruner(model, example_inputs)
    _apply_checked(pruner, pruner.plan(channels, criterion), criterion, example_inputs, data_for_taylor, seed)
    return model


def _apply_checked(pruner: ChannelPruner, plan: Mapping[str, int], criterion: str, example_inputs, data_for_taylor,
                   seed: int) -> None:
    """`pruner.apply`, then one forward pass: a model the engine cannot prune (an op it does not know, a
    hard-coded channel count) is put back as it was and refused with one line naming the first set whose
    removal alone breaks it, instead of a library's index error now or a shape error at the next forward."""
    if not plan:
        return
    model = pruner.model
    device = next(model.parameters()).device
    example = example_input(1, device) if example_inputs is None else example_inputs[:1]
    backup = copy.deepcopy(model)
    try:
        pruner.apply(plan, criterion, data_for_taylor=data_for_taylor, seed=seed)
        _forward(model, example)
    except Exception as error:  # noqa: BLE001 - any failure becomes one line naming the layer
        model.__dict__.update(backup.__dict__)  # the model as it was: submodules, parameters, buffers
        if isinstance(error, ValueError) and str(error).startswith("cannot prune"):
            raise
        raise _culprit(backup, plan, example, error) from None


def _forward(model: nn.Module, example: torch.Tensor) -> None:
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)


def _culprit(model: nn.Module, plan: Mapping[str, int], example: torch.Tensor, error: Exception) -> ValueError:
    """The first set of `plan` whose pruning alone (on a copy of `model`) breaks the model, as one line."""
    for s, keep in plan.items():
        work = copy.deepcopy(model)
        try:
            pruner = ChannelPruner(work, example)
            pruner.remove(s, pruner.ranking(s, torch.arange(pruner.channels(s), 0, -1).float())[: pruner.channels(s) - keep])
            _forward(work, example)
        except Exception as e:  # noqa: BLE001
            if isinstance(e, ValueError) and str(e).startswith("cannot prune"):
                return e
            return ValueError(f"cannot prune layer {s!r}: removing its channels breaks the model, probably an op the pruning "
                              f"engine cannot resize ({type(e).__name__}: {_one_line(e)})")
    return ValueError(f"cannot prune this model: after pruning, its forward pass fails ({type(error).__name__}: "
                      f"{_one_line(error)})")


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def match_activation_scale(pruned: nn.Module, reference: nn.Module, inputs: torch.Tensor) -> dict[str, float]:
    """Rescale each conv / linear of `pruned` (weight and bias) so the std of its outputs on `inputs` matches
    the layer of the same name in `reference` (the model before this pruning step), in forward order.

    Why: without BN, a layer that loses most of its inputs loses most of its output scale, and the loss compounds
    layer by layer until the biases drown the signal: a VGG16 pruned from 282 to 51 filters per late layer
    predicted one class for every image, and fine-tuning could not recover it (train accuracy stayed at 10%).
    With ReLU a positive scale passes through, so restoring each layer's scale restores the signal-to-bias
    balance the trained weights expect. BN models renormalise by themselves: leave them as they are.
    Returns {layer: scale applied}.
    """
    kinds = (nn.Conv2d, nn.Linear)
    ref_layers = {n: m for n, m in reference.named_modules() if isinstance(m, kinds)}
    layers = [(n, m) for n, m in pruned.named_modules() if isinstance(m, kinds) and n in ref_layers]

    def output_std(model: nn.Module, modules: dict[str, nn.Module]) -> dict[str, float]:
        found = {}
        hooks = [m.register_forward_hook(lambda _m, _i, out, n=n: found.__setitem__(n, out.float().std().item()))
                 for n, m in modules.items()]
        was_training = model.training
        model.eval()
        try:
            model(inputs)
        finally:
            model.train(was_training)
            for h in hooks:
                h.remove()
        return found

    target = output_std(reference, ref_layers)
    scales = {}
    for name, layer in layers:  # one layer at a time: each sees the corrected layers before it
        now = output_std(pruned, {name: layer})[name]
        if not (now > 0 and target[name] > 0):
            continue
        scales[name] = target[name] / now
        layer.weight.mul_(scales[name])
        if layer.bias is not None:
            layer.bias.mul_(scales[name])
    return scales
