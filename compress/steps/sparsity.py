"""The sparse step: unstructured magnitude pruning of the baseline, fine-tuned (its INT8 twin is in `combined`)."""
from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
from torch import nn

from ..checkpoint import load_checkpoint, save_checkpoint
from ..files import read_table, write_table
from ..paired import paired_difference
from ..sparse import sparse_finetune
from .cache import fingerprint
from .keys import SparseReads, sparse_config
from ..train import evaluate
from .session import Session


def sparse(s: Session, baseline: nn.Module) -> nn.Module:
    """Unstructured magnitude pruning of the baseline to the profile's sparsity, fine-tuned (cached, resumable)."""
    target = s.profile.target_sparsity
    cfg = sparse_config(s.profile, s.arch, s.seed)
    key = s.key("sparse", baseline=fingerprint(baseline), **SparseReads(target, s.profile.distill, cfg.identity(s.device)).key())

    def compute(folder: Path) -> None:
        model, record = sparse_finetune(copy.deepcopy(baseline), s.data, cfg, target, device=s.device,
                                        teacher=baseline if s.profile.distill else None,
                                        state_path=folder / "train_state.pt")
        save_checkpoint(model, folder / "model.pt", s.arch, s.profile.width, meta={"stage": "sparse"})
        preds = [evaluate(m, s.data.test, predictions=True)["pred"] for m in (model, baseline)]
        record.update(paired_difference(*preds, s.data.test.labels))  # against the baseline, same images
        write_table(folder / "sparse.csv", pd.DataFrame([record]), s.provenance({"step": "sparse"}))
        (folder / "train_state.pt").unlink(missing_ok=True)

    folder, _ = s.run("sparse", key, compute)
    r = s.record("sparse", read_table(folder / "sparse.csv")[0], steps=[folder]).iloc[0]
    s.add_model("sparse", "sparse", {**r.to_dict(), "top1": r.test_top1})
    return load_checkpoint(folder / "model.pt", s.arch)[0].to(s.device).eval()
