"""Combining the gate and the subtype model into a four-class classifier.

Soft: P(no tumour) = 1 − p, P(k) = p · q_k, with p the gate's P(tumour) and q the subtype distribution, so
the cascade is scored, calibrated and ranked exactly like a flat model. Hard: tumour when p ≥ τ, then the
subtype's arg-max; τ is chosen on validation to reach a target tumour sensitivity, because a missed tumour
costs more than a false alarm.

This is the one definition of the rule, numpy only, so training, eval, export and the LiteRT runtime (which must
not import TensorFlow, neurocascade.edge.bundle ships this file) all call the same functions. The runtime's output columns
come from its sidecar, so each function takes where the subtypes and "no tumour" go (CLASSES order by default).
"""

from __future__ import annotations

import numpy as np

from neurocascade.hierarchy.stages import NO_TUMOUR, STAGES

# Where each subtype of the subtype model's output goes among the four classes (CLASSES order).
SUBTYPE_COLUMNS: tuple[int, ...] = tuple(range(len(STAGES["subtype"].classes)))


def tumour_called(p_tumour: np.ndarray, tau: float) -> np.ndarray:
    """The gate's decision per image: tumour when P(tumour) ≥ τ (compared in the scores' own dtype)."""
    return np.asarray(p_tumour) >= tau


def soft_probabilities(
    p_tumour: np.ndarray,
    q_subtype: np.ndarray,
    no_tumour: int = NO_TUMOUR,
    subtype_columns: tuple[int, ...] = SUBTYPE_COLUMNS,
) -> np.ndarray:
    """(N, 4) probabilities from P(tumour) (N,) and subtype probabilities (N, 3), CLASSES order by default.

    A row of q that is NaN (subtype model not run) gives NaN subtype columns: unknown, never a made-up split.
    """
    p = np.asarray(p_tumour, dtype=np.float64)
    out = np.empty((len(p), len(subtype_columns) + 1), np.float64)
    out[:, no_tumour] = 1.0 - p
    out[:, list(subtype_columns)] = p[:, None] * np.asarray(q_subtype, dtype=np.float64)
    return out


def hard_predictions(
    p_tumour: np.ndarray,
    q_subtype: np.ndarray,
    tau: float,
    no_tumour: int = NO_TUMOUR,
    subtype_columns: tuple[int, ...] = SUBTYPE_COLUMNS,
) -> np.ndarray:
    """Class index per image: no tumour below τ, else the most probable subtype."""
    subtype = np.asarray(subtype_columns)[np.argmax(q_subtype, axis=1)]
    return np.where(tumour_called(p_tumour, tau), subtype, no_tumour).astype(np.int32)


def hard_from_soft(
    probs: np.ndarray,
    tau: float,
    no_tumour: int = NO_TUMOUR,
    subtype_columns: tuple[int, ...] = SUBTYPE_COLUMNS,
) -> np.ndarray:
    """Class index per image from the four soft probabilities alone (the one graph's output): P(tumour) =
    1 − P(no tumour) against τ, then the most probable subtype column (p·q_k ranks as q_k)."""
    probs = np.asarray(probs, dtype=np.float64)
    return hard_predictions(1.0 - probs[:, no_tumour], probs[:, list(subtype_columns)], tau, no_tumour, subtype_columns)


def choose_tau(
    p_tumour: np.ndarray, is_tumour: np.ndarray, target_sensitivity: float, confidence: float = 0.0
) -> float:
    """The highest threshold whose tumour sensitivity on these (held-out) images reaches the target.

    Highest, because among thresholds meeting the sensitivity target it gives the best specificity. With
    `confidence` > 0 it is the one-sided Clopper–Pearson lower bound of that sensitivity, at that confidence,
    that must reach the target: a τ at the point estimate misses the target on about half of new image sets.
    """
    scores = np.sort(np.asarray(p_tumour, dtype=np.float64)[np.asarray(is_tumour, bool)])
    n = scores.size
    if n == 0:
        raise ValueError("no tumour images to choose the gate threshold on")
    # With τ = scores[k], images k.. are called tumour: sensitivity (n − k) / n ≥ target.
    k = int(np.floor(n * (1.0 - target_sensitivity) + 1e-9))
    if confidence > 0:
        from scipy.stats import beta  # training only: the edge runtime that ships this module never calls it

        called = np.arange(1, n + 1)  # tumours called at τ = scores[n − called]
        lower = beta.ppf(1 - confidence, called, n - called + 1)  # Clopper–Pearson; (1 − confidence)^(1/n) at n
        enough = called[lower >= target_sensitivity]
        k = n - int(enough.min()) if enough.size else 0
    return float(scores[min(k, n - 1)])
