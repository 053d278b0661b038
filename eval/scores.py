"""Fast scalar metrics, registered by name, for the bootstrap.

The bootstrap calls each metric about a thousand times, so these work from a `np.bincount` confusion matrix
and a few vector operations (tens of microseconds) instead of scikit-learn's validated functions (about a
millisecond each). `tests/eval/test_scores.py` checks each against scikit-learn.

Every metric has the signature `fn(y_true, probs, y_pred) -> float` (NaN when undefined on that sample);
`probs` may be None for metrics that only read the hard predictions.

    fns = headline_metrics(CLASSES)      # the registered metrics plus one recall per class
    fns["macro_f1"](y_true, probs, y_pred)
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy.stats import rankdata

from neurocascade.data.layout import CLASSES

MetricFn = Callable[[np.ndarray, "np.ndarray | None", np.ndarray], float]
NO_TUMOUR = CLASSES.index("no_tumor")

METRICS: dict[str, MetricFn] = {}
"""Registered class-agnostic metrics, in table order."""
LOWER_IS_BETTER = frozenset({"brier", "ece", "log_loss"})


def register(name: str) -> Callable[[MetricFn], MetricFn]:
    """Add a metric under `name`; a second metric with the same name is a bug."""

    def add(fn: MetricFn) -> MetricFn:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is already registered")
        METRICS[name] = fn
        return fn

    return add


def get_metric(name: str) -> MetricFn:
    """The registered metric `name`, or an error listing the valid names."""
    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}; registered: {', '.join(METRICS)}")
    return METRICS[name]


def _n_classes(y_true: np.ndarray, probs: np.ndarray | None, y_pred: np.ndarray) -> int:
    # Without probabilities the class count is inferred; trailing empty classes change none of the metrics.
    if probs is not None:
        return probs.shape[1]
    return int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    """(n, n) counts, rows = true class, columns = predicted class."""
    return np.bincount(y_true * n + y_pred, minlength=n * n).reshape(n, n)


def _cm(y_true, probs, y_pred) -> np.ndarray:
    return confusion_counts(y_true, y_pred, _n_classes(y_true, probs, y_pred))


def _per_class_f1(cm: np.ndarray) -> np.ndarray:
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)  # 2TP + FP + FN
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / denom, np.nan)  # NaN: class neither present nor predicted


@register("accuracy")
def accuracy(y_true, probs, y_pred) -> float:
    return float(np.mean(y_true == y_pred))


@register("balanced_accuracy")
def balanced_accuracy(y_true, probs, y_pred) -> float:
    cm = _cm(y_true, probs, y_pred)
    support = cm.sum(1)
    present = support > 0  # as scikit-learn: classes absent from y_true are left out of the mean
    return float(np.mean(np.diag(cm)[present] / support[present]))


def macro_f1_score(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """The project's one macro-F1 (training, early stopping, QAT, export, eval): the mean F1 of the classes that
    are present or predicted. A class neither present nor predicted has no F1 and is left out of the mean
    (scikit-learn's `zero_division=np.nan`), rather than counted as 0, which would punish a model for a class its
    evaluation set lacks. When every class is present (the usual validation set) the two rules agree exactly."""
    cm = confusion_counts(np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64), n_classes)
    return float(np.nanmean(_per_class_f1(cm)))


def macro_f1_of_probs(y_true: np.ndarray, probs: np.ndarray, n_classes: int) -> float:
    """`macro_f1_score` of the arg-max predictions of (N, n_classes) probabilities."""
    return macro_f1_score(y_true, np.argmax(probs, axis=1), n_classes)


@register("macro_f1")
def macro_f1(y_true, probs, y_pred) -> float:
    return macro_f1_score(y_true, y_pred, _n_classes(y_true, probs, y_pred))


@register("weighted_f1")
def weighted_f1(y_true, probs, y_pred) -> float:
    cm = _cm(y_true, probs, y_pred)
    support = cm.sum(1)
    f1 = np.nan_to_num(_per_class_f1(cm))  # NaN only where support is 0, so its weight is 0 anyway
    return float(np.sum(f1 * support) / support.sum())


@register("mcc")
def mcc(y_true, probs, y_pred) -> float:
    cm = _cm(y_true, probs, y_pred).astype(np.float64)
    t, p, n = cm.sum(1), cm.sum(0), cm.sum()
    cov_tp = np.trace(cm) * n - t @ p
    cov_pp, cov_tt = n * n - p @ p, n * n - t @ t
    if cov_pp * cov_tt == 0:
        return 0.0  # scikit-learn's convention for a constant truth or prediction
    return float(cov_tp / np.sqrt(cov_tt * cov_pp))


@register("kappa")
def kappa(y_true, probs, y_pred) -> float:
    cm = _cm(y_true, probs, y_pred).astype(np.float64)
    n = cm.sum()
    po, pe = np.trace(cm) / n, (cm.sum(1) @ cm.sum(0)) / (n * n)
    return float((po - pe) / (1 - pe)) if pe < 1 else float("nan")


@register("tumour_sensitivity")
def tumour_sensitivity(y_true, probs, y_pred) -> float:
    """Share of tumour images (any subtype) not called no_tumor: the tumour/no-tumour view of any model."""
    tumour = y_true != NO_TUMOUR
    return float(np.mean(y_pred[tumour] != NO_TUMOUR)) if tumour.any() else float("nan")


@register("tumour_specificity")
def tumour_specificity(y_true, probs, y_pred) -> float:
    healthy = y_true == NO_TUMOUR
    return float(np.mean(y_pred[healthy] == NO_TUMOUR)) if healthy.any() else float("nan")


def _ovr_auc(y_true: np.ndarray, scores: np.ndarray, k: int) -> float:
    """One-vs-rest ROC-AUC of class k as the Mann-Whitney U (ties counted half, as the trapezoidal ROC)."""
    pos = y_true == k
    n_pos = int(pos.sum())
    n_neg = pos.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@register("roc_auc_macro")
def roc_auc_macro(y_true, probs, y_pred) -> float:
    aucs = [_ovr_auc(y_true, probs[:, k], k) for k in range(probs.shape[1])]
    return float(np.nanmean(aucs)) if not np.all(np.isnan(aucs)) else float("nan")


@register("brier")
def brier(y_true, probs, y_pred) -> float:
    """Mean over images of the sum over classes of (p − one-hot)²; 0 is perfect, 2 the worst."""
    sq = np.square(probs).sum(1) - 2 * probs[np.arange(len(y_true)), y_true] + 1.0
    return float(np.mean(sq))


def top_label_bins(probs: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bin index, confidence, top label) per image; bins are equal-width and right-closed, (0.1, 0.2]."""
    conf = probs.max(1)
    # Count the inner edges k/n strictly below conf: exact at the edges, where ceil(conf * n) is not (0.7 * 10).
    inner = np.arange(1, n_bins) / n_bins
    return np.searchsorted(inner, conf, side="left"), conf, probs.argmax(1)


def ece_from_bins(bins: np.ndarray, conf: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    """Σ_bins (count/N) · |mean confidence − accuracy| = Σ_bins |Σ conf − Σ correct| / N."""
    gap = np.bincount(bins, weights=conf, minlength=n_bins) - np.bincount(bins, weights=correct, minlength=n_bins)
    return float(np.abs(gap).sum() / len(bins))


def ece_metric(n_bins: int) -> MetricFn:
    """Top-label expected calibration error with `n_bins` equal-width bins, as a bootstrap metric."""

    def ece(y_true, probs, y_pred) -> float:
        bins, conf, top = top_label_bins(probs, n_bins)
        return ece_from_bins(bins, conf, (top == y_true).astype(np.float64), n_bins)

    return ece


def recall_of(k: int) -> MetricFn:
    """Recall of class index k (NaN when the sample holds no image of class k)."""

    def recall(y_true, probs, y_pred) -> float:
        mask = y_true == k
        return float(np.mean(y_pred[mask] == k)) if mask.any() else float("nan")

    return recall


def headline_metrics(classes: Sequence[str] = CLASSES, ece_bins: int = 10) -> dict[str, MetricFn]:
    """The metrics every four-class report gives with a CI: the registry, `recall_<class>` each, and `ece`."""
    fns = dict(METRICS)
    fns.update({f"recall_{name}": recall_of(k) for k, name in enumerate(classes)})
    fns["ece"] = ece_metric(ece_bins)
    return fns
