"""Occlusion maps for models without gradients (LiteRT): where covering the image lowers the explained class.

Each image is cut into a grid × grid of patches; each patch in turn is painted with the image's mean grey and
the model re-run. A patch's heat is how much the explained class's probability fell (rises count as 0), scaled
to 0..1 per image (Zeiler & Fergus, 2014). It costs grid² forward passes per image, batched.

    heat = occlusion_map(model.predict_proba, images, class_index=[2, 0], grid=8)   # (N, 8, 8) in 0..1
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def occluded_copies(image: np.ndarray, grid: int) -> np.ndarray:
    """grid² copies of `image` (H, W, C), copy k with patch (k // grid, k % grid) set to the image's mean."""
    h, w = image.shape[:2]
    ys, xs = np.linspace(0, h, grid + 1).astype(int), np.linspace(0, w, grid + 1).astype(int)
    copies = np.repeat(image[None], grid * grid, axis=0)
    fill = image.mean(axis=(0, 1))
    for k in range(grid * grid):
        r, c = divmod(k, grid)
        copies[k, ys[r] : ys[r + 1], xs[c] : xs[c + 1]] = fill
    return copies


def occlusion_map(
    predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, class_index: Sequence[int], grid: int
) -> np.ndarray:
    """Float (N, grid, grid) maps in 0..1: the drop of `class_index[i]`'s probability when each patch is hidden."""
    if grid < 1:
        raise ValueError(f"occlusion grid must be ≥ 1, got {grid}")
    images = np.asarray(images)
    maps = np.zeros((len(images), grid, grid), np.float32)
    for i, (image, k) in enumerate(zip(images, class_index)):
        base = float(predict(image[None])[0, k])
        drop = base - np.asarray(predict(occluded_copies(image, grid)))[:, k]
        heat = np.clip(drop, 0, None).reshape(grid, grid)
        peak = heat.max()
        maps[i] = heat / peak if peak > 0 else 0.0
    return maps
