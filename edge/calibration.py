"""Which training images calibrate a model's quantized ranges (`export.calibration`, `export.representative_samples`).

    idx = calibration_indices(labels, n=200, how="balanced", seed=0)    # indices into the model's training images
    converter.representative_dataset = representative(images[idx])

Post-training quantization sets every activation's range from what the calibration images produce. A seeded-random
draw follows the training mix, so a rare class (or, for the gate, a rare tumour type inside "tumour") may set no
range at all, and its images then clip at inference. "balanced" takes the same number of images of each label
present (all of a label's images when it has fewer; the rest filled in the seeded order from the others), so every
class is seen by the ranges. The export and `quant-debug` calibrate on the same images, so the diagnosis is of the
exported model.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from neurocascade.config import EXPORT_CALIBRATIONS


def calibration_indices(labels: np.ndarray, n: int, how: str, seed: int) -> np.ndarray:
    """Sorted indices of `n` (at most len(labels)) calibration images; `how` is "random" or "balanced" (module doc)."""
    if how not in EXPORT_CALIBRATIONS:
        raise ValueError(f"unknown calibration {how!r}; expected one of {', '.join(EXPORT_CALIBRATIONS)}")
    labels = np.asarray(labels)
    n = min(int(n), len(labels))
    order = np.random.default_rng(seed).permutation(len(labels))
    if how == "random":
        return np.sort(order[:n])
    classes = np.unique(labels)
    quota = n // len(classes) if len(classes) else 0
    chosen = [i for c in classes for i in order[labels[order] == c][:quota].tolist()]
    rest = order[~np.isin(order, chosen)]  # the remainder and short classes' shares, in the seeded order
    chosen.extend(rest[: n - len(chosen)].tolist())
    return np.sort(np.asarray(chosen, dtype=np.int64))


def representative(images: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The converter's representative-data generator over `images` (already preprocessed as for evaluation)."""

    def gen() -> Iterator[list[np.ndarray]]:
        for image in images:
            yield [image[None].astype(np.float32)]

    return gen
