"""Which training images calibrate a model's quantized ranges (`export.calibration`, `export.representative_samples`).

    idx = calibration_indices(labels, n=200, how="balanced", seed=0)    # indices into the model's training images
    converter.representative_dataset = representative(images[idx])

Post-training quantization sets every activation's range from what the calibration images produce. A seeded-random
draw follows the training mix, so a rare class (or, for the gate, a rare tumour type inside "tumour") may set no
range at all, and its images then clip at inference. "balanced" takes the same number of images of each label
present (all of a label's images when it has fewer; the rest filled in the seeded order from the others), so every
class is seen by the ranges. The export and `quant-debug` calibrate on the same images, so the diagnosis is of the
exported model.

Which draw suits a model is measured, not assumed: on C seed 0 (2026-12-05) "balanced" lifted the flat model's
validation agreement 0.9425 -> 0.960 and lowered the gate's 0.9975 -> 0.990 and the subtype's 0.950 -> 0.941.
"auto" quantizes each model with every draw and keeps, per model, the one whose INT8 model agrees best with Keras
on validation (`choose_calibration`; ties keep "random", the draw that follows the training mix). Validation picks
it, so its validation agreement is a little optimistic; the test agreement eval reports is the honest check.
"""

from __future__ import annotations

from typing import Callable, Iterator, Mapping

import numpy as np

from neurocascade.config import CALIBRATION_DRAWS


def calibration_indices(labels: np.ndarray, n: int, how: str, seed: int) -> np.ndarray:
    """Sorted indices of `n` (at most len(labels)) calibration images; `how` is "random" or "balanced" (module doc)."""
    if how not in CALIBRATION_DRAWS:
        raise ValueError(f"unknown calibration {how!r}; expected one of {', '.join(CALIBRATION_DRAWS)}")
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


def first_draw(how: str) -> str:
    """The draw a model is calibrated with first: `how` itself, or for "auto" "random" (the export tries the others
    after it; `quant-debug` diagnoses that one)."""
    return CALIBRATION_DRAWS[0] if how == "auto" else how


def choose_calibration(agreements: Mapping[str, float | None]) -> tuple[str, str]:
    """The draw "auto" keeps and why, from each draw's validation top-1 agreement with Keras (module doc)."""
    draws = [how for how in CALIBRATION_DRAWS if how in agreements]
    if not draws:
        raise ValueError(f"no calibration draw measured; expected some of {', '.join(CALIBRATION_DRAWS)}")
    if any(agreements[how] is None for how in draws):
        return draws[0], "no validation images to measure agreement on"
    best = max(draws, key=lambda how: agreements[how])  # the first of equals: draws keep CALIBRATION_DRAWS' order
    shown = ", ".join(f"{how} {agreements[how]}" for how in draws)
    return best, f"validation agreement {shown}"


def representative(images: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The converter's representative-data generator over `images` (already preprocessed as for evaluation)."""

    def gen() -> Iterator[list[np.ndarray]]:
        for image in images:
            yield [image[None].astype(np.float32)]

    return gen
