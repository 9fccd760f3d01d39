"""A peer for the budget comparison: Torch-Pruning's own global pruner, set up as its authors' CIFAR script runs it.

Our allocation rules (`budget.py`) are compared with each other and with a uniform control; a reader also wants
to know how they fare against the pruner a user would reach for first. This is torch-pruning's
`tp.pruner.MetaPruner` with the settings of its authors' CIFAR script (`reproduce/main.py` in VainF/Torch-Pruning,
written anew here from reading it):

* importance `GroupMagnitudeImportance(p=2)`: a channel's squared L2 norm in every layer of its coupled group
  (the convs that write it, its BN, the consumers' input weights), averaged over the group and divided by the
  group's mean, so groups of any size rank on one scale;
* `global_pruning=True`: every group ranked together, the weakest channels anywhere removed first;
* `pruning_ratio=1.0` over `iterative_steps=400` (a linear schedule: each step removes a further 0.25% of the
  channels the model started with, re-scored on what is left), `max_pruning_ratio` at its default 1.0 (no layer
  cap but torch-pruning's own rule that a layer keeps one channel), and the classifier ignored (every linear or
  conv layer with one output per class, the script's rule);
* `pruner.step()` repeated until the MACs reach the target, then stop (the script's `progressive_pruning`).

Landing within 1% of the target (the project's rule for every budget model): the script stops at the first step
that reaches it, which can land past it by more than 1% (near 8x a step of 0.25% of the channels moves the MACs by
about 1.4%). When it does, that last step is redone from the model as it was before it, by a fresh one-step pruner
with the same importance on the same weights (so the same global ranking, and with no layer cap the same rule for
which groups may lose channels), its share of the channels bisected: the fewest channels that reach the target.
Where the one channel that reaches it moves the MACs past the tolerance by itself (a thin model's coarse layer:
one channel of ResNet18's stage-1 stream at width 1/8 moves its MACs at 8x by ~10%), that layer is passed over and the
next channels in the same global order taken instead. Nothing of ours (no `fill`, no cap) touches its counts.

The result is a pruned copy on the CPU: its channel counts are the peer's allocation. Why the CPU: the counts
become the budget steps' cache keys, which must not depend on which machine computed them.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch_pruning as tp
from torch import nn

from .models import example_input

METHOD = "torch-pruning"  # the peer's name among the budget methods (`profiles.BUDGET_METHODS`)
CRITERION = "group_l2"  # its importance within one channel set (`pruning.make_importance`): what the steps prune by
ITERATIVE_STEPS = 400  # the authors' script's default, with pruning_ratio 1.0: 0.25% of the channels per step
BISECTION_STEPS = 30  # halvings of the last step's share at most (it stops once finer than one channel)


def importance() -> tp.importance.Importance:
    """The peer's channel importance, as its authors' script builds it (group L2, mean over the group, mean-normalised)."""
    return tp.importance.GroupMagnitudeImportance(p=2)


def classifier_layers(model: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """The layers the script leaves alone: every linear layer, or conv, with as many outputs as the model has classes."""
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            classes = model(example[:1]).shape[1]
    finally:
        model.train(was_training)
    return [m for m in model.modules() if (isinstance(m, nn.Linear) and m.out_features == classes)
            or (isinstance(m, nn.Conv2d) and m.out_channels == classes)]


def _pruner(model: nn.Module, example: torch.Tensor, ratio: float, steps: int, round_to: int | None,
            frozen: list[nn.Module] = ()):
    return tp.pruner.MetaPruner(model, example, importance=importance(), global_pruning=True, pruning_ratio=ratio,
                                iterative_steps=steps, ignored_layers=[*classifier_layers(model, example), *frozen],
                                round_to=round_to)


def _step(pruner: tp.pruner.MetaPruner, model: nn.Module) -> None:
    """One pruner step. torch-pruning's importance takes a grouped conv left with one input channel per group
    for a depthwise one and fails with an IndexError (a ResNeXt's grouped conv, its producer pruned to one channel
    a group while its own outputs stay): that becomes one line naming the layer."""
    try:
        pruner.step()
    except IndexError as e:
        thin = {n: m for n, m in model.named_modules()
                if isinstance(m, nn.Conv2d) and 1 < m.groups == m.in_channels != m.out_channels}
        if not thin:
            raise
        name, conv = next(iter(thin.items()))
        raise ValueError(f"torch-pruning's pruner fails after {pruner.current_step} of its steps: grouped conv "
                         f"{name!r} is down to one input channel per group ({conv.groups} groups, "
                         f"{conv.out_channels} outputs), which its importance cannot score; ask for less, or "
                         f"use another method") from e


def progressive_prune(model: nn.Module, goal: float, cost: Callable[[nn.Module], float], *,
                      example_inputs: torch.Tensor | None = None, tolerance: float = 0.01,
                      iterative_steps: int = ITERATIVE_STEPS, round_to: int | None = None) -> nn.Module:
    """A copy of `model` (on the CPU; `model` is not changed) pruned by the peer until `cost(copy)` (MACs or
    parameters) is at most `goal`, within `tolerance` of it where one channel more or less allows.

    Raises ValueError when every step of the schedule still leaves the cost above the goal."""
    if isinstance(iterative_steps, bool) or not isinstance(iterative_steps, int) or iterative_steps < 1:
        raise ValueError(f"iterative_steps must be a positive whole number, got {iterative_steps!r}")
    example = (example_input(1) if example_inputs is None else example_inputs[:1]).detach().cpu().float()
    work, pruner = _start(model, example, iterative_steps, round_to)
    now, before, drop = cost(work), None, None
    while now > goal and pruner.current_step < iterative_steps:
        # the model before the step that reaches the goal is what `_land` starts from; copying it before every
        # step cost more than the steps, so it is copied only when this step may reach the goal (twice the last
        # step's fall), and otherwise rebuilt by replaying the steps, which are deterministic
        before = copy.deepcopy(work) if drop is None or now - 2 * drop <= goal else None
        _step(pruner, work)
        after = cost(work)
        drop, now = now - after, after
    if now > goal:
        raise ValueError(f"torch-pruning's pruner cannot reach the target: after all {iterative_steps} steps the "
                         f"model still has {now:,.0f} (goal {goal:,.0f}); ask for less")
    if pruner.current_step == 0 or goal - now <= tolerance * goal:
        return work
    if before is None:
        before, replay = _start(model, example, iterative_steps, round_to)
        for _ in range(pruner.current_step - 1):
            _step(replay, before)
    return _land(before, goal, cost, example, round_to, tolerance)


def _start(model: nn.Module, example: torch.Tensor, iterative_steps: int, round_to: int | None):
    """A CPU fp32 copy of `model` and the peer's pruner on it, at step 0."""
    work = copy.deepcopy(model).cpu().float().eval()
    with torch.enable_grad():  # the dependency graph is traced through autograd
        return work, _pruner(work, example, 1.0, iterative_steps, round_to)


