"""Published pruning results beside this project's budget sweep, with what each was measured on, so a reader
sees what a CPU budget buys: the official CIFAR-10 and 100-400 fine-tune epochs there, the JPEG copy and a
few epochs here.

The first figures are those the issue that asked for this table quotes (#25); CHIP and CORING were added for
#34, OTOv2 and ATO (ResNet-18 near 5x) for #40, each from the source named beside its row (no row without one).
Each row names its dataset, model, the paper's own baseline where its source states it, and the fine-tune
budget; and whether it prunes a trained baseline and fine-tunes it, as this project does, or trains and prunes
from scratch in one run (OTOv2, ATO): only the former compare directly with this project's column. FLOPs
reductions in percent become MAC factors as 1 / (1 - reduction): these papers count one multiply-accumulate per
"FLOP" as thop does. A paper's accuracy
may be its best epoch's on the test set (CHIP's `prune_finetune_cifar.py` keeps the best test top-1); this
project's is the final epoch's.
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
    baseline: float | None = None  # the paper's unpruned top-1 (%), where its source states it
    from_scratch: bool = False  # trains and prunes from random weights in one run, no trained baseline to fine-tune


def _from_percent(reduction: float) -> float:
    return 1.0 / (1.0 - reduction / 100.0)


# The VGG-16-BN / CIFAR-10 comparison table of CORING (Pham, Zniyed, Nguyen, "Efficient tensor decomposition-based
# filter pruning", Neural Networks 2024), as its authors' README (github.com/pvti/CORING, "1. VGG-16-BN/CIFAR-10")
# gives it: baseline 93.96%, 14.98M parameters, 313.73M FLOPs; each row at 58.1% / 66.6% / 78.6% fewer FLOPs.
VGG16_BN_BASELINE = 93.96
DEPGRAPH_BASELINE = 93.53  # DepGraph's ResNet-56 (Torch-Pruning's reproduce/readme.md, below)
PUBLISHED = (
    Published("HRankPlus", "VGG16-BN", "vgg16_bn", _from_percent(58.1), -0.23, "150 epochs"),
    Published("HRankPlus", "VGG16-BN", "vgg16_bn", _from_percent(66.6), -0.40, "150 epochs"),
    Published("HRankPlus", "VGG16-BN", "vgg16_bn", _from_percent(78.6), -0.86, "150 epochs"),
    # CHIP (Sui et al., NeurIPS 2021): 93.86 / 93.72 / 93.18%, as CORING's table (above) quotes CHIP's VGG-16 results;
    # CHIP's own table could not be read here. Fine-tune: its CIFAR script's default and README command, 200 epochs
    # (github.com/Eclipsess/CHIP_NeurIPS2021, prune_finetune_cifar.py).
    Published("CHIP", "VGG16-BN", "vgg16_bn", _from_percent(58.1), round(93.86 - VGG16_BN_BASELINE, 2), "200 epochs",
              baseline=VGG16_BN_BASELINE),
    Published("CHIP", "VGG16-BN", "vgg16_bn", _from_percent(66.6), round(93.72 - VGG16_BN_BASELINE, 2), "200 epochs",
              baseline=VGG16_BN_BASELINE),
    Published("CHIP", "VGG16-BN", "vgg16_bn", _from_percent(78.6), round(93.18 - VGG16_BN_BASELINE, 2), "200 epochs",
              baseline=VGG16_BN_BASELINE),
    # CORING: its own rows of the same table, CORING-C-5 94.42%, CORING-C-15 94.20%, CORING-C-10 93.83% (its README
    # also states +0.46 at 58.1%). Fine-tune: its VGG-16-BN scripts (main/scripts/vgg16_cifar10/vbd.sh) run 400 epochs
    # in a first round and 300 in two more; which round each row comes from is not stated, hence the range.
    Published("CORING", "VGG16-BN", "vgg16_bn", _from_percent(58.1), round(94.42 - VGG16_BN_BASELINE, 2),
              "300-400 epochs", baseline=VGG16_BN_BASELINE),
    Published("CORING", "VGG16-BN", "vgg16_bn", _from_percent(66.6), round(94.20 - VGG16_BN_BASELINE, 2),
              "300-400 epochs", baseline=VGG16_BN_BASELINE),
    Published("CORING", "VGG16-BN", "vgg16_bn", _from_percent(78.6), round(93.83 - VGG16_BN_BASELINE, 2),
              "300-400 epochs", baseline=VGG16_BN_BASELINE),
    # DepGraph (Fang et al., CVPR 2023): Torch-Pruning's reproduce/readme.md, "ResNet-56 / CIFAR-10", 93.53 -> 93.77%
    Published("DepGraph", "ResNet-56", "resnet18", 2.13, +0.24, "100 + 100 epochs", baseline=DEPGRAPH_BASELINE),
    # OTOv2 (Chen et al., ICLR 2023) and ATO (Wu et al., CVPR 2024), ResNet-18 / CIFAR-10, as the results table of
    # github.com/Brook512/Adaptive-Channel-Pruning-Based-on-Layer-Wise-Parameter-Distributions-for-Efficient-CNNs
    # (README.md, "Performance Benchmarks") quotes them: OTOv2 93.02 -> 92.86% at 79.7% fewer FLOPs, ATO 94.41 ->
    # 94.51% at 79.9%. Both train and prune from scratch in one run (no trained baseline is pruned); neither that
    # table nor ATO's README (github.com/xidongwu/AutoTrainOnce, ImageNet commands only) gives their CIFAR epochs.
    Published("OTOv2", "ResNet-18", "resnet18", _from_percent(79.7), round(92.86 - 93.02, 2),
              "none (epochs not stated)", baseline=93.02, from_scratch=True),
    Published("ATO", "ResNet-18", "resnet18", _from_percent(79.9), round(94.51 - 94.41, 2),
              "none (epochs not stated)", baseline=94.41, from_scratch=True),
    Published("Li et al. 2017 (L1 filters)", "VGG-16", "vgg16", _from_percent(34.0), -0.06, "40 epochs"),
)


@dataclass(frozen=True)
class Baseline:
    """A published unpruned model set beside this project's baseline of `arch` (the README's first table)."""

    work: str
    model: str
    arch: str
    top1: float
    epochs: str  # as its source states them, or that it does not


# Each from the source named beside it; an architecture with none says so in the table rather than guess one.
BASELINES = (
    # kuangliu/pytorch-cifar README, "ResNet18 93.02%" (added January 2017, never re-measured); main.py keeps the
    # best test epoch. Epochs: not stated beside it; main.py runs 200 a launch (SGD, cosine to epoch 200 since
    # November 2020), and the README's schedule of 2017-2020 (lr 0.1 / 0.01 / 0.001 from epoch 0 / 150 / 250) ran to 350.
    Baseline("kuangliu/pytorch-cifar", "ResNet18", "resnet18", 93.02,
             "best test epoch; epochs not stated, its main.py runs 200"),
    # DepGraph: Torch-Pruning's reproduce/readme.md trains its ResNet-56 with `--total-epochs 200`
    Baseline("DepGraph", "ResNet-56", "resnet18", DEPGRAPH_BASELINE, "200 epochs"),
    # CORING's README table (above); its scripts prune a given checkpoint (`--pretrain_dir .../vgg_16_bn.pt`), and
    # neither they nor the README say how that VGG-16-BN was trained
    Baseline("CORING", "VGG16-BN", "vgg16_bn", VGG16_BN_BASELINE, "epochs not stated"),
)


SCRATCH_NOTE = ("Pruned from: *trained baseline* rows prune a trained model and fine-tune it, as this project does; "
                "*scratch, one run* rows (OTOv2, ATO) train and prune from random weights in one run. "
                "Only the former compare directly with this project's column.")


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
    """One row per published result, whether it prunes a trained baseline or trains from scratch in one run, the
    nearest budget of this project's sweep beside it; a closing note says which rows compare directly."""
    rows = ["| published | model, data | MACs | Δ top-1 | fine-tune | pruned from | this project (JPEG copy, its baseline) | MACs | Δ top-1 ± 95% | fine-tune |",
            "| --- | --- | ---: | ---: | --- | --- | --- | ---: | ---: | --- |"]
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
        delta = f"{p.delta:+.2f}" + (f" (of {p.baseline:.2f})" if p.baseline is not None else "")
        start = "scratch, one run" if p.from_scratch else "trained baseline"
        rows.append(f"| {p.work} | {p.model}, {p.dataset} | {p.mac_factor:.2f}x | {delta} | {p.finetune} | "
                    f"{start} {mine}")
    return "\n".join(rows) + "\n\n" + SCRATCH_NOTE + "\n"
