"""Mixup on cached rows (`train.mixup_alpha`, issue 13): the blend itself, and a phantom run trained with it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurocascade.config import load_config
from neurocascade.errors import ConfigError
from neurocascade.hierarchy.mixup import mix_rows

from interrupted import flat_run_whole_and_resumed


def test_every_input_is_blended_with_the_same_partner_and_weight_as_its_target():
    rng = np.random.default_rng(0)
    n = 64
    labels = rng.integers(0, 3, n)
    targets = np.eye(3, dtype=np.float32)[labels]
    # Inputs that encode their row's label, so the blend can be read back from them.
    maps = np.broadcast_to(labels[:, None, None, None].astype(np.float32), (n, 2, 2, 4)).copy()
    pooled = targets * 10
    weights = np.array([1.0, 2.0, 4.0], np.float32)[labels]
    (mixed_maps, mixed_pooled), mixed_targets, mixed_weights = mix_rows(
        [maps, pooled], targets, weights, 0.4, np.random.default_rng(1)
    )
    np.testing.assert_allclose(mixed_targets.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(mixed_pooled, mixed_targets * 10, rtol=1e-5)  # same λ and partner as the targets
    np.testing.assert_allclose(mixed_maps[:, 0, 0, 0], mixed_targets @ np.arange(3, dtype=np.float32), rtol=1e-5)
    np.testing.assert_allclose(mixed_weights, mixed_targets @ np.array([1.0, 2.0, 4.0]), rtol=1e-5)
    assert 0 < np.mean(mixed_targets.max(axis=1) < 0.99)  # some rows really are blends
    assert mixed_maps.dtype == mixed_targets.dtype == np.float32


def test_the_same_generator_state_gives_the_same_blend():
    x = np.random.default_rng(0).normal(size=(10, 5)).astype(np.float32)
    t = np.eye(2, dtype=np.float32)[np.arange(10) % 2]
    w = np.ones(10, np.float32)
    a, b = (mix_rows(x, t, w, 0.2, np.random.default_rng(7)) for _ in range(2))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("value", ["-0.1", "11", "nan"])
def test_bad_alpha_is_refused(test_config_path, value):
    with pytest.raises(ConfigError, match="mixup_alpha"):
        load_config(test_config_path, (f"train.mixup_alpha={value}",))


def test_a_mixup_run_differs_from_the_plain_one_and_resumes_to_the_same_result(test_config_path, tiny_runs, tmp_path):
    """Both phases blend rows (the losses differ from the plain run's from the first epoch), and the blend is
    seeded by the epoch: a run killed in phase 2 and resumed ends where the uninterrupted one does."""
    full, resumed, full_losses, resumed_losses = flat_run_whole_and_resumed(
        load_config(test_config_path, ("train.mixup_alpha=0.4",)), tiny_runs, tmp_path
    )
    assert full_losses == resumed_losses
    assert resumed["stages"]["flat"]["val_macro_f1"] == full["stages"]["flat"]["val_macro_f1"]
    plain = json.loads((tiny_runs["flat"] / "stages" / "flat" / "history.json").read_text())
    assert full_losses[0] != plain[0]["loss"]
