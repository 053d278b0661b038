"""Temperature scaling: the fit finds the temperature that generated the labels, and scaling moves no decision."""

from __future__ import annotations

import numpy as np
import pytest

from neurocascade.hierarchy.cascade import choose_tau
from neurocascade.hierarchy.temperature import apply_temperature, fit_temperature


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("true_t", [0.4, 1.0, 2.5])
def test_fit_recovers_the_temperature_that_drew_the_labels(true_t):
    """Labels drawn from softmax(z / T): the log-loss fit on softmax(z) finds T (an under-confident model has T < 1)."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, (20000, 4))
    labels = np.array([rng.choice(4, p=p) for p in _softmax(z / true_t)])
    assert fit_temperature(_softmax(z), labels) == pytest.approx(true_t, rel=0.05)


def test_scaling_keeps_every_argmax_and_threshold_decision():
    rng = np.random.default_rng(1)
    probs = _softmax(rng.normal(0, 2, (500, 3)))
    for t in (0.3, 3.0):
        scaled = apply_temperature(probs, t)
        np.testing.assert_allclose(scaled.sum(axis=1), 1.0, rtol=1e-12)
        assert (scaled.argmax(axis=1) == probs.argmax(axis=1)).all()
        np.testing.assert_allclose(scaled, _softmax(np.log(probs) / t), rtol=1e-9)
    p = rng.uniform(0.001, 0.999, 400)
    is_tumour = rng.random(400) < 0.7
    tau = choose_tau(p, is_tumour, 0.9)
    moved = apply_temperature(p, 0.4, binary=True)
    np.testing.assert_allclose(moved, 1 / (1 + np.exp(-np.log(p / (1 - p)) / 0.4)), rtol=1e-9)
    assert choose_tau(moved, is_tumour, 0.9) == pytest.approx(float(apply_temperature(tau, 0.4, binary=True)))
    assert ((moved >= choose_tau(moved, is_tumour, 0.9)) == (p >= tau)).all()


def test_fit_refuses_no_images():
    with pytest.raises(ValueError, match="no images"):
        fit_temperature(np.zeros((0, 2)), np.zeros(0, int))


def test_folded_into_the_output_layer_the_model_outputs_the_scaled_probabilities():
    from neurocascade.models.head import build_head_model, scale_output_logits

    model = build_head_model(feature_dim=8, n_classes=3, units=4, dropout=0.0)
    x = np.random.default_rng(2).normal(0, 3, (64, 8)).astype(np.float32)
    before = model.predict(x, verbose=0)
    scale_output_logits(model, 0.5)
    np.testing.assert_allclose(model.predict(x, verbose=0), apply_temperature(before, 0.5), atol=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        scale_output_logits(model, 0.0)


@pytest.mark.parametrize("kind", ["wrong", "separated"])
def test_no_interior_optimum_leaves_the_model_alone(kind):
    """A model confidently wrong on validation (log-loss falls toward uniform outputs) or one that separates it
    perfectly (toward hard 0/1): no temperature, rather than one at the edge of the search."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 300)
    right = np.eye(3)[labels] * 0.8 + 0.1 * (1 - np.eye(3)[labels]) / 1.0
    probs = right if kind == "separated" else np.roll(right, 1, axis=1)
    assert fit_temperature(probs, labels) is None
