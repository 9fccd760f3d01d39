"""Unstructured magnitude pruning: zero the smallest weights on a polynomial schedule while fine-tuning.

Zhu & Gupta (2017, "To prune, or not to prune") raise sparsity from `initial` to `final` as
s_t = final + (initial - final) * (1 - t / T)^3 over the first part of fine-tuning, so the network has
most of the run to adapt while the easy weights go first, and the rest at full sparsity to recover.

Masks are `torch.nn.utils.prune` masks on every conv and linear weight, either one global L1 threshold
(layers that need their weights keep them) or the same fraction per layer. At each update the current
mask is made permanent and a new, larger one is computed from the weight magnitudes, so pruned weights
never come back and no history of masks piles up in memory. At the end the masks are removed
(`prune.remove`), leaving plain zeros in dense tensors: the parameter count, MACs and latency on dense
hardware do not change; what shrinks is the compressed (gzip) file, which is why it is reported.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn
from torch.nn.utils import prune

from .metrics import gzip_size_mb, model_summary
from .train import FitResult, TrainConfig, fit

SCOPES = ("global", "layer")


def prunable_weights(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every conv and linear layer by name: the weights unstructured pruning may zero (biases and BN stay)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _check_sparsity(value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"sparsity must be a fraction in [0, 1), got {value!r}")
    return float(value)


def sparsity_table(model: nn.Module) -> pd.DataFrame:
    """Tidy per-layer report (layer, params, zeros, sparsity) of the weights as the forward pass sees them."""
    rows = []
    for name, m in prunable_weights(model):
        w = m.weight.detach()
        rows.append({"layer": name, "params": w.numel(), "zeros": int((w == 0).sum()),
                     "sparsity": float((w == 0).float().mean())})
    return pd.DataFrame(rows, columns=["layer", "params", "zeros", "sparsity"])


def sparsity(model: nn.Module) -> float:
    """Fraction of zeros over all conv and linear weights (masked or already permanent)."""
    total = zeros = 0
    for _, m in prunable_weights(model):
        total += m.weight.numel()
        zeros += int((m.weight.detach() == 0).sum())
    return zeros / max(1, total)


def set_sparsity(model: nn.Module, target: float, *, scope: str = "global") -> nn.Module:
    """Mask the smallest-magnitude weights so that `target` of them are zero (L1 criterion), in place.

    `scope="global"` ranks all conv/linear weights together; `"layer"` prunes each layer by `target`.
    Existing masks are made permanent first, so zeros stay zeros and masks only grow. Works on
    channels_last tensors (which `torch.nn.utils.prune`'s own L1 helpers cannot flatten).
    """
    target = _check_sparsity(target)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {list(SCOPES)}, got {scope!r}")
    layers = [m for _, m in prunable_weights(model)]
    if not layers:
        raise ValueError("the model has no conv or linear weights to prune")
    for m in layers:
        if hasattr(m, "weight_orig"):
            prune.remove(m, "weight")  # bake the current zeros into the (same) parameter
    scores = [m.weight.detach().abs().reshape(-1) for m in layers]
    if scope == "global":
        flat = torch.cat(scores)
        keep = torch.ones_like(flat, dtype=torch.bool)
        k = int(round(target * flat.numel()))
        if k:
            keep[torch.topk(flat, k, largest=False).indices] = False
        masks = keep.split([s.numel() for s in scores])
    else:
        masks = []
        for s in scores:
            keep = torch.ones_like(s, dtype=torch.bool)
            k = int(round(target * s.numel()))
            if k:
                keep[torch.topk(s, k, largest=False).indices] = False
            masks.append(keep)
    for m, keep in zip(layers, masks):
        prune.custom_from_mask(m, "weight", keep.reshape(m.weight.shape).to(m.weight.dtype))
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Remove every pruning mask, keeping its zeros: a plain model whose state dict has no `_orig`/`_mask`."""
    for _, m in prunable_weights(model):
        if hasattr(m, "weight_orig"):
            prune.remove(m, "weight")
    return model


def polynomial_sparsity(step: int, ramp_steps: int, final: float, initial: float = 0.0, exponent: float = 3) -> float:
    """Zhu & Gupta's schedule: `initial` at step 0, `final` from `ramp_steps` on, cubic in between."""
    if ramp_steps <= 0:
        return final
    progress = min(max(step, 0), ramp_steps) / ramp_steps
    return final + (initial - final) * (1 - progress) ** exponent


@dataclass
class SparsitySchedule:
    """A `fit` step hook that raises sparsity to `final` over the first `ramp_fraction` of the steps.

    Masks are updated `updates` times along the ramp (and on its last step, so `final` is always reached
    before training ends and the remaining steps recover at full sparsity). What was applied is a function
    of the step alone, so a fine-tune resumed mid-way (`fit(state_path=...)`) continues the same schedule.
    """

    final: float
    initial: float = 0.0
    ramp_fraction: float = 0.75
    updates: int = 16
    scope: str = "global"
    applied: float | None = None  # None: not called yet (a fresh or a resumed run)

    def _update_steps(self, total_steps: int) -> tuple[int, int]:
        ramp = max(1, min(total_steps, round(self.ramp_fraction * total_steps)))
        return ramp, max(1, ramp // self.updates)

    def __call__(self, model: nn.Module, step: int, total_steps: int) -> None:
        ramp, every = self._update_steps(total_steps)
        if self.applied is None:  # the target of the last update before `step` (the masks a resume restored)
            last = min(ramp, step - 1) if step - 1 >= ramp else (step - 1) // every * every
            self.applied = polynomial_sparsity(last, ramp, self.final, self.initial) if last > 0 else self.initial
        if step > ramp or (step % every and step != ramp):
            return
        target = polynomial_sparsity(step, ramp, self.final, self.initial)
        if target > self.applied:
            set_sparsity(model, target, scope=self.scope)
            self.applied = target


def sparse_finetune(model: nn.Module, data, config: TrainConfig, target_sparsity: float, *, scope: str = "global",
                    teacher: nn.Module | None = None, device=None, ramp_fraction: float = 0.75,
                    state_path=None) -> tuple[nn.Module, dict, FitResult]:
    """Fine-tune `model` (in place) with `config` while its weights are pruned to `target_sparsity`; masks end
    permanent. The record holds the reached sparsity, the dense and sparse gzip sizes, costs and the
    fine-tune results; the `FitResult` holds the curve and the test predictions."""
    target = _check_sparsity(target_sparsity)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {list(SCOPES)}, got {scope!r}")
    make_permanent(model)  # a model pruned earlier starts from its plain zeros
    dense_gzip = gzip_size_mb(model)
    schedule = SparsitySchedule(target, ramp_fraction=ramp_fraction, scope=scope)
    set_sparsity(model, 0.0, scope=scope)  # attach (all-ones) masks before the optimizer sees the parameters
    result = fit(model, data, config, teacher=teacher, device=device, step_hook=schedule, state_path=state_path)
    make_permanent(model)
    costs = model_summary(model)
    nonzero = sum(int((m.weight != 0).sum()) for _, m in prunable_weights(model))
    record = {"target_sparsity": target, "sparsity": sparsity(model), "scope": scope, "epochs": config.epochs,
              **costs, "nonzero_weights": nonzero, "gzip_mb_dense": dense_gzip,
              "gzip_reduction": dense_gzip / costs["gzip_mb"], **result.summary()}
    return model, record, result
