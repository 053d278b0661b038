"""Input pipeline: evaluation data is never augmented or reordered; training batches replay exactly."""

from __future__ import annotations

import numpy as np
import pytest

from neurocascade.data.augment import Augmenter
from neurocascade.data.pipeline import class_weights, derive_seed, make_dataset
from neurocascade.config import AugmentConfig


class SpyAugmenter:
    """Records every call; returns a visibly different batch so any use would show in the output."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def apply_batch(self, images: np.ndarray, seed: int) -> np.ndarray:
        self.calls.append((len(images), seed))
        return 255 - images


@pytest.fixture(scope="module")
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(10, 16, 16, 3), dtype=np.uint8)
    y = np.arange(10) % 3
    return x, y


def _collect(ds) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(xb.numpy(), yb.numpy()) for xb, yb in ds]


def _assert_same(a, b) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


# ---- class weights -------------------------------------------------------------------------------------


def test_class_weights_balanced_hand_computed():
    w = class_weights(np.array([0, 0, 0, 1]), n_classes=2)
    assert set(w) == {0, 1}
    assert w[0] == pytest.approx(4 / (2 * 3)) and w[1] == pytest.approx(2.0)


def test_class_weights_empty_class_gets_zero_and_mean_weight_stays_one():
    labels = np.array([0, 0, 0, 2])
    w = class_weights(labels, n_classes=3)
    assert w == pytest.approx({0: 4 / 6, 1: 0.0, 2: 2.0})
    assert np.mean([w[c] for c in labels]) == pytest.approx(1.0)
    assert class_weights(np.array([], dtype=int), n_classes=2) == {0: 0.0, 1: 0.0}


def test_class_weights_none_and_bad_input():
    assert class_weights(np.array([0, 0, 1]), n_classes=3, mode="none") == {0: 1.0, 1: 1.0, 2: 1.0}
    with pytest.raises(ValueError):
        class_weights(np.array([0, 1]), n_classes=2, mode="inverse")
    with pytest.raises(ValueError):
        class_weights(np.array([0, 3]), n_classes=2)


# ---- make_dataset --------------------------------------------------------------------------------------


def test_eval_never_augmented_and_order_preserved(xy):
    x, y = xy
    spy = SpyAugmenter()
    batches = _collect(make_dataset(x, y, 4, training=False, augmenter=spy))
    assert spy.calls == []
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    for xb, yb in batches:
        assert xb.dtype == np.float32 and yb.dtype == np.int32
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x.astype(np.float32))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)


def test_training_shapes_dtypes_and_uses_every_sample_once(xy):
    x, y = xy
    ds = make_dataset(x, y, 4, training=True, augmenter=None, seed=0, epoch=0)
    assert ds.element_spec[0].shape.as_list() == [None, 16, 16, 3]
    assert int(ds.cardinality()) == 3
    batches = _collect(ds)
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    xs = np.concatenate([b[0] for b in batches])
    ys = np.concatenate([b[1] for b in batches])
    assert xs.dtype == np.float32 and ys.dtype == np.int32
    # Without augmentation the batches are a permutation of the input, pairs kept together.
    order = [int(np.flatnonzero((x.astype(np.float32) == img).all(axis=(1, 2, 3)))[0]) for img in xs]
    assert sorted(order) == list(range(10)) and order != list(range(10))
    np.testing.assert_array_equal(ys, y[order])


def test_training_calls_augmenter_with_derived_seeds(xy):
    x, y = xy
    spy = SpyAugmenter()
    plain = np.concatenate([b[0] for b in _collect(make_dataset(x, y, 4, training=True, seed=3, epoch=1))])
    augmented = np.concatenate(
        [b[0] for b in _collect(make_dataset(x, y, 4, training=True, augmenter=spy, seed=3, epoch=1))]
    )
    assert [n for n, _ in spy.calls] == [4, 4, 2]
    assert len({s for _, s in spy.calls}) == 3  # a different seed per batch
    np.testing.assert_array_equal(augmented, 255 - plain)  # same order, augmented output used


def test_training_deterministic_for_seed_and_epoch(xy):
    x, y = xy
    aug = Augmenter(AugmentConfig())

    def run(seed: int, epoch: int):
        return _collect(make_dataset(x, y, 4, training=True, augmenter=aug, seed=seed, epoch=epoch))

    first = run(0, 0)
    _assert_same(first, run(0, 0))
    ds = make_dataset(x, y, 4, training=True, augmenter=aug, seed=0, epoch=0)
    _assert_same(_collect(ds), _collect(ds))  # re-iterating one dataset replays it too
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, run(0, 1)))
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, run(1, 0)))


def test_epochs_shuffle_differently(xy):
    x, y = xy
    orders = []
    for epoch in range(3):
        ((_, ys),) = _collect(make_dataset(x, np.arange(10), 10, training=True, epoch=epoch))
        orders.append(tuple(ys))
    assert len(set(orders)) == 3


def test_derive_seed_separates_trailing_zero():
    assert derive_seed(1, 2) != derive_seed(1, 2, 0)
    assert derive_seed(1, 2) == derive_seed(1, 2)
    assert 0 <= derive_seed(-1, 5) < 2**32


def test_make_dataset_rejects_mismatched_lengths(xy):
    x, y = xy
    with pytest.raises(ValueError):
        make_dataset(x, y[:-1], 4, training=False)
    with pytest.raises(ValueError):
        make_dataset(x, y, 0, training=True)
