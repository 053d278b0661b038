"""Phase 2 on images with its frozen bottom cached (`train.phase2_cache_bottom`; the cost of issue 13).

Phase 2 on images trains the top `phase2_blocks` backbone blocks on a fresh augmentation of every training image
each epoch; every layer below them is frozen (ImageNet weights, BatchNorm in inference mode). So what the bottom
gives for image h in epoch e's draw depends on the image, the draw's seed and the frozen weights alone — it is the
same in every run with that preprocessing, augmentation and seed, on every protocol and split seed of `make
results`. Inside a training step the bottom is most of the forward pass (Lite2 at 224 px, batch 32, the top 10
blocks trainable: a step 1.09 s, the top part alone 0.60 s, the bottom's forward 0.39 s). Here each (draw, image)
row runs through the bottom once, into the activation cache (`neurocascade.hierarchy.features`), and phase 2
trains the top part (`split_at` at the cut) on the rows; validation is scored from the clean rows.

The same draws train the same function, but not bit for bit the same model as the uncached phase 2: dropout's
masks are seeded by the op's place in the traced graph, which the top part's smaller graph moves.

    rows = BottomRows.at(model, cfg, n_blocks=10, cache_root=Path("runs/.cache"))
    draws = CachedDraws(rows, fresh)      # fresh: the phase's FreshAugmentation
    x = draws.draw(epoch)                 # the top part's inputs for the epoch's draw
    x_val = rows.clean(images_val, hashes_val)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from neurocascade.config import Config
from neurocascade.hierarchy.features import (
    ActivationCache,
    activation_key,
    augment_by_content,
    cache_key,
    cut_name,
    pack_rows,
    unpack_rows,
)
from neurocascade.models.build import cut_below_top_blocks
from neurocascade.models.surgery import split_at, weights_sha256
from neurocascade.tf import keras

if TYPE_CHECKING:
    from neurocascade.hierarchy.train import FreshAugmentation

Rows = np.ndarray | list[np.ndarray]
"""The top part's input(s) for a set of images: the cut, then any pooled taps below it."""


@dataclass(frozen=True)
class BottomRows:
    """A model split below its top `n_blocks` blocks, and the cache of what its bottom gives each image."""

    bottom: keras.Model
    top: keras.Model  # shares the model's layers: training it trains the model
    cache: ActivationCache
    shapes: list[tuple[int, ...]]
    batch_size: int

    @classmethod
    def at(cls, model: keras.Model, cfg: Config, n_blocks: int, cache_root: Path) -> BottomRows:
        """`model` cut below its top `n_blocks` blocks; the cache is keyed by the bottom's own weights, so rows are
        shared by every run whose frozen part is the same and never by one whose frozen part differs."""
        cuts = cut_below_top_blocks(model, cfg.model, n_blocks)
        bottom, top = split_at(model, cuts)
        key = activation_key(cfg, {"bottom_sha256": weights_sha256(bottom)}, cut_name(cuts))
        cache = ActivationCache(Path(cache_root) / f"bottom-{cache_key(key)}", key)
        return cls(bottom, top, cache, [tuple(c.shape[1:]) for c in cuts], cfg.train.batch_size)

    def rows(
        self, name: str, images: np.ndarray, hashes: list[str], augment: Callable[[np.ndarray, list[str]], np.ndarray]
    ) -> Rows:
        """The top part's inputs for uint8 `images` in pass `name`, `augment(images, hashes)` applied to the ones
        computed now; rows already cached for an image's content hash are read back."""

        def compute(positions: np.ndarray) -> np.ndarray:
            chunk = augment(images[positions], [hashes[p] for p in positions])
            # as they are (uint8): the model casts them to float32 itself, 4x less to copy into a tensor
            return pack_rows(self.bottom.predict(chunk, batch_size=self.batch_size, verbose=0))

        return unpack_rows(self.cache.get(name, hashes, compute), self.shapes)

    def clean(self, images: np.ndarray, hashes: list[str]) -> Rows:
        """The rows of the images as they are (validation)."""
        return self.rows("clean", images, hashes, lambda chunk, _: chunk)

    def up_to(self, ends: list) -> keras.Model:
        """The model from this cut to `ends`, tensors of the same model above it (the phase-1 cut below the top
        `unfreeze_blocks`): what turns these rows into the rows at `ends`."""
        return split_at(keras.Model(self.bottom.input, ends), self.bottom.outputs)[1]


@dataclass(frozen=True)
class RowsAbove:
    """Rows at a cut above the bottom cache's: the cached bottom rows through the blocks between the two cuts.

    With `train.phase1_cache_bottom`. Phase 1's activation passes (each image clean and in `aug_passes`
    augmentations) are keyed by the whole backbone below their cut, so a cascade on a newly fine-tuned flat backbone
    computes them all again (263–343 s a protocol of `make results`). Its blocks below the phase-2 cut are still the
    ImageNet ones: their rows, cached here under the pass's name, are shared with the flat model's own phase 1 and
    every other protocol, and only the blocks between the cuts run again (C seed 2's cascade: 263 s -> 93 s). The rows
    equal the whole backbone's to float rounding, which is enough to move a trained head.
    """

    bottom: BottomRows
    middle: keras.Model

    @classmethod
    def of(cls, model: keras.Model, cfg: Config, cuts: list, cache_root: Path) -> RowsAbove | None:
        """For `model`'s phase-1 `cuts` (below its top `unfreeze_blocks`), or None without
        `train.phase1_cache_bottom` (whose config check puts the bottom cache's cut below them)."""
        if not cfg.train.phase1_cache_bottom:
            return None
        rows = BottomRows.at(model, cfg, cfg.train.phase2_blocks, cache_root)
        return cls(rows, rows.up_to(cuts))

    def rows(
        self, name: str, images: np.ndarray, hashes: list[str], augment: Callable[[np.ndarray, list[str]], np.ndarray]
    ) -> np.ndarray:
        """Packed rows at the upper cut for uint8 `images` in pass `name` (see `BottomRows.rows`)."""
        x = self.bottom.rows(name, images, hashes, augment)
        return pack_rows(self.middle.predict(x, batch_size=self.bottom.batch_size, verbose=0))


@dataclass(frozen=True)
class CachedDraws:
    """Epoch e's draw of a `FreshAugmentation` as the top part's inputs: each image augmented exactly as
    `fresh.draw(e)` augments it, through the bottom once, then from the cache."""

    rows: BottomRows
    fresh: FreshAugmentation

    def draw(self, epoch: int) -> Rows:
        f = self.fresh
        return self.rows.rows(
            f"draw-{f.seed}-{epoch}",
            f.images,
            f.hashes,
            lambda chunk, hashes: augment_by_content(f.augmenter, chunk, hashes, f.seed, epoch),
        )
