"""Which layers can lose channels: filter-norm curves and a one-layer-at-a-time sensitivity scan.

Li et al. (2017, "Pruning Filters for Efficient ConvNets") rank each layer's filters by L1 norm and
prune every layer alone at growing ratios to see which layers are sensitive. `l1_ranking` gives the
first (the sorted, normalised norm curve per layer), `sensitivity_scan` the second, with the same
structured pruning code as `pruning.py`; `ratios.ratios_from_sensitivity` turns a scan plus an accuracy
budget into per-layer ratios.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import pandas as pd
from torch import nn
from tqdm.auto import tqdm

from .data import Split, reiterable
from .metrics import count_macs, count_params
from .models import conv_layers, example_input
from .pruning import ChannelPruner, check_criterion
from .ratios import channel_targets, check_ratio
from .train import evaluate

SCAN_COLUMNS = ["layer", "group", "ratio", "channels", "top1", "top5", "loss", "params", "macs"]


def l1_ranking(model: nn.Module) -> pd.DataFrame:
    """Each conv's filter L1 norms, largest first, normalised by the largest (Li et al. 2017, Fig. 2).

    Tidy: one row per (layer, rank) with rank 1 the strongest filter. A curve that falls steeply means
    many weak filters, i.e. a layer that should tolerate pruning.
    """
    frames = []
    for name, conv in conv_layers(model).items():
        norms = conv.weight.detach().abs().sum(dim=(1, 2, 3)).float().cpu().sort(descending=True).values
        frames.append(pd.DataFrame({"layer": name, "rank": range(1, len(norms) + 1), "l1_norm": norms.numpy(),
                                    "normalized": (norms / norms[0].clamp_min(1e-12)).numpy()}))
    return pd.concat(frames, ignore_index=True)


def sensitivity_scan(model: nn.Module, split, ratios: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
                     *, layers: Sequence[str] | None = None, criterion: str = "l1", batch_size: int = 1024,
                     data_for_taylor=None, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Accuracy on `split` (use the validation split) with each conv pruned alone at each channel ratio.

    `split`: a `Split`, or any iterable of (images, labels) batches such as a DataLoader (see `train.evaluate`; a
    one-shot iterator is gathered into a list once, since every point evaluates it again; `batch_size` is unused).

    Returns tidy rows (layer, group, ratio, channels, top1, top5, loss, params, macs), one per
    (layer, ratio). Ratio 0 is always included and is the unpruned model, evaluated once. Convs coupled
    through a residual sum cannot be pruned alone: they are pruned as their set, `group` names it, and
    every member gets the same rows; a set whose channels cannot move (`ChannelPruner.frozen`) gets its ratio-0 row
    only, and channels split into g conv groups go g at a time (whole positions); MACs are `metrics.count_macs`, the counter of every table. Fast by construction: channel importance is measured once on the
    unpruned model, and each set is pruned step by step along that ranking on one copy with one
    dependency graph, which gives the same model as pruning a fresh copy at each ratio.
    """
    check_criterion(criterion, data_for_taylor)
    ratios = sorted({0.0, *(check_ratio("sensitivity ratio", r) for r in ratios)})
    device = next(model.parameters()).device
    split = split.to(device) if isinstance(split, Split) else reiterable(split)
    example = example_input(1, next(model.parameters()).device)
    reference = ChannelPruner(model, example)  # traced once on the original; it is never pruned
    layers = list(reference.convs) if layers is None else list(dict.fromkeys(layers))
    unknown = [name for name in layers if name not in reference.convs]
    if unknown:
        raise ValueError(f"unknown conv layer(s) {unknown}; valid names: {list(reference.convs)}")
    sets = list(dict.fromkeys(reference.set_of[name] for name in layers))
    movable = [s for s in sets if s not in reference.frozen]  # a frozen set is scanned at ratio 0 only
    counts = {s: reference.channels(s) for s in movable}
    # fails early on 0-filter ratios; channels split into g conv groups keep multiples of g
    keeps = {r: channel_targets(counts, dict.fromkeys(movable, r), multiples=reference.groups) for r in ratios}
    reference.plan(keeps[ratios[-1]], criterion)  # e.g. bn_scale without BatchNorm
    scores = reference.scores(movable, criterion, data_for_taylor=data_for_taylor, seed=seed)

    base = {**evaluate(model, split, batch_size)}
    base_macs, base_params = count_macs(model), count_params(model)
    results: dict[tuple[str, float], dict] = {}
    bar = tqdm(total=len(movable) * (len(ratios) - 1), desc="sensitivity", disable=not progress, leave=False)
    for s in sets:
        results[(s, 0.0)] = {"channels": reference.channels(s), **base, "params": base_params, "macs": base_macs}
        if s in reference.frozen:
            continue
        order = reference.ranking(s, scores[s])  # least important first; grouped sets whole positions at a time
        work = copy.deepcopy(model)
        pruner = ChannelPruner(work, example)
        removed, last = 0, results[(s, 0.0)]
        for r in ratios[1:]:
            drop = counts[s] - keeps[r][s]
            if drop != removed:
                pruner.remove(s, order[removed:drop])
                removed = drop
                macs, params = count_macs(work), count_params(work)
                last = {"channels": counts[s] - drop, **evaluate(work, split, batch_size), "params": params, "macs": macs}
            results[(s, r)] = last  # rounding kept the same channels: the same model, the same numbers
            bar.update(1)
        del work, pruner
    bar.close()
    rows = [{"layer": name, "group": reference.set_of[name], "ratio": r, **results[(reference.set_of[name], r)]}
            for name in layers for r in ratios if (reference.set_of[name], r) in results]
    return pd.DataFrame(rows, columns=SCAN_COLUMNS)
