"""Pruning to a budget: "4x fewer MACs" (or parameters) in, per-layer channel counts out.

A user of a pruning tool asks for a cost, not for thirteen ratios. `allocate` finds how many channels each
channel set keeps so the pruned model lands within `tolerance` (1%) of the target, by one of three rules:

* `uniform`: one channel ratio everywhere, found by bisection (the control every allocation must beat);
* `global`: every channel's importance (L1 filter norm by default) divided by its layer's mean, ranked across
  all layers, the weakest removed first; a per-layer cap (`max_ratio`) so no layer is emptied;
* `sensitivity`: NetAdapt-like, guided by a validation sensitivity scan (`sensitivity.sensitivity_scan`):
  repeatedly take channels from the set whose scanned accuracy drop grows least per MAC saved;
* `torch-pruning`: the peer, torch-pruning's own global pruner as its authors run it on CIFAR (`peer.py`);
  its counts are its own (no per-layer cap, no `fill` of ours), landed within 1% by its own last step.

The search runs on a cost model (MACs and parameters as functions of the channels each set keeps, read off
torch-pruning's dependency graph and one traced forward pass), so thousands of candidate allocations cost
milliseconds; the answer is then pruned for real and counted with `metrics.count_macs` / `count_params`,
the counters of every table, and a model the cost model mispredicts is corrected against those counts.
Coupled channels (residual sets) move together because the unit is the set; `round_to` keeps multiples of
8 or 16 channels where a runtime wants them. Works on any CNN `pruning.ChannelPruner` handles.
"""
from __future__ import annotations

import copy
import math
import numbers
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch_pruning as tp
from torch import nn

from . import peer
from .metrics import count_macs, count_params
from .models import example_input
from .profiles import BUDGET_METHODS as METHODS
from .pruning import ChannelPruner, check_criterion, prune_to_channels

METRICS = ("macs", "params")
NOUNS = {"macs": "MACs", "params": "parameters"}  # the metrics as the tables and the panel write them
TOLERANCE = 0.01
MAX_RATIO = 0.9  # our methods' default per-layer cap (the peer runs without one, as its authors do)


# ----------------------------------------------------------------------------- the target
@dataclass(frozen=True)
class Target:
    """A cost to reach: `value` times fewer (`factor`) or an absolute count of MACs or parameters."""

    metric: str = "macs"
    value: float = 2.0
    factor: bool = True

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"unknown budget metric {self.metric!r}; choose one of {list(METRICS)}")
        v = self.value
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"a {self.noun} budget must be a positive number, got {v!r}")
        if self.factor and v < 1:
            raise ValueError(f"a reduction factor below 1x ({v}x) would grow the model; ask for 1x or more")

    @classmethod
    def parse(cls, text, metric: str = "macs") -> "Target":
        """`4x` (4 times fewer), `25M` / `1.5G` / `25e6` / `25000000` (an absolute count)."""
        if isinstance(text, Target):
            return text
        if isinstance(text, numbers.Real) and not isinstance(text, bool):
            return cls(metric, float(text), True)
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([xXkKmMgG]?)\s*", str(text))
        if not m:
            raise ValueError(f"a {NOUNS.get(metric, metric)} budget is a factor such as 4x or a count such as 25M; got {text!r}")
        number, unit = float(m.group(1)), m.group(2).lower()
        if unit == "x":
            return cls(metric, number, True)
        return cls(metric, number * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[unit], False)

    def count(self, base: int) -> float:
        """The target as a count, for a model that has `base` of the metric now."""
        if not self.factor and self.value > base:
            raise ValueError(f"the target {self.value:,.0f} {self.noun} is above the model's {base:,}")
        return base / self.value if self.factor else float(self.value)

    def label(self) -> str:
        return f"{self.value:g}x" if self.factor else f"{self.value:,.0f}"

    @property
    def noun(self) -> str:
        return NOUNS[self.metric]

    def describe(self) -> str:
        """'4x fewer MACs' for a factor, '2,000,000 MACs' for a count (a count is what remains, not what goes)."""
        return f"{self.label()} fewer {self.noun}" if self.factor else f"{self.label()} {self.noun}"


