"""The Keras model's validation probabilities the export checks its TFLite models against.

Training already predicted every validation image with the saved model (`val_predictions.npz`, after any
temperature was folded in); predicting them again costs the export ~25–40 s of Keras inference per model on two
cores, three models per protocol of `make results`. The saved probabilities are used when they are this model's:
the file names the same validation labels in the same order, and the model, run now on a spread of
`SPOT_CHECK_IMAGES` of those images, gives the saved probabilities to within `TOLERANCE`. Anything else — no file,
another split, a model changed after training (a temperature folded in by hand, a file swapped) — and every
image is predicted again, saying why.

    keras_p, how = keras_validation_probs(model, run_dir, "gate", x_val, y4_val, batch_size=32)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurocascade.hierarchy.engine import predict_batches
from neurocascade.tf import keras

VAL_PREDICTIONS = "val_predictions.npz"
SPOT_CHECK_IMAGES = 16
# Training predicts through the cached activations, the export through the whole model: the same float32 arithmetic
# in another order, ~1e-6 apart; a different model is off by far more than this.
TOLERANCE = 1e-4


def saved_validation_probs(run_dir: Path, stage: str, y4_val: np.ndarray, n_classes: int) -> np.ndarray | None:
    """Training's probabilities of `stage` for the validation images labelled `y4_val`, or None if the file has no
    such array (missing, unreadable, another split or shape)."""
    try:
        with np.load(Path(run_dir) / VAL_PREDICTIONS, allow_pickle=False) as saved:
            y_true, probs = saved["y_true"], saved[stage]
    except (OSError, KeyError, ValueError, EOFError):
        return None
    if not np.array_equal(y_true, y4_val) or probs.shape != (len(y4_val), n_classes) or not np.isfinite(probs).all():
        return None
    return probs.astype(np.float64)


def keras_validation_probs(
    model: keras.Model, run_dir: Path, stage: str, x_val: np.ndarray, y4_val: np.ndarray, batch_size: int
) -> tuple[np.ndarray, str]:
    """`model`'s probabilities on every validation image, and one line saying where they came from (module doc)."""
    n_classes = int(model.output_shape[-1])
    saved = saved_validation_probs(run_dir, stage, y4_val, n_classes)
    if saved is None:
        why = f"no {stage} probabilities for this validation split in {VAL_PREDICTIONS}"
    else:
        picks = np.unique(np.linspace(0, len(x_val) - 1, min(SPOT_CHECK_IMAGES, len(x_val))).round().astype(int))
        gap = float(np.abs(predict_batches(model, x_val[picks], batch_size) - saved[picks]).max()) if len(picks) else 0
        if gap <= TOLERANCE:
            return saved, (
                f"Keras validation probabilities from training's {VAL_PREDICTIONS} "
                f"(the model gives them again on {len(picks)} images: max |Δp| {gap:.1e})"
            )
        why = f"{VAL_PREDICTIONS} is not this model's output (max |Δp| {gap:.2g} on {len(picks)} images)"
    probs = predict_batches(model, x_val, batch_size).astype(np.float64)
    return probs, f"Keras validation probabilities predicted again: {why}"
