"""Paired accuracy differences: two models scored on the same test images.

The difference of two accuracies is the same number either way; what pairing adds is its uncertainty.
Two independent 10,000-image accuracies near 90% each carry a standard error of 0.3 points, so a
0.3-point claim drowns; on the same images only the images the two models disagree on vary, and the
interval shrinks to what the disagreements allow. `paired_difference` gives the difference, its 95%
interval from the per-image differences, the images each model alone gets right, and the exact
McNemar (sign) test on those two counts.
"""
from __future__ import annotations

import math

import numpy as np

COLUMNS = ["paired_delta", "paired_ci95", "gained", "lost", "mcnemar_p"]


def _binomial_two_sided(k: int, n: int) -> float:
    """P(at least as lopsided as k of n | p = 1/2), both sides: McNemar's exact test."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    log_half = n * math.log(0.5)
    tail = sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half)
               for i in range(k + 1))
    return min(1.0, 2.0 * tail)


def paired_difference(pred, reference, labels) -> dict:
    """Top-1 of `pred` minus top-1 of `reference` (percentage points) on the same images `labels`.

    `paired_ci95`: half-width of the normal 95% interval of the mean per-image difference; `gained` / `lost`:
    images only `pred` / only `reference` classifies correctly; `mcnemar_p`: exact two-sided p-value that
    the two models are equally accurate. Inputs: top-1 class indices (arrays or tensors) of equal length.
    """
    pred, reference, labels = (np.asarray(getattr(a, "cpu", lambda: a)()) for a in (pred, reference, labels))
    if not pred.shape == reference.shape == labels.shape or pred.ndim != 1:
        raise ValueError(f"paired predictions need one label per image in each, got shapes "
                         f"{pred.shape}, {reference.shape}, {labels.shape}")
    n = len(labels)
    if n == 0:
        raise ValueError("paired predictions need at least one image")
    right, ref_right = pred == labels, reference == labels
    diff = right.astype(np.float64) - ref_right
    half = 1.96 * diff.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan
    gained, lost = int((right & ~ref_right).sum()), int((ref_right & ~right).sum())
    return {"paired_delta": 100.0 * diff.mean(), "paired_ci95": 100.0 * half, "gained": gained, "lost": lost,
            "mcnemar_p": _binomial_two_sided(gained, gained + lost)}


def format_delta(delta: float, ci95: float) -> str:
    """`-0.12 ± 0.09` (points), for tables a person reads."""
    return "—" if math.isnan(delta) else f"{delta:+.2f} ± {ci95:.2f}"


__all__ = ["COLUMNS", "paired_difference", "format_delta"]
