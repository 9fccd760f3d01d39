"""Iterative pruning as one plain function: prune a little, fine-tune, repeat, with the loop in view.

    schedule = budget.schedule(model, allocation, steps=2)         # channels per conv after each step
    results = iterative_prune(model, schedule, lambda m, k: fit(m, data, cfg))

Each step removes the channels its target leaves over, ranked on the model as the previous fine-tune left
it (so importance is re-measured after every recovery, as in Li et al. 2017's iterative variant), restores
the activation scale of models without BatchNorm, then calls `finetune(model, step)`. No session, no cache:
the step layer (`steps/budget.py`) caches each step and resumes a killed run from it.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from .pruning import has_batchnorm, match_activation_scale, prune_to_channels


def prune_step(model: nn.Module, channels: Mapping[str, int], *, criterion: str = "l1", data_for_taylor=None,
               seed: int = 0, rescale_inputs: torch.Tensor | None = None) -> nn.Module:
    """Prune `model` in place to `channels` (output channels per conv; sets already at or below stay).

    `rescale_inputs`: images on which a model without BatchNorm gets each layer's activation scale back
    (`pruning.match_activation_scale`: why it needs it); ignored for models with BatchNorm."""
    current = {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    wanted = {n: min(int(c), current[n]) for n, c in channels.items() if n in current}
    unknown = sorted(set(channels) - set(current))
    if unknown:
        raise ValueError(f"unknown conv layer(s) {unknown[:5]}; valid names: {list(current)[:5]}...")
    if all(wanted[n] == current[n] for n in wanted):
        return model
    reference = copy.deepcopy(model) if rescale_inputs is not None and not has_batchnorm(model) else None
    prune_to_channels(model, wanted, criterion=criterion, data_for_taylor=data_for_taylor, seed=seed)
    if reference is not None:
        match_activation_scale(model, reference, rescale_inputs)
    return model


def iterative_prune(model: nn.Module, schedule: Sequence[Mapping[str, int]], finetune: Callable[[nn.Module, int], object],
                    **prune_options) -> list:
    """Step k (1-based) prunes `model` in place to `schedule[k - 1]`, then returns `finetune(model, k)`;
    returns what each fine-tune returned. `prune_options` go to `prune_step` (criterion, seed, ...)."""
    if not schedule:
        raise ValueError("the schedule is empty: give at least one step of channels to keep")
    out = []
    for k, channels in enumerate(schedule, 1):
        prune_step(model, channels, **prune_options)
        out.append(finetune(model, k))
    return out
