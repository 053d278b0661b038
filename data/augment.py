"""Medical-safe training augmentation, deterministic for a given (batch, seed).

Only changes a real scan could plausibly show: a left-right flip, a small rotation/shift/isotropic zoom
(empty border filled with black, like the MRI background) and a small brightness/contrast change. No elastic
warps, no vertical flips, no colour: those create anatomy or artefacts that do not occur. Training only —
validation and test data are never augmented (see `neurocascade.data.pipeline.make_dataset`).

    aug = Augmenter(cfg.augment)
    batch_aug = aug.apply_batch(batch_uint8, seed=1234)   # same (batch, seed) → same output, input untouched
"""

from __future__ import annotations

import os
import threading

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations otherwise checks PyPI on import

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from neurocascade.config import AugmentConfig  # noqa: E402

__all__ = ["Augmenter"]


def _build(cfg: AugmentConfig) -> A.Compose:
    """The albumentations pipeline; transforms whose range is zero are left out (they would only cost time)."""
    transforms: list[A.BasicTransform] = []
    if cfg.hflip > 0:
        transforms.append(A.HorizontalFlip(p=cfg.hflip))
    if cfg.rotate_deg > 0 or cfg.shift > 0 or cfg.zoom > 0:
        # p=1: every range includes the identity, so the config alone sets the strength.
        # keep_ratio=True: the same zoom on both axes — anisotropic scaling would deform anatomy.
        transforms.append(
            A.Affine(
                rotate=(-cfg.rotate_deg, cfg.rotate_deg),
                translate_percent=(-cfg.shift, cfg.shift),
                scale=(1.0 - cfg.zoom, 1.0 + cfg.zoom),
                keep_ratio=True,
                interpolation=cv2.INTER_LINEAR,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                p=1.0,
            )
        )
    if cfg.brightness > 0 or cfg.contrast > 0:
        transforms.append(
            A.RandomBrightnessContrast(brightness_limit=cfg.brightness, contrast_limit=cfg.contrast, p=1.0)
        )
    return A.Compose(transforms, seed=0)


class Augmenter:
    """Applies the configured augmentation image by image, with every random draw derived from one seed."""

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg
        self._compose = _build(cfg)
        # The Compose owns the RNG state, so reseed-and-run must not interleave between threads
        # (tf.data runs generators on its own threads).
        self._lock = threading.Lock()

    def apply_batch(self, images: np.ndarray, seed: int) -> np.ndarray:
        """uint8 (N, H, W, 3) → augmented copy; identical for identical (images, seed), whatever ran before.

        The Compose is reseeded at the start of each call, so results do not depend on call history or on
        NumPy's global RNG. The input array is never modified.
        """
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(f"expected uint8 (N, H, W, C) images, got {images.dtype} {images.shape}")
        if not self.cfg.enabled:
            return images.copy()
        out = np.empty_like(images)
        with self._lock:
            self._compose.set_random_seed(int(seed))
            for i in range(len(images)):
                # A private contiguous copy: the transforms may return views or work in place.
                out[i] = self._compose(image=np.ascontiguousarray(images[i]).copy())["image"]
        return out
