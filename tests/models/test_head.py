"""The head: layer names, and phase-1 head weights carried by name into the full model (a tiny stand-in backbone)."""

from __future__ import annotations

import numpy as np
import pytest

from neurocascade.models.head import (
    add_head,
    build_head_model,
    pooled_layer_name,
    tap_layer_name,
    transfer_head_weights,
)
from neurocascade.tf import keras

N_CLASSES, UNITS, CHANNELS = 3, 8, 6
NAMES = ["head_gap", "head_bn", "head_dense", "head_dropout", "head_out"]


def full_model(n_classes: int = N_CLASSES) -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(CHANNELS, 3, name="stub_conv")(inputs)
    return keras.Model(inputs, add_head(features, n_classes, UNITS, 0.3))


def test_head_layer_names_and_output():
    model = full_model()
    assert [layer.name for layer in model.layers[2:]] == NAMES
    out = model.get_layer("head_out")
    assert out.units == N_CLASSES and out.dtype == "float32"
    assert model.get_layer("head_dense").units == UNITS and model.get_layer("head_dropout").rate == 0.3
    probs = model(np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)), training=False).numpy()
    assert probs.shape == (2, N_CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)

    named = keras.Model(model.input, add_head(model.get_layer("stub_conv").output, 2, 4, 0.0, name="gate"))
    assert [layer.name for layer in named.layers[2:]] == [n.replace("head", "gate") for n in NAMES]


def test_head_model_is_the_head_without_pooling():
    head = build_head_model(CHANNELS, N_CLASSES, UNITS, 0.3)
    assert head.input_shape == (None, CHANNELS) and head.output_shape == (None, N_CLASSES)
    assert [layer.name for layer in head.layers[1:]] == NAMES[1:]


def test_transferred_head_reproduces_the_head_model():
    head = build_head_model(CHANNELS, N_CLASSES, UNITS, 0.3)
    rng = np.random.default_rng(1)
    # every weight distinct from a fresh model's, BN moving statistics included
    head.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in head.get_weights()])
    model = full_model()
    transfer_head_weights(head, model)

    x = rng.uniform(0, 255, (4, 8, 8, 3)).astype(np.float32)
    pooled = keras.Model(model.input, model.get_layer("head_gap").output)(x, training=False)
    np.testing.assert_allclose(
        model(x, training=False).numpy(), head(pooled, training=False).numpy(), rtol=1e-6, atol=1e-7
    )
    for name in NAMES[1:]:
        for a, b in zip(head.get_layer(name).get_weights(), model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_transfer_refuses_another_class_count():
    with pytest.raises(ValueError):
        transfer_head_weights(build_head_model(CHANNELS, 2, UNITS, 0.3), full_model(N_CLASSES))


def multi_scale_model() -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    shallow = keras.layers.Conv2D(4, 3, name="stub_shallow")(inputs)
    middle = keras.layers.Conv2D(5, 1, name="stub_middle")(shallow)
    deep = keras.layers.Conv2D(CHANNELS, 1, name="stub_deep")(middle)
    return keras.Model(inputs, add_head(deep, N_CLASSES, UNITS, 0.3, taps=[("shallow", shallow)]))


def test_multi_scale_head_pools_each_tap_and_concatenates_shallow_first():
    model = multi_scale_model()
    assert pooled_layer_name(model) == "head_concat" and pooled_layer_name(full_model()) == "head_gap"
    assert model.get_layer(tap_layer_name("shallow")).output_shape == (None, 4)
    assert model.get_layer("head_concat").output_shape == (None, 4 + CHANNELS)
    x = np.random.default_rng(2).uniform(0, 255, (3, 8, 8, 3)).astype(np.float32)
    pooled = keras.Model(model.input, model.get_layer("head_concat").output)(x).numpy()
    shallow = keras.Model(model.input, model.get_layer("stub_shallow").output)(x).numpy()
    np.testing.assert_allclose(pooled[:, :4], shallow.mean(axis=(1, 2)), rtol=1e-5, atol=1e-4)


def test_split_with_a_pooled_tap_below_the_cut_reproduces_the_model():
    from neurocascade.models.surgery import split_at

    model = multi_scale_model()
    cut, tap = model.get_layer("stub_deep").input, model.get_layer(tap_layer_name("shallow")).output
    x = np.random.default_rng(3).uniform(0, 255, (3, 8, 8, 3)).astype(np.float32)
    bottom, top = split_at(model, [cut, tap])
    np.testing.assert_allclose(
        top.predict(bottom.predict(x, verbose=0), verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="also reads"):  # the tap crosses the cut: leaving it out is refused
        split_at(model, cut)


def test_feature_noise_perturbs_training_only():
    """`model.feature_noise`: Gaussian noise on the normalized features in training (a head that INT8 rounding of
    its features moves less), none at inference, so the float function — the export's reference — is the
    noiseless head's with the same weights."""
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(CHANNELS, 3, name="stub_conv")(inputs)
    noisy = keras.Model(inputs, add_head(features, N_CLASSES, UNITS, 0.0, noise=0.5))
    assert [layer.name for layer in noisy.layers[2:]] == ["head_gap", "head_bn", "head_noise", *NAMES[2:]]
    plain = keras.Model(inputs, add_head(features, N_CLASSES, UNITS, 0.0))  # the same conv, no noise
    plain.set_weights(noisy.get_weights())  # the noise layer has no weights
    x = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(noisy(x, training=False), plain(x, training=False), rtol=1e-6)
    # in training both normalize by the batch; only the noise differs
    assert not np.allclose(noisy(x, training=True), plain(x, training=True), atol=1e-4)
    head = build_head_model(CHANNELS, N_CLASSES, UNITS, 0.3, noise=0.5)
    assert "head_noise" in [layer.name for layer in head.layers]
    assert "head_noise" not in [layer.name for layer in build_head_model(CHANNELS, N_CLASSES, UNITS, 0.3).layers]
