"""The epoch-wise weight average (`train.weight_average`, issue 13): its arithmetic, its swap in and out of the
model, and a phantom run that scores and keeps it, trains exactly as without it and resumes into the same
average."""

from __future__ import annotations

import numpy as np
import pytest

from neurocascade.config import load_config
from neurocascade.errors import ConfigError
from neurocascade.hierarchy.averaging import WeightAverage
from neurocascade.eval.scores import macro_f1_of_probs
from neurocascade.hierarchy.engine import EpochBudget, TrainingInterrupted, predict_batches
from neurocascade.hierarchy.stages import STAGES
from neurocascade.hierarchy.train import Reporter, run_phase
from neurocascade.models.head import build_head_model
from neurocascade.tf import keras


def _set(model: keras.Model, value: float) -> None:
    model.set_weights([np.full(w.shape, value, np.float32) for w in model.get_weights()])


def test_the_average_folds_each_epoch_in_with_the_momentum_and_the_model_keeps_its_own_weights():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization()])
    average = WeightAverage(model, momentum=0.75)
    for value in (4.0, 8.0, 0.0):  # the first epoch's weights start the average
        _set(model, value)
        average.update()
    expected = 0.75 * (0.75 * 4.0 + 0.25 * 8.0) + 0.25 * 0.0  # 3.75, every weight, BatchNorm statistics too
    with average.in_model():
        for w in model.get_weights():
            np.testing.assert_allclose(w, expected, rtol=1e-6)
    for w in model.get_weights():
        np.testing.assert_array_equal(w, 0.0)


def test_before_any_epoch_the_model_is_left_as_it_is():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    _set(model, 2.0)
    with WeightAverage(model, momentum=0.5).in_model():
        assert all(np.all(w == 2.0) for w in model.get_weights())


@pytest.mark.parametrize("value", ["-0.1", "1", "nan"])
def test_a_bad_momentum_is_refused(test_config_path, value):
    with pytest.raises(ConfigError, match="weight_average"):
        load_config(test_config_path, (f"train.weight_average={value}",))


def _phase(cfg, directory, budget=None):
    """Phase 1 of the flat model's head on pooled rows a head can learn (the phantoms' tiny backbone gives rows
    it cannot: their macro-F1 stays at chance), two training passes, seeded as a run seeds it."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 1.2
    y, y_val = rng.integers(0, 4, 240), rng.integers(0, 4, 120)
    passes = [(centres[y] + rng.normal(size=(240, 16))).astype(np.float32) for _ in range(2)]
    val = (centres[y_val] + rng.normal(size=(120, 16))).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = build_head_model(16, 4, units=8, dropout=0.3)
    state = run_phase(
        "phase1",
        STAGES["flat"],
        model,
        keras.optimizers.Adam(3e-3),
        12,
        20,
        directory,
        passes,
        y,
        val,
        y_val,
        cfg,
        Reporter(),
        budget or EpochBudget(None),
        baseline=False,
    )
    return state, predict_batches(model, val, 32), y_val


def test_an_averaged_phase_trains_as_the_plain_one_but_scores_and_keeps_the_average(test_config_path, tmp_path):
    plain_cfg = load_config(test_config_path, ("train.batch_size=32",))
    averaged_cfg = load_config(test_config_path, ("train.batch_size=32", "train.weight_average=0.7"))
    plain, plain_probs, y_val = _phase(plain_cfg, tmp_path / "plain")
    averaged, averaged_probs, _ = _phase(averaged_cfg, tmp_path / "averaged")
    # Training itself is untouched: the same losses, epoch for epoch.
    assert [r["loss"] for r in averaged.history] == [r["loss"] for r in plain.history]
    # The first epoch's average is its weights; after it the phase scores the average, and keeps it.
    scores = [[r["val_macro_f1"] for r in s.history] for s in (plain, averaged)]
    assert scores[0][0] == scores[1][0] and scores[0][1:] != scores[1][1:]
    assert not np.allclose(plain_probs, averaged_probs)
    # What the phase keeps is what scored best: here an average, never scored as raw weights.
    assert macro_f1_of_probs(y_val, averaged_probs, 4) == averaged.best_score
    assert macro_f1_of_probs(y_val, plain_probs, 4) == plain.best_score


def test_an_averaged_phase_killed_and_resumed_ends_as_the_whole_one(test_config_path, tmp_path):
    """The average is in the checkpoint: a resumed phase continues it instead of starting a new one."""
    cfg = load_config(test_config_path, ("train.batch_size=32", "train.weight_average=0.7"))
    whole, whole_probs, _ = _phase(cfg, tmp_path / "whole")
    with pytest.raises(TrainingInterrupted):
        _phase(cfg, tmp_path / "killed", EpochBudget(5))
    resumed, resumed_probs, _ = _phase(cfg, tmp_path / "killed")
    assert [r["val_macro_f1"] for r in resumed.history] == [r["val_macro_f1"] for r in whole.history]
    np.testing.assert_array_equal(resumed_probs, whole_probs)
