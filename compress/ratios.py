"""Prune ratios as data: the forms a user may write, the default configurations, ratios from a sensitivity
scan, the per-round schedule, and channels to keep. Pure functions of numbers and names (no model).

Ratios are CHANNEL ratios in [0, 1): 0.5 removes half of a conv's output channels. Convs whose outputs meet
in a residual sum form one *channel set* (see `pruning.py`) and must share one ratio.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import pandas as pd

RESNET18_BLOCKS = tuple(f"layer{s}.{b}" for s in range(1, 5) for b in range(2))
RESNET18_STAGE_STREAMS = ("conv1", "layer2.0.conv2", "layer3.0.conv2", "layer4.0.conv2")  # one conv per residual set


def check_ratio(where: str, value) -> float:
    """`value` as a float channel ratio in [0, 1), else a ValueError naming `where`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{where}: ratio must be a number in [0, 1), got {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{where}: ratio {value} is outside [0, 1) (a channel ratio; 1 would remove every filter)")
    return float(value)


def resnet18_ratios(blocks: Sequence[float], stages: Sequence[float] | None = None) -> dict[str, float]:
    """A ResNet18 ratio dict from 8 per-block ratios (each block's `conv1`) and optional 4 per-stage
    ratios for the residual streams (stage 1: the stem `conv1` and every `layer1` conv2; stage s > 1:
    `layer{s}.0.conv2`, its downsample and `layer{s}.1.conv2`)."""
    blocks, stages = list(blocks), list(stages) if stages is not None else [0.0] * 4
    if len(blocks) != len(RESNET18_BLOCKS) or len(stages) != len(RESNET18_STAGE_STREAMS):
        raise ValueError(f"resnet18_ratios takes 8 block ratios ({', '.join(RESNET18_BLOCKS)}) and 4 stage ratios; "
                         f"got {len(blocks)} and {len(stages)}")
    out = {f"{b}.conv1": r for b, r in zip(RESNET18_BLOCKS, blocks)}
    out.update(zip(RESNET18_STAGE_STREAMS, stages))
    return out


def expand(arch: str | None, convs: Sequence[str], sets: Mapping[str, Sequence[str]], ratios) -> dict[str, float]:
    """Every conv's ratio (in `convs` order) from any accepted form, checked against the channel `sets`.

    Forms: a float (every conv); a dict by conv name (unnamed convs keep all channels; naming one member
    of a coupled set prunes the whole set, and members named twice must agree); for resnet18 a list of 8
    per-block ratios (each block's `conv1`, leaving the residual streams as they are); for vgg16 / vgg16_bn
    a list of 13 per-conv ratios.
    """
    names = list(convs)
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
    unknown = [k for k in given if k not in names]
    if unknown:
        raise ValueError(f"unknown conv layer(s) {unknown}; valid names: {names}")
    given = {k: check_ratio(k, v) for k, v in given.items()}
    out = {}
    for members in sets.values():
        values = {given[m] for m in members if m in given}
        if len(values) > 1:
            detail = {m: given[m] for m in members if m in given}
            raise ValueError(f"coupled convs share their output channels and need one ratio; got {detail} "
                             f"(the set is {list(members)})")
        r = values.pop() if values else 0.0
        out.update((m, r) for m in members)
    return {n: out[n] for n in names}


def max_ratio(channels: int) -> float:
    """The bound below which a conv of `channels` filters keeps at least one: keep = round(n (1 - r)) >= 1."""
    return 1 - 0.5 / channels


def channel_targets(channels: Mapping[str, int], ratios: Mapping[str, float], round_to: int | None = None,
                    multiples: Mapping[str, int] | None = None) -> dict[str, int]:
    """Output channels to keep per conv: round(n * (1 - ratio)), then to a multiple of `round_to`.

    `multiples` (conv name -> g) is for channels split into g equal conv groups (a grouped conv's inputs or
    outputs): every group must keep the same number, so the count is a multiple of g (and of `round_to`,
    whichever is larger: their least common multiple), at least one per group.
    A ratio that would leave a layer with no filter is an error, not a silent clamp.
    """
    if round_to is not None and (isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1):
        raise ValueError(f"round_to must be a positive integer or None, got {round_to!r}")
    out = {}
    for name, ratio in ratios.items():
        n = channels[name]
        keep = int(round(n * (1 - ratio)))
        if keep < 1:
            raise ValueError(f"ratio {ratio} would leave {name} ({n} filters) with 0 filters (it keeps "
                             f"round(n * (1 - ratio))); ratios below {max_ratio(n):.10g} keep at least 1 of {n} filters")
        unit = math.lcm(round_to or 1, (multiples or {}).get(name, 1))
        if unit > 1:
            keep = min(n, max(unit, unit * int(round(keep / unit))))
        out[name] = keep
    return out


def round_ratios(ratios: Mapping[str, float], rounds: int) -> list[dict[str, float]]:
    """Cumulative ratio per layer after each round (a linear schedule): round k of N reaches k/N of the
    target, always relative to the unpruned model."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    return [{n: (k / float(rounds)) * r for n, r in ratios.items()} for k in range(1, rounds + 1)]


def ratios_from_sensitivity(scan: pd.DataFrame, max_drop: float, *, metric: str = "top1",
                            max_ratio: float = 0.9) -> dict[str, float]:
    """Per layer, the largest scanned ratio (<= `max_ratio`) within `max_drop` points of its ratio-0 accuracy.

    Conservative on noisy curves: a layer's ratio stops at the last ratio before the first one that
    exceeds the budget. Coupled layers share their scan rows and so get the same ratio.
    """
    if isinstance(max_drop, bool) or not isinstance(max_drop, numbers.Real) or not max_drop >= 0:
        raise ValueError(f"max_drop must be a non-negative number of accuracy points, got {max_drop!r}")
    missing = {"layer", "ratio", metric} - set(scan.columns)
    if missing:
        raise ValueError(f"the scan lacks column(s) {sorted(missing)}; expected a sensitivity_scan table")
    out = {}
    for layer, rows in scan.sort_values("ratio", kind="stable").groupby("layer", sort=False):
        ref = rows.loc[rows.ratio == 0, metric]
        if ref.empty:
            raise ValueError(f"layer {layer!r} has no ratio-0 row to measure the drop from")
        chosen = 0.0
        for r, acc in zip(rows.ratio, rows[metric]):
            if r == 0:
                continue
            if r > max_ratio or math.isnan(acc) or ref.iloc[0] - acc > max_drop:
                break
            chosen = float(r)
        out[layer] = chosen
    order = list(dict.fromkeys(scan.layer))
    return {layer: out[layer] for layer in order}


# ----------------------------------------------------------------------------- default configurations
# `per_block` doubles the classic increasing-with-depth [0.1, 0.1, 0.2, ..., 0.3, 0.3].
_R18_PER_BLOCK = [0.1, 0.1, 0.2, 0.2, 0.2, 0.2, 0.3, 0.3]
DEFAULT_CONFIGS: dict[str, dict[str, object]] = {
    "resnet18": {
        "uniform": 0.5,
        "per_block": resnet18_ratios([2 * r for r in _R18_PER_BLOCK], [0.2, 0.2, 0.4, 0.6]),
        # >= 19x fewer MACs and >= 50x fewer parameters on the full-width model (tests/test_ratios.py)
        "aggressive": resnet18_ratios([0.7, 0.7, 0.8, 0.8, 0.85, 0.85, 0.9, 0.9], [0.7, 0.75, 0.85, 0.9]),
    },
    "vgg16": {
        "uniform": 0.5,
        "increasing": [0.3, 0.3, 0.4, 0.4, 0.5, 0.5, 0.5, 0.6, 0.7, 0.7, 0.8, 0.8, 0.8],
        # >= 8x fewer MACs and >= 50x fewer parameters on the full-width model (tests/test_ratios.py)
        "aggressive": [0.5, 0.6, 0.6, 0.6, 0.7, 0.75, 0.85, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9],
    },
}
DEFAULT_CONFIGS["vgg16_bn"] = DEFAULT_CONFIGS["vgg16"]


def default_configs(arch: str, scan: pd.DataFrame | None = None, max_drop: float = 1.0) -> dict[str, object]:
    """The fixed configurations of `arch`, plus `sensitivity` (from a scan's accuracy budget) when given."""
    if arch not in DEFAULT_CONFIGS:
        raise ValueError(f"no default configurations for {arch!r}; choose one of {sorted(DEFAULT_CONFIGS)}")
    configs = dict(DEFAULT_CONFIGS[arch])
    if scan is not None:
        configs["sensitivity"] = ratios_from_sensitivity(scan, max_drop)
    return configs


def select_config(rounds: pd.DataFrame, max_drop: float = 1.0) -> str:
    """The one definition of "the best pruned configuration", on VALIDATION accuracy (never test): the
    fewest MACs among configurations whose last round is within `max_drop` points of the unpruned
    model's validation top-1, else the most accurate one on validation. `rounds` is a pruning table."""
    base_val = rounds.loc[rounds["round"] == 0, "final_val_top1"].iloc[0]
    last = rounds.loc[rounds.groupby("config")["round"].transform("max") == rounds["round"]]
    last = last[last["round"] > 0]
    ok = last[last.final_val_top1 >= base_val - max_drop]
    pick = ok.sort_values(["macs", "config"]).iloc[0] if len(ok) else last.sort_values("final_val_top1").iloc[-1]
    return str(pick.config)
