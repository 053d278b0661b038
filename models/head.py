"""The classification head, on a backbone's feature map or on cached pooled features.

Phase 1 of training fits the head alone on pooled backbone features (`build_head_model`); its layers carry
the same names as in the full model (`add_head`), so `transfer_head_weights` copies them across by name.

    x = add_head(backbone_output, n_classes=4, units=256, dropout=0.3)   # head_gap ... head_out
    x = add_head(backbone_output, 4, 256, 0.3, taps=[("block5d", t5)])  # + head_tap_block5d, head_concat
    head = build_head_model(feature_dim=1408, n_classes=4, units=256, dropout=0.3)
    transfer_head_weights(head, full_model)
"""

from __future__ import annotations

from typing import Sequence

from neurocascade.tf import keras

HEAD_NAME = "head"  # prefix of every head layer; `models.build` tells head from backbone by it


def _dense_part(
    x, n_classes: int, units: int, dropout: float, name: str, synchronized: bool = False, noise: float = 0.0
):
    """BatchNormalization → [GaussianNoise] → Dense(relu) → Dropout → Dense(softmax), shared by both head builders.

    `synchronized`: the BatchNormalization's training statistics are those of the global batch, all-reduced
    over the replicas of a distribution strategy, as one process would compute them; unsynchronized, each
    replica normalizes by its own share of the batch (issue 16, item 6). `noise` (`model.feature_noise`): the
    standard deviation of Gaussian noise on the normalized features in training; the layer is left out at 0.
    """
    x = keras.layers.BatchNormalization(synchronized=synchronized, name=f"{name}_bn")(x)
    if noise > 0:
        x = keras.layers.GaussianNoise(noise, name=f"{name}_noise")(x)
    x = keras.layers.Dense(units, activation="relu", name=f"{name}_dense")(x)
    x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    # float32 output so the softmax stays float32 under a mixed-precision policy
    return keras.layers.Dense(n_classes, activation="softmax", dtype="float32", name=f"{name}_out")(x)


def tap_layer_name(block: str, name: str = HEAD_NAME) -> str:
    """The pooling layer of a tapped backbone block (`head_tap_block5d`)."""
    return f"{name}_tap_{block}"


def pooled_layer_name(model: keras.Model, name: str = HEAD_NAME) -> str:
    """The layer whose output is the head's feature vector: the concatenation of a multi-scale head, else the GAP."""
    names = {layer.name for layer in model.layers}
    return f"{name}_concat" if f"{name}_concat" in names else f"{name}_gap"


def pooled_model(model: keras.Model) -> keras.Model:
    """`model` up to its head's feature vector (`pooled_layer_name`), as a model of its own sharing its layers."""
    return keras.Model(model.input, model.get_layer(pooled_layer_name(model)).output)


def add_head(
    features,
    n_classes: int,
    units: int,
    dropout: float,
    taps: Sequence[tuple[str, object]] = (),
    name: str = HEAD_NAME,
    synchronized: bool = False,
    noise: float = 0.0,
):
    """GlobalAveragePooling2D → BatchNormalization → Dense(units, relu) → Dropout → Dense(n_classes, softmax).

    With `taps` ((block name, feature map) pairs from shallower depths) each map is pooled too and the pooled
    vectors are concatenated, shallow first: mid-level features carry what the last ImageNet layer discards
    (issue 13: +4 points macro-F1 for frozen Lite2 features on the grouped re-split). `synchronized`: see
    `_dense_part`.
    """
    x = keras.layers.GlobalAveragePooling2D(name=f"{name}_gap")(features)
    if taps:
        pooled = [keras.layers.GlobalAveragePooling2D(name=tap_layer_name(block, name))(t) for block, t in taps]
        x = keras.layers.Concatenate(name=f"{name}_concat")(pooled + [x])
    return _dense_part(x, n_classes, units, dropout, name, synchronized, noise)


def build_head_model(
    feature_dim: int,
    n_classes: int,
    units: int,
    dropout: float,
    name: str = HEAD_NAME,
    synchronized: bool = False,
    noise: float = 0.0,
) -> keras.Model:
    """The head without its pooling, on pooled feature vectors of shape (feature_dim,)."""
    inputs = keras.Input((feature_dim,), name=f"{name}_features")
    outputs = _dense_part(inputs, n_classes, units, dropout, name, synchronized, noise)
    return keras.Model(inputs, outputs, name=f"{name}_model")


def transfer_head_weights(head_model: keras.Model, full_model: keras.Model) -> None:
    """Copy every weighted layer of `head_model` into the layer of the same name in `full_model`.

    A missing layer or a shape mismatch (other class count, other feature width) raises ValueError.
    """
    for layer in head_model.layers:
        if layer.weights:
            full_model.get_layer(layer.name).set_weights(layer.get_weights())


def scale_output_logits(model: keras.Model, temperature: float, name: str = HEAD_NAME) -> None:
    """Divide the logits of `model`'s softmax output layer by `temperature`, in place (its kernel and bias).

    softmax((x·W + b) / T) = softmax(x·(W / T) + b / T): temperature scaling becomes part of the weights, so every
    backend that runs the model (Keras, TFLite, INT8) outputs the scaled probabilities with no extra op.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    layer = model.get_layer(f"{name}_out")
    layer.set_weights([w / temperature for w in layer.get_weights()])
