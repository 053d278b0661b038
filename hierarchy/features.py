"""Cache of the frozen backbone part's outputs, computed once and shared by the gate, subtype and flat model.

On a 2-core CPU a pass of the backbone over the training set costs minutes; the frozen part never changes,
so its activations are computed once for the clean training images, once for each of a few augmented
passes and once for validation, and stored (float32, so scores match the full model's) under a key of
everything they depend on. Phase 1 trains the head on pooled features, phase 2 the top blocks on the cut
activations; no epoch runs the frozen part again. Each array is written atomically, so an interrupted computation resumes where it was.

    cache = ActivationCache(dir, bottom, batch_size=32)
    x = cache.get("train-aug1", lambda: images, augment=lambda batch, k: aug.apply_batch(batch, seed=k))
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Callable

import numpy as np

from neurocascade.io import atomic_write_bytes
from neurocascade.tf import keras

CHUNK = 256  # images augmented and pushed through the bottom at a time: bounds memory at full size


def cache_key(parts: dict) -> str:
    """A short stable hash of what the cached activations depend on (data, split, backbone, cut, aug)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


class ActivationCache:
    """Named float32 arrays of a frozen model's outputs, computed on first use."""

    def __init__(self, directory: Path, model: keras.Model, batch_size: int, description: dict | None = None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.model = model
        self.batch_size = batch_size
        if description is not None and not (self.dir / "key.json").exists():
            atomic_write_bytes(self.dir / "key.json", json.dumps(description, indent=2, sort_keys=True).encode())

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.npy"

    def get(self, name: str, images: np.ndarray, augment: Callable[[np.ndarray, int], np.ndarray] | None = None,
            progress: Callable[[int], None] | None = None) -> np.ndarray:
        """The model's outputs on `images` (augmented chunk by chunk if `augment`), from disk when cached."""
        path = self.path(name)
        if path.exists():
            if progress:
                progress(len(images))
            return np.load(path)
        parts = []
        for k, start in enumerate(range(0, len(images), CHUNK)):
            chunk = images[start:start + CHUNK]
            if augment is not None:
                chunk = augment(chunk, k)
            out = self.model.predict(chunk.astype(np.float32), batch_size=self.batch_size, verbose=0)
            parts.append(out.astype(np.float32, copy=False))
            if progress:
                progress(len(chunk))
        result = np.concatenate(parts) if parts else np.zeros((0, *self.model.output_shape[1:]), np.float32)
        buf = io.BytesIO()
        np.save(buf, result)
        atomic_write_bytes(path, buf.getvalue())
        return result