def _land(before: nn.Module, goal: float, cost: Callable[[nn.Module], float], example: torch.Tensor,
          round_to: int | None, tolerance: float) -> nn.Module:
    """The last step redone from `before` (cost above `goal`) as one step of a bisected share of the channels; where
    the channel that reaches the goal alone jumps past the tolerance (a coarse layer of a thin model: one channel of
    a 16-channel residual stream is several % of its MACs), that layer is passed over and the next channels in the
    same global order are taken instead, from the state just short of the goal."""
    start, frozen, best = before, set(), before
    for _ in range(sum(isinstance(m, nn.Conv2d) for m in before.modules())):
        above, below = _bisect(start, goal, cost, example, round_to, frozen)
        best = min((m for m in (above, below, best) if m is not None), key=lambda m: abs(cost(m) - goal))
        if below is None or abs(cost(best) - goal) <= tolerance * goal:
            return best
        coarse = {n for n, c in _channels(above).items() if _channels(below)[n] != c}
        if not coarse - frozen:
            return best
        start, frozen = above, frozen | coarse
    return best


def _channels(model: nn.Module) -> dict[str, int]:
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def _bisect(start: nn.Module, goal: float, cost: Callable[[nn.Module], float], example: torch.Tensor,
            round_to: int | None, frozen: set[str]) -> tuple[nn.Module, nn.Module | None]:
    """One global step from `start` (layers `frozen` left alone) whose share of the channels is bisected: the
    model with the largest share still above `goal` and the one with the smallest share at or below it (None
    when even all of them cannot reach it)."""
    def one_step(share: float) -> tuple[nn.Module, float]:
        trial = copy.deepcopy(start)
        layers = dict(trial.named_modules())
        with torch.enable_grad():
            _step(_pruner(trial, example, share, 1, round_to, [layers[n] for n in frozen]), trial)
        return trial, cost(trial)

    total = sum(_channels(start).values())
    above, below = start, None
    lo, hi = 0.0, 1.0 / total  # shares of `start`'s channels; from about one channel, doubled until the goal is reached
    while True:
        trial, c = one_step(hi)
        if c <= goal:
            below = trial
            break
        lo, above = hi, trial
        if hi >= 1.0:
            return above, None
        hi = min(1.0, 2 * hi)
    for _ in range(BISECTION_STEPS):
        if (hi - lo) * total < 0.5:  # finer than one channel: nothing new to find
            break
        mid = (lo + hi) / 2
        trial, c = one_step(mid)
        if c > goal:
            lo, above = mid, trial
        else:
            hi, below = mid, trial
    return above, below
