"""Augmentation is reproducible, never touches its input and stays a valid uint8 grayscale-in-RGB image."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from neurocascade.data.augment import Augmenter
from neurocascade.config import AugmentConfig


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(6, 32, 32), dtype=np.uint8)
    gray[:, :, :4] = 0  # asymmetric dark band, so a flip is visible
    return np.repeat(gray[..., None], 3, axis=-1)


def test_same_seed_same_output_regardless_of_history(batch):
    aug = Augmenter(AugmentConfig())
    first = aug.apply_batch(batch, seed=7)
    aug.apply_batch(batch, seed=99)  # an unrelated call in between must not matter
    np.random.seed(123)  # nor NumPy's global RNG
    again = aug.apply_batch(batch, seed=7)
    fresh = Augmenter(AugmentConfig()).apply_batch(batch, seed=7)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, fresh)


def test_different_seed_different_output(batch):
    aug = Augmenter(AugmentConfig())
    assert not np.array_equal(aug.apply_batch(batch, seed=1), aug.apply_batch(batch, seed=2))


def test_images_within_a_batch_get_different_draws(batch):
    same = np.repeat(batch[:1], 4, axis=0)
    out = Augmenter(AugmentConfig()).apply_batch(same, seed=3)
    assert any(not np.array_equal(out[0], out[i]) for i in range(1, 4))


def test_input_is_never_modified(batch):
    before = batch.copy()
    out = Augmenter(AugmentConfig()).apply_batch(batch, seed=5)
    np.testing.assert_array_equal(batch, before)
    assert not np.shares_memory(out, batch)


def test_disabled_is_identity_copy(batch):
    aug = Augmenter(AugmentConfig(enabled=False))
    out = aug.apply_batch(batch, seed=5)
    np.testing.assert_array_equal(out, batch)
    assert out is not batch and not np.shares_memory(out, batch)


def test_output_is_uint8_same_shape_and_channels_stay_identical(batch):
    strong = AugmentConfig(rotate_deg=30, shift=0.3, zoom=0.3, brightness=0.3, contrast=0.3)
    out = Augmenter(strong).apply_batch(batch, seed=11)
    assert out.dtype == np.uint8 and out.shape == batch.shape
    assert 0 <= out.min() and out.max() <= 255
    np.testing.assert_array_equal(out[..., 0], out[..., 1])  # still a grayscale image: no colour change
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_flip_only_config_only_flips(batch):
    cfg = dataclasses.replace(
        AugmentConfig(), hflip=1.0, rotate_deg=0.0, shift=0.0, zoom=0.0, brightness=0.0, contrast=0.0
    )
    out = Augmenter(cfg).apply_batch(batch, seed=0)
    np.testing.assert_array_equal(out, batch[:, :, ::-1])  # left-right only, never up-down


def test_rejects_wrong_dtype(batch):
    with pytest.raises(ValueError):
        Augmenter(AugmentConfig()).apply_batch(batch.astype(np.float32), seed=0)
