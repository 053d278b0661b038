"""Cache of the frozen backbone part's outputs, per image, shared by every model and every split.

On a 2-core CPU a pass of the backbone over the training set costs minutes; the frozen part never changes,
so its activations are computed once per image for the clean pass and for each of a few augmented passes,
and stored (float32, so scores match the full model's) under the image's content hash. The gate, subtype
and flat model of a run read the same rows, and so do the other protocols and split seeds of `make
results`: a grouped re-split with another seed only computes the images it has not seen yet. Augmentation
is seeded by (seed, pass, image hash), never by position, which is what makes a row independent of the
split it was first computed for. Each row is written atomically, so an interrupted computation resumes
where it was.

    cache = ActivationCache(dir, description=key_parts)
    x = cache.get("pass-aug1", hashes, compute=lambda positions: bottom(images[positions]))

Exact copies (same file bytes) share their rows, augmented ones included: the same image gets the same
augmentation in a given pass, wherever it sits.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Sequence

import numpy as np

from neurocascade.data.augment import Augmenter
from neurocascade.data.pipeline import derive_seed
from neurocascade.config import SPLIT_ONLY_DATA_KEYS, Config, to_dict
from neurocascade.io import atomic_write_bytes

CHUNK = 256  # images pushed through the model at a time: bounds memory at full size


def cache_key(parts: dict) -> str:
    """A short stable hash of what the cached activations depend on (preprocessing, backbone, cut, aug)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def cut_name(cuts: list) -> str:
    """The cut's name in the cache key and manifest: the block boundary's tensor, then any pooled taps."""
    return ",".join(c.name for c in cuts)


def activation_key(cfg: Config, backbone_weights: dict, cut: str) -> dict:
    """What a cached row depends on: preprocessing, augmentation, backbone and its weights, cut, seed.

    Not the split: rows are stored per image, so every protocol and split seed on the same images shares them.
    """
    data = {k: v for k, v in to_dict(cfg)["data"].items() if k not in SPLIT_ONLY_DATA_KEYS}
    return {
        "data": data,
        "augment": to_dict(cfg)["augment"],
        "backbone": cfg.model.backbone,
        **({"backbone_size": size} if (size := cfg.model.resized_size(cfg.data.image_size)) else {}),
        **({"extra_backbones": list(cfg.model.extra_backbones)} if cfg.model.extra_backbones else {}),
        "weights": backbone_weights,
        "cut": cut,
        "seed": cfg.train.seed,
        "format": "float32-per-image-v3",
    }


def pack_rows(outputs: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """One row per image from a bottom model's output(s): several outputs (a cut and pooled taps) are
    flattened and concatenated, so the cache stores one file per image whatever the head."""
    if isinstance(outputs, np.ndarray):
        return outputs
    outputs = list(outputs)
    if len(outputs) == 1:
        return outputs[0]
    return np.concatenate([o.reshape(len(o), -1) for o in outputs], axis=1)


def unpack_rows(rows: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> np.ndarray | list[np.ndarray]:
    """The inverse of `pack_rows` for per-image output `shapes`: one array, or a list for several outputs."""
    if len(shapes) == 1:
        return rows
    sizes = np.cumsum([int(np.prod(s)) for s in shapes])[:-1]
    return [part.reshape((len(rows), *shape)) for part, shape in zip(np.split(rows, sizes, axis=1), shapes)]


def take_rows(x: np.ndarray | list[np.ndarray], index: np.ndarray) -> np.ndarray | list[np.ndarray]:
    """Rows `index` (a mask or positions) of one model input or of each of several."""
    return [a[index] for a in x] if isinstance(x, list) else x[index]


def as_float32(x: np.ndarray | list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """A model input (or each of several) as float32, the dtype every model here takes."""
    return [a.astype(np.float32) for a in x] if isinstance(x, list) else x.astype(np.float32)


def hash_seed(content_hash: str) -> int:
    """An integer from an image's hex content hash, to seed its augmentation independently of its position."""
    return int(content_hash[:15], 16)


def augment_by_content(augmenter: Augmenter, images: np.ndarray, hashes: list[str], seed: int, k: int) -> np.ndarray:
    """Augmented pass `k` of `images`, each seeded by (seed, k, its content hash): the same whatever the order."""
    return (
        np.concatenate(
            [augmenter.apply_batch(images[i : i + 1], derive_seed(seed, k, hash_seed(h))) for i, h in enumerate(hashes)]
        )
        if len(images)
        else images.copy()
    )


class ActivationCache:
    """Named passes of float32 rows, one file per (pass, image content hash), computed on first use."""

    def __init__(self, directory: Path, description: dict | None = None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        if description is not None and not (self.dir / "key.json").exists():
            atomic_write_bytes(self.dir / "key.json", json.dumps(description, indent=2, sort_keys=True).encode())

    @contextmanager
    def exclusive(self, while_waiting: Callable[[], ContextManager] = nullcontext) -> Iterator[None]:
        """Held by the one process filling this cache. Another training on the same data and backbone (the
        demo trains the flat model beside the cascade) waits inside `while_waiting()`, then reads the rows the
        first one computed instead of computing the same rows again on the other core."""
        with open(self.dir / ".lock", "a") as handle:  # closing the file releases the lock, even on a crash
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                with while_waiting():
                    fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def path(self, name: str, key: str) -> Path:
        """Where the row of image `key` in pass `name` is stored."""
        return self.dir / name / f"{key}.npy"

    def get(
        self,
        name: str,
        keys: Sequence[str],
        compute: Callable[[np.ndarray], np.ndarray],
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Rows of pass `name` for `keys` in order; `compute(positions)` gives the rows not cached yet."""
        (self.dir / name).mkdir(parents=True, exist_ok=True)
        first: dict[str, int] = {}
        for position, key in enumerate(keys):
            if key not in first and not self.path(name, key).exists():
                first[key] = position
        missing = np.array(sorted(first.values()), dtype=np.int64)
        if progress:
            progress(len(keys) - len(missing))
        for start in range(0, len(missing), CHUNK):
            positions = missing[start : start + CHUNK]
            rows = np.asarray(compute(positions), dtype=np.float32)
            for position, row in zip(positions, rows):
                buf = io.BytesIO()
                np.save(buf, row)
                # no fsync: a row lost to a crash is only computed again; the rename keeps each file whole
                atomic_write_bytes(self.path(name, keys[position]), buf.getvalue(), durable=False)
            if progress:
                progress(len(positions))
        if not len(keys):  # no images in this role (never for train/val, whose sizes are validated)
            return np.zeros((0,), np.float32)
        return np.stack([np.load(self.path(name, key)) for key in keys])