# ----------------------------------------------------------------------------- the cost model
class CostModel:
    """MACs and parameters of the model for any channels kept per set, without pruning it.

    Removing c channels of a set removes c * (indices per channel) entries from every layer in its
    dependency group: output channels of its convs, BN entries, input channels of its consumers. A conv's
    MACs are positions x kernel area x inputs per group x outputs (the positions come from one forward pass),
    a linear layer's inputs x outputs; parameters count weights, biases and affine norm entries. Layers the
    graph does not couple keep their cost."""

    def __init__(self, pruner: ChannelPruner, example_inputs: torch.Tensor):
        self.sets = {s: pruner.channels(s) for s in pruner.sets}
        model = pruner.model
        positions: dict[nn.Module, int] = {}  # output positions per image: a conv's pixels, a linear layer's 1
        _observe(model, example_inputs, (nn.Conv2d, nn.Linear), lambda _n, mod, out: positions.__setitem__(
            mod, out[0].numel() // (mod.out_channels if isinstance(mod, nn.Conv2d) else mod.out_features)))
        norms = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
        self.layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear, *norms))
                       and any(p is not None for p in (getattr(m, "weight", None), getattr(m, "bias", None)))]
        self.positions = [positions.get(m, 0) for m in self.layers]
        index = {m: i for i, m in enumerate(self.layers)}
        # per set: (layer index, "in" | "out", entries removed per channel)
        self.effects: dict[str, list[tuple[int, str, float]]] = {}
        out_handlers = (tp.prune_conv_out_channels, tp.prune_linear_out_channels, tp.prune_batchnorm_out_channels,
                        tp.prune_depthwise_conv_out_channels, tp.prune_layernorm_out_channels,
                        tp.prune_groupnorm_out_channels)
        in_handlers = (tp.prune_conv_in_channels, tp.prune_linear_in_channels, tp.prune_depthwise_conv_in_channels)
        for s, n in self.sets.items():
            effects = []
            for item in pruner._group(s):
                m, handler = item.dep.target.module, item.dep.handler
                if m not in index:
                    continue
                side = "out" if handler in out_handlers else "in" if handler in in_handlers else None
                if side is not None:
                    effects.append((index[m], side, len(item.idxs) / n))
            self.effects[s] = effects

        # the same, as arrays: d_out = out_effect @ removed-per-set, and each layer's shape, so `cost` is a few
        # vector operations (the searches call it hundreds of thousands of times on a MobileNet)
        self._names = list(self.sets)
        self._sizes = np.array([self.sets[s] for s in self._names], dtype=float)
        self._out_effect = np.zeros((len(self.layers), len(self._names)))
        self._in_effect = np.zeros((len(self.layers), len(self._names)))
        for j, s in enumerate(self._names):
            for i, side, per in self.effects[s]:
                (self._out_effect if side == "out" else self._in_effect)[i, j] += per
        shape = {"out": [], "in": [], "groups": [], "area": [], "bias": [], "depthwise": [], "dense": [], "affine": []}
        for m in self.layers:
            conv, linear = isinstance(m, nn.Conv2d), isinstance(m, nn.Linear)
            if conv or linear:
                shape["out"].append(m.out_channels if conv else m.out_features)
                shape["in"].append(m.in_channels if conv else m.in_features)
                shape["groups"].append(m.groups if conv else 1)
                shape["area"].append(m.kernel_size[0] * m.kernel_size[1] if conv else 1)
                shape["affine"].append(0)
            else:  # affine norm layers: weight and bias per channel
                shape["out"].append(m.num_channels if isinstance(m, nn.GroupNorm) else math.prod(m.normalized_shape)
                                    if isinstance(m, nn.LayerNorm) else m.num_features)
                shape["in"].append(0), shape["groups"].append(1), shape["area"].append(0)
                shape["affine"].append(sum(p is not None for p in (m.weight, m.bias)))
            shape["bias"].append(int((conv or linear) and m.bias is not None))
            # depthwise: a channel goes from its input, output and groups at once
            shape["depthwise"].append(conv and m.groups == m.out_channels > 1)
            shape["dense"].append(conv or linear)
        self._shape = {k: np.array(v, dtype=bool if k in ("depthwise", "dense") else float) for k, v in shape.items()}
        self._positions = np.array(self.positions, dtype=float)

    def cost(self, keep: dict[str, int]) -> tuple[float, float]:
        """(MACs, parameters) with `keep[set]` output channels per set (missing sets keep all)."""
        removed = self._sizes - np.array([keep.get(s, n) for s, n in zip(self._names, self._sizes)], dtype=float)
        d_out, d_in = self._out_effect @ removed, self._in_effect @ removed
        sh = self._shape
        dw = sh["depthwise"]
        out = sh["out"] - np.where(dw, np.maximum(d_out, d_in), d_out)
        # dense or grouped convs keep their groups, each with (inputs left) / groups inputs; depthwise ones keep 1
        per_group_in = np.where(dw, sh["in"] / sh["groups"], (sh["in"] - d_in) / sh["groups"])
        weights = np.where(sh["dense"], sh["area"] * per_group_in * out, 0.0)
        macs = float(np.sum(self._positions * weights))
        params = float(np.sum(weights + sh["bias"] * out + sh["affine"] * out))
        return macs, params


