"""How sure are we: bootstrap confidence intervals, the paired cascade − flat difference, McNemar's test.

The bootstrap is stratified by default (each resample draws, within every true class, as many images as the
test set has), so class proportions are those of the test set and no class vanishes from a resample. Indices
depend only on `y_true` and `seed`: two models scored on the same images with the same seed see the same
resamples. Intervals are percentile intervals; a resample where a metric is undefined (NaN) is left out.

    ci = bootstrap_ci(y_true, probs, y_pred, headline_metrics(), n_resamples=1000, seed=0)
    ci["macro_f1"]  # {"value": 0.81, "low": 0.77, "high": 0.85}
"""

from __future__ import annotations

from typing import Iterator, Mapping

import numpy as np
from scipy.stats import binomtest

from neurocascade.eval.scores import MetricFn


def resample_indices(y_true: np.ndarray, n_resamples: int, seed: int, stratified: bool = True) -> Iterator[np.ndarray]:
    """Yield `n_resamples` index arrays of len(y_true), drawn with replacement (within each class if stratified)."""
    y_true = np.asarray(y_true)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y_true == c) for c in np.unique(y_true)] if stratified else [np.arange(y_true.size)]
    for _ in range(n_resamples):
        yield np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])


def _interval(values: np.ndarray, alpha: float) -> tuple[float | None, float | None]:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return None, None
    low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def _value(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def bootstrap_ci(
    y_true: np.ndarray,
    probs: np.ndarray | None,
    y_pred: np.ndarray,
    metric_fns: Mapping[str, MetricFn],
    n_resamples: int,
    seed: int,
    stratified: bool = True,
    alpha: float = 0.05,
) -> dict[str, dict[str, float | None]]:
    """{name: {"value", "low", "high"}}: the metric on all images and its (1 − alpha) percentile interval."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    probs = None if probs is None else np.asarray(probs, np.float64)
    samples = np.empty((len(metric_fns), n_resamples))
    for b, idx in enumerate(resample_indices(y_true, n_resamples, seed, stratified)):
        yt, pr, yp = y_true[idx], None if probs is None else probs[idx], y_pred[idx]
        for m, fn in enumerate(metric_fns.values()):
            samples[m, b] = fn(yt, pr, yp)
    out = {}
    for m, (name, fn) in enumerate(metric_fns.items()):
        low, high = _interval(samples[m], alpha)
        out[name] = {"value": _value(fn(y_true, probs, y_pred)), "low": low, "high": high}
    return out


def paired_bootstrap_diff(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    metric: MetricFn,
    n_resamples: int,
    seed: int,
    stratified: bool = True,
    alpha: float = 0.05,
    probs_a: np.ndarray | None = None,
    probs_b: np.ndarray | None = None,
) -> dict:
    """metric(a) − metric(b), both scored on the SAME resampled images, with its percentile interval.

    Pairing removes the shared image-to-image variation, so this interval is much narrower than comparing
    two separate intervals. `excludes_zero` is decided before any rounding.
    """
    y_true = np.asarray(y_true, np.int64)
    pred_a, pred_b = np.asarray(pred_a, np.int64), np.asarray(pred_b, np.int64)
    diffs = np.empty(n_resamples)
    for b, idx in enumerate(resample_indices(y_true, n_resamples, seed, stratified)):
        yt = y_true[idx]
        diffs[b] = metric(yt, None if probs_a is None else probs_a[idx], pred_a[idx]) - metric(
            yt, None if probs_b is None else probs_b[idx], pred_b[idx]
        )
    value = metric(y_true, probs_a, pred_a) - metric(y_true, probs_b, pred_b)
    low, high = _interval(diffs, alpha)
    excludes = low is not None and (low > 0 or high < 0)
    return {
        "value": _value(value),
        "low": low,
        "high": high,
        "excludes_zero": bool(excludes),
        "n_resamples": int(n_resamples),
        "alpha": float(alpha),
    }


def mcnemar(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict:
    """Exact McNemar test of paired correctness: b = only a right, c = only b right; H0: b and c equally likely.

    Exact (binomial) rather than χ², because with a few hundred test images the discordant counts are small.
    `statistic` is min(b, c), the binomial statistic (statsmodels' convention for the exact test).
    """
    y_true, pred_a, pred_b = np.asarray(y_true), np.asarray(pred_a), np.asarray(pred_b)
    right_a, right_b = pred_a == y_true, pred_b == y_true
    b, c = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)
    return {
        "test": "exact McNemar (two-sided binomial test on discordant pairs, scipy.stats.binomtest)",
        "b": b,
        "c": c,
        "n_discordant": b + c,
        "statistic": min(b, c),
        "p_value": min(p, 1.0),
    }
