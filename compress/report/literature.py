"""Published pruning results beside this project's budget sweep, with what each was measured on, so a reader
sees what a CPU budget buys: the official CIFAR-10 and 100-300 fine-tune epochs there, the JPEG copy and a
few epochs here.

The published figures are those the issue that asked for this table quotes (#25); each row names its
dataset, model, counting and fine-tune budget. FLOPs reductions in percent become MAC factors as
1 / (1 - reduction): both papers count one multiply-accumulate per "FLOP" as thop does.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .tables import budget_finals, chosen_curve, load_tables


@dataclass(frozen=True)
class Published:
    work: str
    model: str
    arch: str  # the architecture of this project it is set beside
    mac_factor: float  # times fewer MACs than the unpruned model
    delta: float  # accuracy change in points against the paper's own baseline
    finetune: str  # the fine-tune budget the paper spent
    dataset: str = "official CIFAR-10"


def _from_percent(reduction: float) -> float:
    return 1.0 / (1.0 - reduction / 100.0)


PUBLISHED = (
    Published("HRankPlus", "VGG16-BN", "vgg16_bn", _from_percent(58.1), -0.23, "150 epochs"),
    Published("HRankPlus", "VGG16-BN", "vgg16_bn", _from_percent(66.6), -0.40, "150 epochs"),
    Published("HRankPlus", "VGG16-BN", "vgg16_bn", _from_percent(78.6), -0.86, "150 epochs"),
    Published("DepGraph", "ResNet-56", "resnet18", 2.13, +0.24, "100 + 100 epochs"),
    Published("Li et al. 2017 (L1 filters)", "VGG-16", "vgg16", _from_percent(34.0), -0.06, "40 epochs"),
)


def _ours(budget: pd.DataFrame | None, factor: float) -> dict:
    """The chosen method's final model at the budget nearest `factor` (main seed), or an empty row."""
    if budget is None or not len(budget):
        return {}
    chosen = chosen_curve(budget_finals(budget))
    if not len(chosen):
        return {}
    distance = np.abs(np.log(chosen.target.astype(float) / factor))  # nearest on the log scale of the curve
    return chosen.iloc[int(np.argmin(distance.to_numpy()))].to_dict()


def literature_markdown(results_dir: str | Path, archs) -> str:
    """One row per published result, the nearest budget of this project's sweep beside it."""
    rows = ["| published | model, data | MACs | Δ top-1 | fine-tune | this project (JPEG copy, its baseline) | MACs | Δ top-1 ± 95% | fine-tune |",
            "| --- | --- | ---: | ---: | --- | --- | ---: | ---: | --- |"]
    for p in PUBLISHED:
        if p.arch not in archs:
            continue
        try:
            ours = _ours(load_tables(results_dir, p.arch).get("budget"), p.mac_factor)
        except (KeyError, AttributeError) as e:  # a budget table of an older schema: say so, keep the row
            print(f"literature: {p.arch} budget table lacks {e}")
            ours = {}
        mine = (f"| {p.arch} {ours['method']} {ours['target']:g}x | {ours['mac_reduction']:.2f}x | "
                f"{ours['paired_delta']:+.2f} ± {ours['paired_ci95']:.2f} | {int(ours['total_epochs'])} epochs |"
                if ours else f"| {p.arch}: not run yet | | | |")
        rows.append(f"| {p.work} | {p.model}, {p.dataset} | {p.mac_factor:.2f}x | {p.delta:+.2f} | {p.finetune} {mine}")
    return "\n".join(rows) + "\n"
