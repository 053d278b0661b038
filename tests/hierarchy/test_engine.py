"""The one epoch loop (neurocascade.hierarchy.engine): records, early stopping, seeding by name, the budget and resume —
with a stand-in model, so it runs in a second; tests/hierarchy/test_train.py and tests/edge/test_qat.py run it
with real training."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from neurocascade.hierarchy.checkpoint import PhaseState
from neurocascade.hierarchy.engine import EpochBudget, TrainingInterrupted, epoch_seed, predict_batches, run_epochs


class MemoryCheckpoint:
    """Keeps what PhaseCheckpoint would write: a copy of the state after each epoch, the best epoch's weights."""

    def __init__(self):
        self.saved: PhaseState | None = None
        self.best = self.weights = None
        self.restored = False

    def save_epoch(self, state: PhaseState, improved: bool) -> None:
        if improved:
            self.best = self.weights
        self.saved = copy.deepcopy(state)

    def restore_best(self) -> None:
        self.weights, self.restored = self.best, True


def _loop(ckpt: MemoryCheckpoint, state: PhaseState, scores: list[float], budget: EpochBudget, epochs: int = 6):
    records = []

    def fit_epoch(epoch: int) -> tuple[float, dict]:
        ckpt.weights = np.random.random()  # draws from the epoch's seed: the same whether resumed or not
        return 1.0 / (epoch + 1), {"pass": epoch % 2}

    run_epochs(
        ckpt,
        state,
        epochs,
        2,
        seed=3,
        stage="gate",
        phase="phase1",
        fit_epoch=fit_epoch,
        score=lambda: scores[state.epochs_done],
        on_epoch=records.append,
        budget=budget,
    )
    return records


def test_loop_stops_early_and_restores_the_best_epoch():
    ckpt, state = MemoryCheckpoint(), PhaseState()
    records = _loop(ckpt, state, [0.5, 0.7, 0.6, 0.65, 0.9, 0.95], EpochBudget(None))
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]  # no better epoch in 2 after epoch 2: stopped
    assert [r["best"] for r in records] == [True, True, False, False]
    assert list(records[0]) == ["epoch", "loss", "val_macro_f1", "best", "seconds", "pass"]
    assert state.done and state.best_epoch == 1 and state.best_score == 0.7
    assert ckpt.restored and ckpt.weights == ckpt.best and state.history == records


def test_interrupted_and_resumed_loop_equals_an_uninterrupted_one():
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    full_ckpt = MemoryCheckpoint()
    full = _loop(full_ckpt, PhaseState(), scores, EpochBudget(None))
    ckpt = MemoryCheckpoint()
    with pytest.raises(TrainingInterrupted, match="stopped after 2 epoch"):
        _loop(ckpt, PhaseState(), scores, EpochBudget(2, "go on"))
    resumed_state = copy.deepcopy(ckpt.saved)
    assert resumed_state.epochs_done == 2
    _loop(ckpt, resumed_state, scores, EpochBudget(None))
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in resumed_state.history]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in full]
    assert ckpt.weights == full_ckpt.weights  # the best epoch's random draw, the same after resuming


def test_epoch_seed_depends_on_names_and_epoch_only():
    assert epoch_seed(0, "gate", "qat", 1) == epoch_seed(0, "gate", "qat", 1)
    assert (
        len(
            {
                epoch_seed(0, "gate", "qat", 1),
                epoch_seed(0, "gate", "qat", 2),
                epoch_seed(0, "subtype", "qat", 1),
                epoch_seed(0, "gate", "phase1", 1),
                epoch_seed(1, "gate", "qat", 1),
            }
        )
        == 5
    )


def test_predict_batches_equals_one_call_and_handles_no_images():
    from neurocascade.tf import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    x = np.arange(21, dtype=np.uint8).reshape(7, 3)
    np.testing.assert_allclose(predict_batches(model, x, 3), model(x.astype(np.float32)).numpy(), rtol=1e-6)
    empty = predict_batches(model, x[:0], 3)
    assert empty.shape == (0, 2) and empty.dtype == np.float32


def test_predict_batches_takes_several_inputs_and_equals_model_predict_bit_for_bit():
    # Validation is scored with it every epoch, where Model.predict scored it before: early stopping must see
    # the very same numbers, or every trained run would change.
    from neurocascade.tf import keras

    a, b = keras.Input((5,)), keras.Input((4,))
    h = keras.layers.Dense(16, activation="relu")(keras.layers.Concatenate()([a, b]))
    model = keras.Model([a, b], keras.layers.Dense(3, activation="softmax")(keras.layers.Dropout(0.5)(h)))
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(70, 5)).astype(np.float32), rng.normal(size=(70, 4)).astype(np.float32)]
    expected = model.predict(x, verbose=0)
    got = predict_batches(model, x, 32)
    assert got.shape == (70, 3)
    assert np.array_equal(got, expected)
