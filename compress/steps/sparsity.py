"""The sparse step: unstructured magnitude pruning of the baseline, fine-tuned (its INT8 twin is in `combined`)."""
from __future__ import annotations

import copy

import pandas as pd
from torch import nn

from ..checkpoint import load_checkpoint
from ..metrics import model_summary
from ..paired import paired_difference
from ..sparse import sparse_finetune
from .cache import fingerprint
from .keys import sparse_config
from .session import Session
from .trained import trained_step
from ..train import evaluate


def sparse(s: Session, baseline: nn.Module) -> nn.Module:
    """Unstructured magnitude pruning of the baseline to the profile's sparsity, fine-tuned (cached, resumable)."""
    target = s.profile.target_sparsity
    cfg = sparse_config(s.profile, s.arch, s.seed)
    key = s.key("sparse", baseline=fingerprint(baseline), **s.reads("sparse"))
    extra = {}

    def train(model: nn.Module, state):
        _, record, result = sparse_finetune(model, s.data, cfg, target, device=s.device,
                                            teacher=baseline if s.profile.distill else None, state_path=state)
        extra.update(record)
        return result

    def describe(model: nn.Module, result) -> dict:
        base = evaluate(baseline, s.data.test, s.profile.eval_batch_size, s.device, predictions=True)["pred"]
        preds = [result.test["pred"], base]  # against the baseline, same images
        return {**extra, **result.summary(), **model_summary(model), **paired_difference(*preds, s.data.test.labels)}

    ref = trained_step(s, "sparse", key, start=lambda: copy.deepcopy(baseline), train=train, describe=describe,
                       meta={"stage": "sparse"})
    r = s.record("sparse", pd.DataFrame([ref.record()["record"]]), steps=[ref.folder]).iloc[0]
    s.add_model("sparse", "sparse", {**r.to_dict(), "top1": r.test_top1})
    return load_checkpoint(ref, s.arch)[0].to(s.device).eval()

