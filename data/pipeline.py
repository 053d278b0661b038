"""tf.data input for training and evaluation, plus class weights.

Training batches are shuffled and augmented in a Python generator on one core while the model runs on the
other (`prefetch(2)`); everything random is derived from (seed, epoch[, batch]) so a run can be repeated
batch for batch. Evaluation data is never shuffled or augmented.

    weights = class_weights(y_train, n_classes=4, mode=cfg.train.class_weight)
    aug = Augmenter(cfg.augment)
    for epoch in range(n_epochs):   # a new dataset per epoch: a different, reproducible shuffle each epoch
        train_ds = make_dataset(x_train, y_train, 16, training=True, augmenter=aug, seed=cfg.train.seed, epoch=epoch)
        model.fit(train_ds, initial_epoch=epoch, epochs=epoch + 1, class_weight=weights)
    val_ds = make_dataset(x_val, y_val, 16, training=False)
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from neurocascade.data.augment import Augmenter
from neurocascade.tf import tf

__all__ = ["class_weights", "make_dataset", "derive_seed"]


def class_weights(labels: np.ndarray, n_classes: int, mode: str = "balanced") -> dict[int, float]:
    """Per-class loss weights for Keras `class_weight`, so rare classes count as much as common ones.

    "balanced" is sklearn's n_samples / (n_present_classes * count); the mean weight per sample stays 1, so the
    loss scale does not change. A class with no samples gets 0.0 (it contributes no loss anyway).
    "none" gives 1.0 to every class.
    """
    labels = np.asarray(labels).ravel()
    if mode == "none":
        return {c: 1.0 for c in range(n_classes)}
    if mode != "balanced":
        raise ValueError(f"class weight mode must be 'balanced' or 'none', got {mode!r}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must be in [0, {n_classes}), got {labels.min()}..{labels.max()}")
    weights = {c: 0.0 for c in range(n_classes)}
    present = np.unique(labels)
    if present.size:
        # sklearn rejects classes absent from y, so weigh only the present ones.
        computed = compute_class_weight("balanced", classes=present, y=labels)
        weights.update({int(c): float(w) for c, w in zip(present, computed)})
    return weights


def derive_seed(*parts: int) -> int:
    """A well-mixed 32-bit seed from several integers (e.g. seed, epoch, batch): nearby inputs don't collide.

    The count of parts goes first because SeedSequence ignores trailing zeros ((1, 2) == (1, 2, 0) otherwise).
    """
    entropy = [len(parts)] + [int(p) % 2**64 for p in parts]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    *,
    training: bool,
    augmenter: Augmenter | None = None,
    seed: int = 0,
    epoch: int = 0,
) -> tf.data.Dataset:
    """Batches of (float32 images 0..255 (N, H, W, 3), int32 labels).

    training=True: order permuted by (seed, epoch), each batch augmented with a seed derived from
    (seed, epoch, batch index); re-iterating the dataset replays exactly the same batches.
    training=False: input order, never augmented (the augmenter is ignored).
    The last batch may be smaller than batch_size.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    if not training:
        # Keep the stored copy uint8 (4x smaller than float32) and cast batch by batch.
        ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
        ds = ds.batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32), y))
        return ds.prefetch(2)

    # Distinct tags (0: shuffle, 1: augmentation) keep the two random streams apart.
    order = np.random.default_rng(derive_seed(seed, epoch, 0)).permutation(len(images))
    n_batches = -(-len(images) // batch_size)

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for b, start in enumerate(range(0, len(order), batch_size)):
            idx = order[start : start + batch_size]
            x = images[idx]  # fancy indexing: a copy, the caller's array is never touched
            if augmenter is not None:
                x = augmenter.apply_batch(x, seed=derive_seed(seed, epoch, 1, b))
            yield x.astype(np.float32), labels[idx].astype(np.int32)

    signature = (
        tf.TensorSpec(shape=(None,) + images.shape[1:], dtype=tf.float32),
        tf.TensorSpec(shape=(None,), dtype=tf.int32),
    )
    ds = tf.data.Dataset.from_generator(batches, output_signature=signature)
    # A known length lets Keras show progress and size the epoch without a first full pass.
    ds = ds.apply(tf.data.experimental.assert_cardinality(n_batches))
    return ds.prefetch(2)
