"""Mixup on cached rows (issue 13): each epoch, every training row is blended with another row of the same
pass, inputs and targets alike, with a weight drawn from Beta(alpha, alpha).

The backbone's activations are cached, so mixup happens where the trained part starts: on pooled features in
phase 1 and on the cut activations (and pooled taps) in phase 2 — "manifold mixup" at the frozen/trained
boundary. It is fresh every epoch at no backbone cost, which fixed augmented passes are not.
"""

from __future__ import annotations

import numpy as np


def mix_rows(
    inputs: np.ndarray | list[np.ndarray],
    targets: np.ndarray,
    row_weights: np.ndarray,
    alpha: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray | list[np.ndarray], np.ndarray, np.ndarray]:
    """(mixed inputs, mixed one-hot targets, mixed per-row weights): row i becomes λ_i·row i + (1 − λ_i)·row π(i)
    for a random permutation π and λ_i ~ Beta(alpha, alpha). Every input of a multi-input model is mixed with
    the same π and λ; class weights are mixed like the targets, so a blend of two classes weighs as its parts."""
    n = len(targets)
    lam = rng.beta(alpha, alpha, size=n).astype(np.float32)
    partner = rng.permutation(n)

    def mix(a: np.ndarray) -> np.ndarray:
        w = lam.reshape((n,) + (1,) * (a.ndim - 1))
        return (w * a + (1 - w) * a[partner]).astype(np.float32)

    mixed = [mix(a) for a in inputs] if isinstance(inputs, list) else mix(inputs)
    return mixed, mix(targets), lam * row_weights + (1 - lam) * row_weights[partner]