# ----------------------------------------------------------------------------- the answer
@dataclass
class Allocation:
    """Channels each set keeps for one target, with what the pruned model costs (counted, not estimated)."""

    method: str
    target: Target
    keep: dict  # set name -> output channels kept
    channels: dict  # conv name -> output channels kept (every member of a set alike)
    macs: int
    params: int
    base_macs: int
    base_params: int
    table: pd.DataFrame = field(repr=False, default=None)  # per conv: channels before/after, ratio, MACs share
    ratio: float | None = None  # the one ratio of `uniform`

    @property
    def mac_reduction(self) -> float:
        return self.base_macs / self.macs

    @property
    def param_reduction(self) -> float:
        return self.base_params / self.params

    def error(self) -> float:
        """Relative distance of the reached cost from the target (0.004: 0.4% off)."""
        reached = self.macs if self.target.metric == "macs" else self.params
        base = self.base_macs if self.target.metric == "macs" else self.base_params
        goal = self.target.count(base)
        return abs(reached - goal) / goal

    def ratios(self) -> dict[str, float]:
        """Channel ratio per conv (what `pruning.prune` takes): 1 - kept / original."""
        before = dict(zip(self.table.layer, self.table.channels_before))
        return {n: 1 - c / before[n] for n, c in self.channels.items()}


# ----------------------------------------------------------------------------- the search
class _Search:
    """Shared state of one allocation: the pruner, the cost model, bounds per set, the goal."""

    def __init__(self, model, target, example_inputs, max_ratio, round_to):
        if isinstance(max_ratio, bool) or not isinstance(max_ratio, numbers.Real) or not 0 < max_ratio < 1:
            raise ValueError(f"max_ratio (the per-layer cap) must lie in (0, 1), got {max_ratio!r}")
        if round_to is not None and (isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1):
            raise ValueError(f"round_to must be a positive integer or None, got {round_to!r}")
        self.model = model
        self.example = example_inputs if example_inputs is not None else example_input(1, next(model.parameters()).device)
        self.pruner = ChannelPruner(model, self.example)
        self.cost_model = CostModel(self.pruner, self.example)
        self.sizes = dict(self.cost_model.sets)
        # channels move in units: round_to, and for channels split into g conv groups a multiple of g (their lcm)
        groups = self.pruner.groups
        self.units = {s: math.lcm(round_to or 1, groups[s]) for s in self.sizes}
        # the fewest channels a set may keep: the cap, at least one unit, at most all of them (a frozen set: all)
        self.floor = {s: n if s in self.pruner.frozen else min(n, self._round_up(s, max(1, math.ceil(n * (1 - max_ratio)))))
                      for s, n in self.sizes.items()}
        self.target = target
        self.index = METRICS.index(target.metric)
        self.base_macs, self.base_params = count_macs(model, tuple(self.example[:1].shape)), count_params(model)
        self.goal = target.count(self.base_macs if target.metric == "macs" else self.base_params)
        self.max_ratio = max_ratio

    def _round_up(self, s: str, keep: int) -> int:
        unit = self.units[s]
        return unit * math.ceil(keep / unit) if unit > 1 else keep

    def rounded(self, s: str, keep: float) -> int:
        """`keep` channels of set `s` as a multiple of its unit, within the set's floor and size."""
        n, unit = self.sizes[s], self.units[s]
        k = int(round(keep))
        if unit > 1:
            k = unit * int(round(k / unit))
        return min(n, max(self.floor[s], k))

    def cost(self, keep: dict[str, int]) -> float:
        return self.cost_model.cost(keep)[self.index]

    def _valid(self, s: str, keep: int) -> bool:
        """Every conv group of the set keeps the same number of channels."""
        return keep % self.pruner.groups[s] == 0

    def check_reachable(self, goal: float) -> None:
        smallest = self.cost(self.floor)
        if smallest > goal * (1 + TOLERANCE):
            base = self.base_macs if self.index == 0 else self.base_params
            raise ValueError(f"{self.target.describe()} is unreachable: with every layer at the per-layer cap "
                             f"(max_ratio {self.max_ratio}) the model keeps {smallest:,.0f} {self.target.noun} "
                             f"({base / smallest:.1f}x fewer); ask for less or raise the per-layer cap")

    def fill(self, keep: dict[str, int], goal: float) -> dict[str, int]:
        """Move the cost to within half the tolerance of `goal`, one unit (a channel, or `round_to` of them) at a
        time: over the goal, take a unit from the set whose removal lands closest to it; under it, give a unit back
        to the set whose return lands closest without overshooting. Stops when no move gets closer. The method's
        allocation stays as it was up to these few units (at 32x, one channel of ResNet18's first stage is about
        1% of its MACs, so the methods' own searches cannot land within 1% alone)."""
        keep = dict(keep)
        for _ in range(10_000):
            now = self.cost(keep)
            if abs(now - goal) <= TOLERANCE * goal * 0.5:
                return keep
            best, best_gap = None, math.inf
            for s in keep:
                step = -self.units[s] if now > goal else self.units[s]
                k = keep[s] + step
                if k > self.sizes[s] and keep[s] < self.sizes[s]:
                    k = self.sizes[s]  # a set not a multiple of its unit returns to whole
                if not self.floor[s] <= k <= self.sizes[s] or not self._valid(s, k):
                    continue
                trial = self.cost({**keep, s: k})
                gap = abs(trial - goal)
                if now <= goal and trial > goal * (1 + TOLERANCE * 0.5):
                    continue
                if gap < best_gap:
                    best, best_gap = (s, k), gap
            if best is None or best_gap >= abs(now - goal):
                return keep
            keep[best[0]] = best[1]
        return keep


