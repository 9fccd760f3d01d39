"""Layer importance steps: the L1 ranking (instant) and the sensitivity scan (cached)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from torch import nn

from .. import sensitivity as scans
from ..data import Split, stratified_indices
from .cache import fingerprint
from ..files import read_table, write_table
from .session import Session


def l1_ranking(s: Session, model: nn.Module) -> pd.DataFrame:
    return s.record("l1", scans.l1_ranking(model))


def taylor_data(s: Session, images: int = 512) -> Split:
    """A stratified subset of the training split: the gradients the `taylor` criterion scores with."""
    return s.data.train.subset(stratified_indices(s.data.train.labels.cpu().numpy(), images, s.seed))


def sensitivity(s: Session, model: nn.Module, criterion: str = "l1", *, ratios=None, layers=None,
                eval_size: int | None = None, taylor_images: int = 512) -> pd.DataFrame:
    """Each conv pruned alone at the profile's ratios (or `ratios`), on a stratified validation subset of
    the profile's size (or `eval_size`); cached by everything that changes the numbers."""
    ratios = list(s.profile.sensitivity_ratios if ratios is None else ratios)
    size = s.profile.sensitivity_eval_size if eval_size is None else eval_size
    split = s.data.val.subset(stratified_indices(s.data.val.labels.cpu().numpy(), size, s.seed))
    key = s.key("sensitivity", baseline=fingerprint(model), criterion=criterion, layers=None if layers is None else list(layers),
                taylor_images=taylor_images if criterion == "taylor" else None, ratios=ratios, eval_size=size)

    def compute(folder: Path) -> None:
        scan = scans.sensitivity_scan(
            model, split, ratios, layers=layers, criterion=criterion, batch_size=s.profile.eval_batch_size,
            data_for_taylor=taylor_data(s, taylor_images) if criterion == "taylor" else None, seed=s.seed)
        write_table(folder / "sensitivity.csv", scan, s.provenance({"step": "sensitivity", "criterion": criterion,
                                                                    "eval_images": len(split), **{k: key[k] for k in ("layers", "taylor_images", "eval_size")}}))

    folder, _ = s.run("sensitivity", key, compute)
    return s.record("sensitivity", read_table(folder / "sensitivity.csv")[0], steps=[folder])
