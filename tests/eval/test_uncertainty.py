"""Bootstrap intervals are seeded, stratified and sane; McNemar on hand-made contingencies."""

import time

import numpy as np
import pytest

from neurocascade.eval.scores import METRICS, headline_metrics
from neurocascade.eval.uncertainty import bootstrap_ci, mcnemar, paired_bootstrap_diff, resample_indices


def _model(seed: int, n: int = 400, skill: float = 1.5):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), n // 4)
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), y] += skill
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, probs, probs.argmax(1)


def test_same_seed_same_interval_and_other_seed_differs():
    y, probs, pred = _model(0, n=120)
    fns = headline_metrics()
    a = bootstrap_ci(y, probs, pred, fns, n_resamples=100, seed=7)
    assert a == bootstrap_ci(y, probs, pred, fns, n_resamples=100, seed=7)
    assert a != bootstrap_ci(y, probs, pred, fns, n_resamples=100, seed=8)


def test_interval_contains_the_point_estimate():
    y, probs, pred = _model(1)
    for name, ci in bootstrap_ci(y, probs, pred, headline_metrics(), 300, seed=0).items():
        assert ci["low"] <= ci["value"] <= ci["high"], name
        assert ci["high"] - ci["low"] < 0.3, name  # 400 images: intervals a few points wide


def test_stratified_resamples_keep_class_counts():
    y = np.array([0] * 5 + [1] * 3 + [3] * 2)
    for idx in resample_indices(y, 20, seed=0):
        assert np.bincount(y[idx], minlength=4).tolist() == [5, 3, 0, 2]
    unstratified = [np.bincount(y[idx], minlength=4).tolist() for idx in resample_indices(y, 20, 0, False)]
    assert any(c != [5, 3, 0, 2] for c in unstratified)


def test_undefined_metric_gives_none():
    y = np.array([0, 0, 1, 1])
    ci = bootstrap_ci(y, None, y, {"never": lambda *_: float("nan")}, 10, seed=0)
    assert ci["never"] == {"value": None, "low": None, "high": None}


def test_paired_difference_of_identical_models_is_exactly_zero():
    y, _, pred = _model(2)
    d = paired_bootstrap_diff(y, pred, pred, METRICS["macro_f1"], 200, seed=0)
    assert (d["value"], d["low"], d["high"], d["excludes_zero"]) == (0.0, 0.0, 0.0, False)


def test_paired_difference_uses_the_same_resamples():
    y, _, good = _model(3, skill=3.0)
    _, _, poor = _model(4, skill=0.5)
    d = paired_bootstrap_diff(y, good, poor, METRICS["accuracy"], 200, seed=5)
    by_hand = [np.mean(good[i] == y[i]) - np.mean(poor[i] == y[i]) for i in resample_indices(y, 200, 5)]
    assert d["low"] == pytest.approx(np.percentile(by_hand, 2.5))
    assert d["high"] == pytest.approx(np.percentile(by_hand, 97.5))
    assert d["value"] > 0 and d["excludes_zero"]


def test_mcnemar_exact_hand_case():
    # b = 8 images only A got right, c = 2 only B; 5 both right, 5 both wrong.
    y = np.zeros(20, int)
    a = np.array([0] * 8 + [1] * 2 + [0] * 5 + [1] * 5)
    b = np.array([1] * 8 + [0] * 2 + [0] * 5 + [1] * 5)
    m = mcnemar(y, a, b)
    # Two-sided binomial(10, 1/2): 2 · P(X ≤ 2) = 2 · (1 + 10 + 45) / 1024 = 0.109375
    assert (m["b"], m["c"], m["n_discordant"], m["statistic"]) == (8, 2, 10, 2)
    assert m["p_value"] == pytest.approx(0.109375, abs=1e-12)
    assert "exact" in m["test"] and "binomtest" in m["test"]
    assert mcnemar(y, b, a)["p_value"] == pytest.approx(0.109375, abs=1e-12)


def test_mcnemar_without_discordant_pairs():
    y = np.array([0, 1, 2])
    assert mcnemar(y, y, y)["p_value"] == 1.0


def test_bootstrap_speed_budget():
    # The brief: 1,000 resamples of ~400 images for ~6 metrics in under 5 s (about 0.15 s on 2 cores).
    y, probs, pred = _model(5)
    fns = {k: METRICS[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "mcc", "kappa")}
    start = time.perf_counter()
    bootstrap_ci(y, probs, pred, fns, 1000, seed=0)
    assert time.perf_counter() - start < 5.0
