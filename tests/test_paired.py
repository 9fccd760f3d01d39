import math

import numpy as np
import pytest
import torch

from compress.paired import format_delta, paired_difference


def _preds(labels, wrong):
    """Predictions equal to `labels` except at the indices `wrong`."""
    p = labels.copy()
    p[wrong] = (labels[wrong] + 1) % 10
    return p


def test_difference_counts_and_interval():
    labels = np.arange(1000) % 10
    ref = _preds(labels, np.arange(0, 100))          # 90.0%
    new = _preds(labels, np.arange(50, 130))         # 92.0%: gains 0-49, loses 100-129
    r = paired_difference(new, ref, labels)
    assert r["paired_delta"] == pytest.approx(2.0)
    assert (r["gained"], r["lost"]) == (50, 30)
    d = np.r_[np.ones(50), -np.ones(30), np.zeros(920)]
    assert r["paired_ci95"] == pytest.approx(100 * 1.96 * d.std(ddof=1) / math.sqrt(1000))
    assert 0.02 < r["mcnemar_p"] < 0.05  # 50 vs 30 discordant: two-sided exact p = 0.033


def test_pairing_is_tighter_than_two_independent_accuracies():
    """Two models that agree on almost every image: a small difference is resolved."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 10_000)
    ref = _preds(labels, rng.choice(10_000, 1_000, replace=False))
    new = ref.copy()
    flip = np.flatnonzero(ref != labels)[:40]
    new[flip] = labels[flip]                         # 40 images fixed, nothing broken: +0.40 points
    r = paired_difference(new, ref, labels)
    unpaired = 100 * 1.96 * math.sqrt(2 * 0.9 * 0.1 / 10_000)
    assert r["paired_delta"] == pytest.approx(0.4)
    assert r["paired_ci95"] < unpaired / 4
    assert r["mcnemar_p"] < 1e-10


def test_identical_models_and_tensors():
    labels = torch.arange(20) % 10
    r = paired_difference(labels.clone(), labels.clone(), labels)
    assert r == {"paired_delta": 0.0, "paired_ci95": 0.0, "gained": 0, "lost": 0, "mcnemar_p": 1.0}
    assert format_delta(r["paired_delta"], r["paired_ci95"]) == "+0.00 ± 0.00"


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="one label per image"):
        paired_difference(np.zeros(5), np.zeros(4), np.zeros(5))
