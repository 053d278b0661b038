"""The errors a reader should look at first: wrong predictions the model was most sure of.

worst = most_confident_errors(y_true, probs, y_pred, paths, k=16)
worst[0]  # {"index", "path", "true", "predicted", "probability", "true_probability"}
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from neurocascade.data.layout import CLASSES


def most_confident_errors(
    y_true: np.ndarray,
    probs: np.ndarray,
    y_pred: np.ndarray,
    paths: Sequence[str],
    k: int,
    classes: Sequence[str] = CLASSES,
) -> list[dict]:
    """Up to k misclassified images, by the probability given to the (wrong) predicted class, highest first.

    Ties are broken by path, then index, so the list is the same on every machine.
    """
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    probs = np.asarray(probs, np.float64)
    if len(paths) != len(y_true):
        raise ValueError(f"{len(paths)} paths for {len(y_true)} images")
    wrong = np.flatnonzero(y_true != y_pred)
    p_pred = probs[wrong, y_pred[wrong]]
    order = sorted(range(wrong.size), key=lambda j: (-p_pred[j], str(paths[wrong[j]]), int(wrong[j])))
    return [
        {
            "index": int(wrong[j]),
            "path": str(paths[wrong[j]]),
            "true": classes[y_true[wrong[j]]],
            "predicted": classes[y_pred[wrong[j]]],
            "probability": float(p_pred[j]),
            "true_probability": float(probs[wrong[j], y_true[wrong[j]]]),
        }
        for j in order[: max(k, 0)]
    ]
