"""Grad-CAM heatmaps for the Keras backend: what the model looked at when it made a confident error.

The heatmap is the ReLU of the last backbone feature map weighted by the spatially averaged gradient of
the explained class's probability (Selvaraju et al., 2017), upsampled to the image and scaled to 0..1.

    heat = grad_cam(model, images, class_index=[2, 0, 3])
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from neurocascade.tf import keras, tf


def last_feature_layer(model: keras.Model) -> keras.layers.Layer:
    """The layer whose 4-D output feeds the head's pooling: the backbone's final feature map."""
    return model.get_layer("head_gap").inbound_nodes[0].inbound_layers


def grad_cam(model: keras.Model, images: np.ndarray, class_index: Sequence[int]) -> np.ndarray:
    """Float (N, H, W) heatmaps in 0..1, one per image, for the given output class of each."""
    feature_layer = last_feature_layer(model)
    probe = keras.Model(model.input, [feature_layer.output, model.output])
    x = tf.convert_to_tensor(np.asarray(images, np.float32))
    with tf.GradientTape() as tape:
        features, probs = probe(x, training=False)
        chosen = tf.gather(probs, tf.constant(list(class_index)), axis=1, batch_dims=1)
    grads = tape.gradient(chosen, features)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[..., None]
    cam = tf.image.resize(cam, images.shape[1:3], method="bilinear")[..., 0].numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1)[:, None, None]
    return np.where(peak > 0, cam / np.maximum(peak, 1e-12), 0.0).astype(np.float32)
