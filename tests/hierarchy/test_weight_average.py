"""The epoch-wise weight average (`train.weight_average`, issue 13): its arithmetic, its swap in and out of the
model, and a phantom run that scores and keeps it, trains exactly as without it and resumes into the same
average."""

from __future__ import annotations

import numpy as np
import pytest

from neurocascade.config import load_config
from neurocascade.errors import ConfigError
from neurocascade.hierarchy.averaging import WeightAverage, averaged
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


def test_weights_that_do_not_move_stay_bit_for_bit_what_they_are():
    """A frozen layer (phase 2's lower blocks, their BatchNorm statistics) must leave the average as it came in:
    m·avg + (1 − m)·w would move such values by an ulp on many steps."""
    rng = np.random.default_rng(0)
    frozen = keras.layers.Dense(7, trainable=False)
    model = keras.Sequential([keras.Input((5,)), frozen, keras.layers.BatchNormalization(), keras.layers.Dense(3)])
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    fixed = [w.numpy().copy() for w in frozen.weights] + [w.numpy().copy() for w in model.layers[1].weights]
    average = WeightAverage(model, momentum=0.7)
    for _ in range(30):  # only the last Dense moves, as a trained head would
        for w in model.layers[2].weights:
            w.assign(rng.normal(size=w.shape).astype(np.float32))
        average.update()
    with average.in_model():
        for w, value in zip(list(frozen.weights) + list(model.layers[1].weights), fixed, strict=True):
            np.testing.assert_array_equal(w.numpy(), value)


def test_integer_weights_are_carried_not_averaged():
    norm = keras.layers.Normalization()
    norm.adapt(np.arange(12, dtype=np.float32).reshape(6, 2))
    model = keras.Sequential([keras.Input((2,)), norm, keras.layers.Dense(2)])
    assert any(not w.dtype.is_floating for w in model.weights)  # the layer's count
    before = [w.numpy() for w in norm.weights]
    average = WeightAverage(model, momentum=0.5)
    average.update()
    average.update()
    with average.in_model():
        for w, value in zip(norm.weights, before, strict=True):
            assert w.dtype == value.dtype
            np.testing.assert_array_equal(w.numpy(), value)


def test_the_raw_weights_come_back_when_the_block_raises():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    average = WeightAverage(model, momentum=0.5)
    _set(model, 1.0)
    average.update()
    _set(model, 5.0)
    with pytest.raises(RuntimeError, match="inside"):
        with averaged(average):
            assert all(np.all(w == 1.0) for w in model.get_weights())
            raise RuntimeError("inside")
    assert all(np.all(w == 5.0) for w in model.get_weights())


def test_without_an_average_nothing_is_swapped():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    _set(model, 2.0)
    with averaged(None):
        assert all(np.all(w == 2.0) for w in model.get_weights())


def test_before_any_epoch_the_model_is_left_as_it_is():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    _set(model, 2.0)
    with WeightAverage(model, momentum=0.5).in_model():
        assert all(np.all(w == 2.0) for w in model.get_weights())


@pytest.mark.parametrize("value", ["-0.1", "1", "nan"])
def test_a_bad_momentum_is_refused(test_config_path, value):
    with pytest.raises(ConfigError, match="weight_average"):
        load_config(test_config_path, (f"train.weight_average={value}",))


def _phase(cfg, directory, budget=None, epochs=12):
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
        epochs,
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


def test_the_phase_keeps_the_average_of_its_best_epoch(test_config_path, tmp_path, monkeypatch):
    """Not the last average, not the raw weights: the average as it stood after the epoch that scored best."""
    averages = []
    update = WeightAverage.update

    def recording_update(self):
        update(self)
        averages.append([v.numpy().copy() for v in self.state.values])

    monkeypatch.setattr(WeightAverage, "update", recording_update)
    cfg = load_config(test_config_path, ("train.batch_size=32", "train.weight_average=0.7"))
    state, _, _ = _phase(cfg, tmp_path / "averaged", epochs=40)
    assert 0 < state.best_epoch < len(averages) - 1  # neither the start nor the last average: the test can tell
    kept = build_head_model(16, 4, units=8, dropout=0.3)
    kept.load_weights(str(tmp_path / "averaged" / "best_weights.h5"))
    for w, value in zip(kept.get_weights(), averages[state.best_epoch], strict=True):
        np.testing.assert_array_equal(w, value)


def test_an_averaged_phase_killed_and_resumed_ends_as_the_whole_one(test_config_path, tmp_path):
    """The average is in the checkpoint: a resumed phase continues it instead of starting a new one."""
    cfg = load_config(test_config_path, ("train.batch_size=32", "train.weight_average=0.7"))
    whole, whole_probs, _ = _phase(cfg, tmp_path / "whole")
    with pytest.raises(TrainingInterrupted):
        _phase(cfg, tmp_path / "killed", EpochBudget(5))
    resumed, resumed_probs, _ = _phase(cfg, tmp_path / "killed")
    assert [r["val_macro_f1"] for r in resumed.history] == [r["val_macro_f1"] for r in whole.history]
    np.testing.assert_array_equal(resumed_probs, whole_probs)
