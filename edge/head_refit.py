"""Refit an INT8 model's float head on the pooled features its INT8 backbone gives (`export.head_refit_epochs`).

Bias correction (edge/bias_correction.py) moves the head's BatchNorm mean by the mean shift of the INT8 pooled
features; what is left is noise that differs from image to image (after the shift, 0.27–0.41 of each feature's
spread on C seed 0's subtype model) and that the head, trained on float features, reads as signal. With the head in
float inside the INT8 file (`export.float_ops = ["FULLY_CONNECTED"]`) its weights can follow the features it will
read: the layers after the pooled features are distilled onto the INT8 pooled features of the model's training
images, their targets the Keras model's own probabilities on those images (never validation images), starting from
the bias-corrected head, BatchNorm in inference mode and frozen, dropout off. The backbone is not touched, so a
conversion with the same calibration images gives the same INT8 features the head was fitted on.

    refitted = refit_head(corrected, int8_features, keras_probs, epochs=10, lr=1e-5, seed=0)
    both = refit_heads(one_graph, {"head_out": (gate_rows, gate_probs), "subtype_head_out": (tumour_rows, q)}, ...)
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from neurocascade.models.head import pooled_layer_name
from neurocascade.tf import keras, tf


def head_of(model: keras.Model, output: str | None = None) -> keras.Model:
    """The part of `model` from its pooled features to the layer named `output` (its output by default), as a model
    of its own that shares `model`'s layers."""
    end = model.get_layer(output).output if output else model.output
    return keras.Model(model.get_layer(pooled_layer_name(model)).output, end)


def refit_head(
    model: keras.Model,
    features: np.ndarray,
    targets: np.ndarray,
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int = 32,
) -> keras.Model:
    """A copy of `model` whose layers after the pooled features minimise KL(`targets` ‖ output) on `features` (one
    row per training image: the INT8 backbone's dequantized pooled features, and the Keras model's probabilities),
    by Adam at `lr` for `epochs` passes in an order drawn from `seed`. BatchNormalization stays as it is."""
    return refit_heads(model, {None: (features, targets)}, epochs, lr, seed, batch_size)


def refit_heads(
    model: keras.Model,
    fits: Mapping[str | None, tuple[np.ndarray, np.ndarray]],
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int = 32,
) -> keras.Model:
    """`refit_head` for a model with several heads on one pooled vector (the cascade as one graph): each head, named
    by its output layer (None: the model's output), fitted in turn on its own (features, targets), as its model
    alone would be."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for output, (features, targets) in fits.items():
        _distil(head_of(copy, output), features, targets, epochs, lr, seed, batch_size)
    return copy


def _distil(
    head: keras.Model, features: np.ndarray, targets: np.ndarray, epochs: int, lr: float, seed: int, batch_size: int
) -> None:
    """Train `head`'s layers in place, BatchNormalization frozen, dropout off (module doc)."""
    for layer in head.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    weights = head.trainable_weights
    optimizer = keras.optimizers.Adam(lr)
    features, targets = tf.constant(features, tf.float32), tf.constant(targets, tf.float32)

    @tf.function
    def step(x: tf.Tensor, t: tf.Tensor) -> None:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.kl_divergence(t, head(x, training=False)))
        optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))

    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(features))
        for start in range(0, len(order), batch_size):
            idx = tf.constant(order[start : start + batch_size])
            step(tf.gather(features, idx), tf.gather(targets, idx))
