"""Point estimates of everything we report about a classifier, as flat JSON-ready dicts.

Labels are indices into `classes` (default `neurocascade.data.layout.CLASSES`). Threshold metrics read the hard predictions
(`y_pred`, by default the arg-max; the cascade passes its τ-based ones); ranking and proper-scoring metrics
read the soft probabilities. An undefined value (AUC of a class absent from `y_true`, precision of a class
never predicted) is None, never a crash and never a silent 0.

    m = classification_metrics(y_true, probs, y_pred)
    m["macro_f1"], m["recall_glioma"], m["roc_auc_macro"]
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    cohen_kappa_score,
    f1_score,
    log_loss,
    matthews_corrcoef,
    precision_recall_fscore_support,
    roc_auc_score,
)

from neurocascade.data.layout import CLASSES
from neurocascade.eval.scores import NO_TUMOUR, confusion_counts, macro_f1_score
from neurocascade.hierarchy.cascade import tumour_called


def _float(x: float) -> float | None:
    """A Python float, or None for NaN (JSON has no NaN)."""
    x = float(x)
    return None if np.isnan(x) else x


def check_inputs(
    y_true: np.ndarray, probs: np.ndarray | None, y_pred: np.ndarray | None, n_classes: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Validated int labels and float64 probabilities; shape or range mistakes fail with what was expected."""
    y_true = np.asarray(y_true)
    if y_true.ndim != 1 or y_true.size == 0:
        raise ValueError(f"y_true must be a non-empty 1-D array of class indices, got shape {y_true.shape}")
    y_true = y_true.astype(np.int64)
    if y_true.min() < 0 or y_true.max() >= n_classes:
        raise ValueError(f"y_true holds labels outside 0..{n_classes - 1}")
    if probs is not None:
        probs = np.asarray(probs, dtype=np.float64)
        if probs.shape != (len(y_true), n_classes):
            raise ValueError(f"probs must have shape ({len(y_true)}, {n_classes}), got {probs.shape}")
        if not np.allclose(probs.sum(1), 1.0, atol=1e-3):
            raise ValueError("probs rows must sum to 1 (pass probabilities, not logits)")
    if y_pred is not None:
        y_pred = np.asarray(y_pred).astype(np.int64)
        if y_pred.shape != y_true.shape:
            raise ValueError(f"y_pred must have shape {y_true.shape}, got {y_pred.shape}")
        if y_pred.min() < 0 or y_pred.max() >= n_classes:
            raise ValueError(f"y_pred holds labels outside 0..{n_classes - 1}")
    return y_true, probs, y_pred


def _ovr_scores(y_true: np.ndarray, probs: np.ndarray, k: int) -> tuple[float | None, float | None]:
    """(ROC-AUC, average precision) of class k against the rest; None when k or the rest is absent."""
    pos = y_true == k
    if pos.all() or not pos.any():
        return None, None
    return float(roc_auc_score(pos, probs[:, k])), float(average_precision_score(pos, probs[:, k]))


def _mean_defined(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def classification_metrics(
    y_true: np.ndarray, probs: np.ndarray, y_pred: np.ndarray | None = None, classes: Sequence[str] = CLASSES
) -> dict:
    """Accuracy, balanced accuracy, per-class P/R/F1/support, macro/weighted F1, κ, MCC, AUCs, log-loss, Brier.

    Macro means skip undefined classes (F1 of a class neither present nor predicted; AUC of an absent class);
    balanced accuracy averages the recall of the classes present, as scikit-learn does.
    """
    n = len(classes)
    y_true, probs, y_pred = check_inputs(y_true, probs, y_pred, n)
    if y_pred is None:
        y_pred = probs.argmax(1)
    labels = list(range(n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined values are reported as None below, not as warnings
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, zero_division=np.nan
        )
        out: dict = {
            "n": int(len(y_true)),
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
            "macro_f1": macro_f1_score(y_true, y_pred, n),
            "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=np.nan)),
            "kappa": _float(cohen_kappa_score(y_true, y_pred, labels=labels)),
            "mcc": float(matthews_corrcoef(y_true, y_pred)),
            "log_loss": float(log_loss(y_true, probs, labels=labels)),
            "brier": float(brier_score_loss(y_true, probs, labels=labels)),
        }
    aucs = {name: _ovr_scores(y_true, probs, k) for k, name in enumerate(classes)}
    out["roc_auc_macro"] = _mean_defined([roc for roc, _ in aucs.values()])
    out["pr_auc_macro"] = _mean_defined([pr for _, pr in aucs.values()])
    for k, name in enumerate(classes):
        out[f"precision_{name}"] = _float(precision[k])
        out[f"recall_{name}"] = _float(recall[k])
        out[f"f1_{name}"] = _float(f1[k])
        out[f"support_{name}"] = int(support[k])
        out[f"roc_auc_{name}"], out[f"pr_auc_{name}"] = aucs[name]
    return out


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(counts, row-normalised) (n, n) matrices, rows = true class; a row with no images stays all 0."""
    counts = confusion_counts(np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64), n)
    rows = counts.sum(1, keepdims=True)
    return counts, np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)


def gate_metrics(y_true4: np.ndarray, p_tumour: np.ndarray, tau: float) -> dict:
    """Tumour sensitivity and specificity of the gate at τ (tumour when p ≥ τ, as in neurocascade.hierarchy.cascade)."""
    y = np.asarray(y_true4)
    tumour = y != NO_TUMOUR
    called = tumour_called(np.asarray(p_tumour, dtype=np.float64), tau)
    tp, fn = int(np.sum(tumour & called)), int(np.sum(tumour & ~called))
    tn, fp = int(np.sum(~tumour & ~called)), int(np.sum(~tumour & called))
    auc = float(roc_auc_score(tumour, p_tumour)) if 0 < tumour.sum() < tumour.size else None
    return {
        "tau": float(tau),
        "tumour_sensitivity": tp / (tp + fn) if tp + fn else None,
        "tumour_specificity": tn / (tn + fp) if tn + fp else None,
        "tp": tp,
        "fn": fn,
        "tn": tn,
        "fp": fp,
        "gate_roc_auc": auc,
    }


def subtype_metrics(y_true4: np.ndarray, q_subtype: np.ndarray) -> dict:
    """The subtype model alone, on the true-tumour images (whatever the gate said about them)."""
    y = np.asarray(y_true4)
    mask = y != NO_TUMOUR
    if not mask.any():
        return {"n": 0, "accuracy": None, "macro_f1": None}
    y_sub, pred = y[mask], np.asarray(q_subtype)[mask].argmax(1)
    labels = [k for k in range(len(CLASSES)) if k != NO_TUMOUR]
    return {
        "n": int(mask.sum()),
        "accuracy": float(np.mean(y_sub == pred)),
        "macro_f1": macro_f1_score(y_sub, pred, len(labels)),
    }


def error_propagation(y_true4: np.ndarray, y_pred4: np.ndarray) -> dict:
    """Where the final errors come from: gate misses, gate false alarms, subtype confusions.

    For a flat model the same three kinds are read off its four-class predictions, so the two compare.
    """
    y, p = np.asarray(y_true4), np.asarray(y_pred4)
    tumour, called = y != NO_TUMOUR, p != NO_TUMOUR
    wrong = y != p
    return {
        "n": int(y.size),
        "errors": int(wrong.sum()),
        "gate_misses": int(np.sum(tumour & ~called)),
        "gate_false_alarms": int(np.sum(~tumour & called)),
        "subtype_confusions": int(np.sum(tumour & called & wrong)),
    }
