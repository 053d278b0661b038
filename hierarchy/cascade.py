"""Combining the gate and the subtype model into a four-class classifier.

Soft: P(no tumour) = 1 − p, P(k) = p · q_k, with p the gate's P(tumour) and q the subtype distribution, so
the cascade is scored, calibrated and ranked exactly like a flat model. Hard: tumour when p ≥ τ, then the
subtype's arg-max; τ is chosen on validation to reach a target tumour sensitivity, because a missed tumour
costs more than a false alarm.
"""

from __future__ import annotations

import numpy as np

from neurocascade.hierarchy.stages import NO_TUMOUR


def soft_probabilities(p_tumour: np.ndarray, q_subtype: np.ndarray) -> np.ndarray:
    """(N, 4) probabilities in CLASSES order from P(tumour) (N,) and subtype probabilities (N, 3)."""
    p = np.asarray(p_tumour, dtype=np.float64)[:, None]
    return np.concatenate([p * np.asarray(q_subtype, dtype=np.float64), 1.0 - p], axis=1)


def hard_predictions(p_tumour: np.ndarray, q_subtype: np.ndarray, tau: float) -> np.ndarray:
    """Class index per image: no tumour below τ, else the most probable subtype."""
    return np.where(np.asarray(p_tumour) >= tau, np.argmax(q_subtype, axis=1), NO_TUMOUR).astype(np.int32)


def choose_tau(p_tumour: np.ndarray, is_tumour: np.ndarray, target_sensitivity: float) -> float:
    """The highest threshold whose tumour sensitivity on these (validation) images reaches the target.

    Highest, because among thresholds meeting the sensitivity target it gives the best specificity.
    """
    scores = np.sort(np.asarray(p_tumour, dtype=np.float64)[np.asarray(is_tumour, bool)])
    if scores.size == 0:
        raise ValueError("no tumour images to choose the gate threshold on")
    # With τ = scores[k], images k.. are called tumour: sensitivity (n − k) / n ≥ target.
    k = int(np.floor(scores.size * (1.0 - target_sensitivity) + 1e-9))
    return float(scores[min(k, scores.size - 1)])
