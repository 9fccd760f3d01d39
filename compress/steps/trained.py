"""The sequence every training step shares, written once (baseline, pruning rounds, budget steps, from scratch,
sparse): start from a model, train it resumably, store its weights as they are published, write its record.

The weights are stored in fp16 where the rounded model keeps the test predictions (`published.FP16_MIN_AGREEMENT`),
and the step's test numbers are those of the stored weights: the accuracy a table reports is the accuracy of the
file a reader evaluates, and every later step starts from the same rounded weights on every machine, so their
keys (which hold the upstream weights' fingerprint) match the published ones.

A `StepRef` names a cached step and how to compute it; it is path-like (`os.fspath`) for its model file, which it
fetches on demand: a step whose record alone was published (an intermediate round, a model over the size limit)
is computed again, from its own upstream, only when a later step needs its weights.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from torch import nn

from ..checkpoint import save_checkpoint
from ..files import read_json, write_json, write_table
from ..published import FP16_MIN_AGREEMENT, fp16_fits, rounded_to_fp16
from ..train import FitResult, evaluate
from .cache import HISTORY, MODEL, RECORD, STATE
from .resume import restore
from .session import Session


@dataclass(eq=False)
class StepRef(os.PathLike):
    """A cached step (name, key) with its compute function; `os.fspath(ref)` is its model file, made on demand."""

    session: Session
    name: str
    key: dict
    compute: Callable[[Path], None] = field(repr=False)
    _done: Path | None = field(default=None, repr=False)  # the folder once run here (each step is logged once)

    @property
    def folder(self) -> Path:
        return self.session.cache.folder(self.name, self.key)

    def run(self) -> Path:
        if self._done is None or not self._done.is_dir():
            self._done = self.session.run(self.name, self.key, self.compute)[0]
        return self._done

    def record(self) -> dict:
        return read_json(self.run() / RECORD)

    def model_path(self) -> Path:
        if self._done is None or not (self._done / MODEL).is_file():
            self._done = self.session.run(self.name, self.key, self.compute, need_model=True)[0]
        return self._done / MODEL

    def __fspath__(self) -> str:
        return str(self.model_path())

    def __eq__(self, other) -> bool:
        return isinstance(other, StepRef) and self.folder == other.folder

    def __hash__(self) -> int:
        return hash(self.folder)

    def __str__(self) -> str:
        return str(self.folder / MODEL)


def store_model(s: Session, model: nn.Module, result: FitResult, path: Path, meta: dict) -> dict:
    """Save `model` to `path` in fp16 where that keeps its test predictions, else fp32; `model` and
    `result.test` become those of the stored weights. Returns the storage columns of the step's record."""
    test = result.test
    agreement, fp16 = float("nan"), False
    if "pred" in test and fp16_fits(model):
        rounded = rounded_to_fp16(model)
        again = evaluate(rounded, s.data.test, s.profile.eval_batch_size, s.device, predictions=True)
        agreement = float((again["pred"] == test["pred"]).float().mean())
        if agreement >= FP16_MIN_AGREEMENT:
            fp16 = True
            model.load_state_dict(rounded.state_dict())
            test.update({k: again[k] for k in ("top1", "top5", "loss", "pred")})
    save_checkpoint(model, path, s.arch, s.profile.width, meta=meta, fp16=fp16)
    return {"stored_dtype": "float16" if fp16 else "float32", "fp16_agreement": agreement}


def trained_step(s: Session, name: str, key: dict, *, start: Callable[[], nn.Module],
                 train: Callable[[nn.Module, Path], FitResult], describe: Callable[[nn.Module, FitResult], dict],
                 meta: dict) -> StepRef:
    """A training step through the cache: `start()` gives the model to train (built, or the previous step's,
    pruned), `train(model, state_path)` trains it resumably, `describe(model, result)` gives the record's own
    columns (computed after the weights are stored, so from the stored weights). The record also keeps the
    test predictions (for paired comparisons) and the storage columns."""
    def compute(folder: Path) -> None:
        model = start().to(s.device)
        restore(folder, s.arch, s.cache.published)  # no state of its own here: continue from a committed point
        result = train(model, folder / STATE)
        storage = store_model(s, model, result, folder / MODEL, meta)
        prov = s.provenance({"step": name, **{k: v for k, v in key.items() if k not in ("arch", "seed", "data")}})
        if result.resumed_from:  # where and how it continued: rounded weights, momentum restarted
            prov["resumed_from"] = result.resumed_from
        if len(result.history):
            write_table(folder / HISTORY, result.history, prov)
        write_json(folder / RECORD, {"record": {**describe(model, result), **storage},
                                     "pred": result.test["pred"].tolist(), "provenance": prov})
        (folder / STATE).unlink(missing_ok=True)

    ref = StepRef(s, name, key, compute)
    ref.run()
    return ref