def _uniform(search: _Search, goal: float) -> tuple[dict[str, int], float]:
    lo, hi = 0.0, search.max_ratio  # cost falls as the ratio rises
    keep_at = lambda r: {s: search.rounded(s, n * (1 - r)) for s, n in search.sizes.items()}  # noqa: E731
    for _ in range(60):
        mid = (lo + hi) / 2
        if search.cost(keep_at(mid)) > goal:
            lo = mid
        else:
            hi = mid
    return keep_at(hi), hi


def _global(search: _Search, goal: float, criterion: str, data_for_taylor, seed: int) -> dict[str, int]:
    scores = search.pruner.scores([s for s in search.sizes if s not in search.pruner.frozen], criterion, data_for_taylor=data_for_taylor, seed=seed)
    units = []  # (normalised score of the unit's strongest channel, set): removing a unit removes `unit` channels
    for s, sc in scores.items():
        sc = search.pruner.position_scores(s, sc)  # grouped sets: positions go whole, ranked by their mean
        normalised = (sc / sc.mean().clamp_min(1e-12)).sort().values.tolist()
        n, floor, unit = search.sizes[s], search.floor[s], search.units[s]
        head = n % unit if unit > 1 else 0  # a set not a multiple of its unit drops its remainder first
        start = 0
        for size in ([head] if head else []) + [unit] * ((n - head) // unit):
            if n - (start + size) < floor:
                break
            units.append((normalised[start + size - 1], s, start + size))
            start += size
    units.sort(key=lambda u: u[0])

    def keep_after(k: int) -> dict[str, int]:
        keep = dict(search.sizes)
        for _score, s, removed in units[:k]:
            keep[s] = min(keep[s], search.sizes[s] - removed)
        return keep

    lo, hi = 0, len(units)  # smallest k whose cost is within the goal
    while lo < hi:
        mid = (lo + hi) // 2
        if search.cost(keep_after(mid)) > goal:
            lo = mid + 1
        else:
            hi = mid
    return keep_after(lo)


def _peer(search: _Search, goal: float, round_to: int | None) -> dict[str, int]:
    """The peer's channels per set: torch-pruning's pruner on a copy, stopped at `goal` by our cost model."""
    def keep_of(model: nn.Module) -> dict[str, int]:
        convs = dict(model.named_modules())
        return {s: convs[s].out_channels for s in search.sizes}

    pruned = peer.progressive_prune(search.model, goal, lambda m: search.cost(keep_of(m)), example_inputs=search.example,
                                    tolerance=TOLERANCE / 2, round_to=round_to)
    return keep_of(pruned)


def drop_curves(scan: pd.DataFrame, sets: dict[str, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per set, (channel ratio, accuracy drop) from a sensitivity scan: the drop from its ratio-0 accuracy, made
    non-decreasing (a noisy scan's bump is not a free lunch), clamped at 0, extended flat past the last ratio."""
    missing = {"group", "ratio", "top1"} - set(scan.columns)
    if missing:
        raise ValueError(f"the sensitivity scan lacks column(s) {sorted(missing)}; expected an sensitivity.sensitivity_scan table")
    curves = {}
    for s in sets:
        rows = scan[scan.group == s].drop_duplicates("ratio").sort_values("ratio")
        if rows.empty or 0.0 not in set(rows.ratio):
            raise ValueError(f"the sensitivity scan has no rows (with ratio 0) for channel set {s!r}; scan every set "
                             f"(sets: {list(sets)})")
        ref = float(rows.loc[rows.ratio == 0, "top1"].iloc[0])
        drop = np.maximum.accumulate(np.clip(ref - rows.top1.to_numpy(float), 0, None))
        curves[s] = (rows.ratio.to_numpy(float), drop)
    return curves


def _sensitivity(search: _Search, goal: float, scan: pd.DataFrame) -> dict[str, int]:
    curves = drop_curves(scan, search.sizes)
    keep = dict(search.sizes)

    def drop(s: str, k: int) -> float:
        x, y = curves[s]
        return float(np.interp(1 - k / search.sizes[s], x, y))

    now = search.cost(keep)
    while now > goal:
        best, best_key = None, None
        for s, n in search.sizes.items():
            unit = search.units[s]
            step = max(unit, unit * (n // (64 * unit)))  # ~1/64 of the set per move
            k = max(search.floor[s], keep[s] - step)
            if k % unit and k != n:  # from a whole set that is not a multiple of its unit: to the multiple below
                k = max(search.floor[s], unit * (k // unit))
            if k >= keep[s]:
                continue
            saved = now - search.cost({**keep, s: k})
            if saved <= 0:
                continue
            key = ((drop(s, k) - drop(s, keep[s])) / saved, -saved)  # least accuracy per MAC, then most MACs
            if best_key is None or key < best_key:
                best, best_key = (s, k), key
        if best is None:
            break
        keep[best[0]] = best[1]
        now = search.cost(keep)
    return keep


def allocate(model: nn.Module, target, method: str = "global", *, example_inputs: torch.Tensor | None = None,
             scan: pd.DataFrame | None = None, criterion: str = "l1", data_for_taylor=None, seed: int = 0,
             max_ratio: float | None = None, round_to: int | None = None) -> Allocation:
    """Channels to keep per set so that the pruned `model` reaches `target` within 1%; `model` is not changed.

    `target`: a `Target`, a factor (4 = 4x fewer MACs) or a string (`4x`, `25M`); `scan`: the validation
    sensitivity scan, for `sensitivity`; `criterion`: the channel importance of `global` (see `pruning.CRITERIA`);
    `max_ratio`: no set loses more than this share of its channels (default `MAX_RATIO`; the peer takes none);
    `round_to`: channels kept per set are multiples of it (a set smaller than it is left whole)."""
    if method not in METHODS:
        raise ValueError(f"unknown allocation method {method!r}; choose one of {list(METHODS)}")
    if method == peer.METHOD and max_ratio is not None:
        raise ValueError(f"method {peer.METHOD!r} runs as its authors' CIFAR script does, without a per-layer cap; "
                         f"leave max_ratio out")
    target = Target.parse(target)
    if method == "sensitivity" and scan is None:
        raise ValueError("method 'sensitivity' needs the validation sensitivity scan (sensitivity.sensitivity_scan)")
    if method == "global":
        check_criterion(criterion, data_for_taylor)
    search = _Search(model, target, example_inputs, MAX_RATIO if max_ratio is None else max_ratio, round_to)
    if method != peer.METHOD:  # the peer has no cap: it says itself when it cannot get there
        search.check_reachable(search.goal)
    goal, ratio = search.goal, None
    for _ in range(4):  # the cost model is checked against a real prune; a mismatch rescales the goal
        if method == "uniform":
            keep, ratio = _uniform(search, goal)
        elif method == "global":
            keep = _global(search, goal, criterion, data_for_taylor, seed)
        elif method == peer.METHOD:
            keep = _peer(search, goal, round_to)
        else:
            keep = _sensitivity(search, goal, scan)
        if method != peer.METHOD:  # the peer lands by its own last step: its counts stay its own
            keep = search.fill(keep, goal)
        allocation = _measure(search, method, target, keep, ratio)
        reached = allocation.macs if search.index == 0 else allocation.params
        predicted = search.cost(keep)
        if allocation.error() <= TOLERANCE or predicted <= 0 or abs(predicted - reached) <= 0.5:
            break
        goal *= predicted / reached
    if allocation.error() > TOLERANCE:
        raise ValueError(f"could not reach {target.describe()} within {TOLERANCE:.0%} "
                         f"(closest: {allocation.error():.1%} off){' with round_to ' + str(round_to) if round_to else ''}")
    return allocation


def _measure(search: _Search, method: str, target: Target, keep: dict[str, int], ratio) -> Allocation:
    """Prune a copy for real and count it: the numbers every table reports."""
    channels = {conv: keep[s] for s, members in search.pruner.sets.items() for conv in members}
    pruned = prune_to_channels(copy.deepcopy(search.model), channels, example_inputs=search.example)
    macs, params = count_macs(pruned, tuple(search.example[:1].shape)), count_params(pruned)
    per_layer = _layer_macs(search.model, search.example), _layer_macs(pruned, search.example)
    before = {n: c for s, members in search.pruner.sets.items() for n, c in ((m, search.sizes[s]) for m in members)}
    rows = [{"layer": n, "set": search.pruner.set_of[n], "channels_before": before[n], "channels_after": channels[n],
             "ratio": 1 - channels[n] / before[n], "macs_before": per_layer[0].get(n, 0), "macs_after": per_layer[1].get(n, 0)}
            for n in search.pruner.convs]
    table = pd.DataFrame(rows)
    table["mac_share"] = table.macs_after / macs
    return Allocation(method, target, dict(keep), channels, macs, params, search.base_macs, search.base_params, table, ratio)


def _layer_macs(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """Each conv's MACs for one image, by name (the rule of `metrics.count_macs`)."""
    found = {}
    _observe(model, example, (nn.Conv2d,), lambda n, mod, out: found.__setitem__(
        n, out[0].numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]))
    return found


def _observe(model: nn.Module, example: torch.Tensor, kinds: tuple, record) -> None:
    """One eval-mode, no-grad forward pass of one image of `example`, calling `record(name, module, output)`
    for every module of `kinds`; the model's mode and hooks are as before afterwards."""
    hooks = [m.register_forward_hook(lambda mod, _i, out, n=n: record(n, mod, out))
             for n, m in model.named_modules() if isinstance(m, kinds)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example[:1])
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()


def prune_to_budget(model: nn.Module, target, method: str = "global", **options) -> tuple[nn.Module, Allocation]:
    """`allocate`, then prune `model` in place to that allocation (channels chosen by `criterion`, default l1)."""
    allocation = allocate(model, target, method, **options)
    prune_to_channels(model, allocation.channels, criterion=options.get("criterion", "l1"),
                      example_inputs=options.get("example_inputs"), data_for_taylor=options.get("data_for_taylor"),
                      seed=options.get("seed", 0))
    return model, allocation


def schedule(model: nn.Module, allocation: Allocation, steps: int, *,
             example_inputs: torch.Tensor | None = None) -> list[dict[str, int]]:
    """Channels per conv after each of `steps` prune + fine-tune steps towards `allocation` (from unpruned
    `model`): every set moves the same share t of the way to its final count, with t chosen so that the
    cost falls geometrically (step k of N removes the reduction to the power k/N); the last step is exact."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive whole number, got {steps!r}")
    example = example_inputs if example_inputs is not None else example_input(1, next(model.parameters()).device)
    pruner = ChannelPruner(model, example)
    cost_model = CostModel(pruner, example)
    index = METRICS.index(allocation.target.metric)
    sizes = cost_model.sets
    final = allocation.keep
    base = cost_model.cost(sizes)[index]
    reduction = base / cost_model.cost(final)[index]

    def keep_at(t: float) -> dict[str, int]:  # channels split into g conv groups move g at a time
        g = pruner.groups
        return {s: n - g[s] * int(round(t * (n - final[s]) / g[s])) for s, n in sizes.items()}

    out = []
    for k in range(1, steps):
        goal, lo, hi = base / reduction ** (k / steps), 0.0, 1.0
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if cost_model.cost(keep_at(mid))[index] > goal else (lo, mid)
        out.append(keep_at(hi))
    out.append(dict(final))
    return [{conv: keep[s] for s, members in pruner.sets.items() for conv in members} for keep in out]
