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
"""

from __future__ import annotations

import numpy as np

from neurocascade.models.head import pooled_layer_name
from neurocascade.tf import keras, tf


def head_of(model: keras.Model) -> keras.Model:
    """The part of `model` after its pooled features, as a model of its own that shares `model`'s layers."""
    return keras.Model(model.get_layer(pooled_layer_name(model)).output, model.output)


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
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    head = head_of(copy)
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
    return copy
