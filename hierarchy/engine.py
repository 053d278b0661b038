"""The one training engine: the epoch loop, its seeding, its budget and batched prediction, for two-phase training
(neurocascade.hierarchy.train) and quantization-aware training (neurocascade.edge.qat) alike.

Every epoch is seeded by `epoch_seed(seed, stage, phase, epoch)`, trained, scored on validation macro-F1 (early
stopping with `patience`), checkpointed (neurocascade.hierarchy.checkpoint: state, optimizer and, when it improved, the best
weights) and reported; at the end the best weights are restored. Because the seed is a function of names and
the epoch alone, a loop resumed from its checkpoint continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import time
import zlib
from typing import Callable

import numpy as np

from neurocascade.data.pipeline import derive_seed
from neurocascade.hierarchy.checkpoint import PhaseCheckpoint, PhaseState
from neurocascade.errors import UserError
from neurocascade.tf import keras, tf


class TrainingInterrupted(UserError):
    """Raised after `stop_after_epochs` epochs (tests) — the run resumes like after a kill."""


class EpochBudget:
    """Counts epochs run in this process and interrupts after `limit` (None: never); `hint` says how to go on."""

    def __init__(self, limit: int | None, hint: str = "continue with --resume"):
        self.limit, self.used, self.hint = limit, 0, hint

    def tick(self) -> None:
        self.used += 1
        if self.limit is not None and self.used >= self.limit:
            raise TrainingInterrupted(f"stopped after {self.used} epoch(s); {self.hint}")


def epoch_seed(seed: int, stage: str, phase: str, epoch: int = 0) -> int:
    """The seed of one stage's phase and epoch, from their names: a stage's result does not depend on which
    stages ran before it in the same process, so a cascade resumed after its gate equals an uninterrupted one."""
    return derive_seed(seed, zlib.crc32(stage.encode()), zlib.crc32(phase.encode()), epoch)


def predict_batches(model: keras.Model, x: np.ndarray | list[np.ndarray], batch_size: int) -> np.ndarray:
    """`model`'s outputs (inference mode) for `x` (one array, or one per model input), cast to float32 one batch
    at a time: uint8 images stay small, and a direct call skips `Model.predict`'s per-call tf.data set-up, which
    cost more than the prediction itself when it ran once per epoch on a validation split."""
    inputs = x if isinstance(x, list) else [x]

    def batch(i: int):
        rows = [tf.constant(a[i : i + batch_size], tf.float32) for a in inputs]
        return rows if isinstance(x, list) else rows[0]

    out = [model(batch(i), training=False).numpy() for i in range(0, len(inputs[0]), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)


FitEpoch = Callable[[int], "tuple[float, dict]"]
"""Trains one epoch (its index given) and returns (mean training loss, extra fields for the epoch's record)."""


def run_epochs(
    ckpt: PhaseCheckpoint,
    state: PhaseState,
    epochs: int,
    patience: int,
    seed: int,
    stage: str,
    phase: str,
    fit_epoch: FitEpoch,
    score: Callable[[], float],
    on_epoch: Callable[[dict], None],
    budget: EpochBudget,
) -> PhaseState:
    """Run epochs `state.epochs_done`.. until `epochs` or early stopping; leaves the model at its best weights.

    Each epoch's record — epoch (1-based), loss, val_macro_f1, best, seconds, then `fit_epoch`'s extras — goes
    into `state.history`, the checkpoint and `on_epoch`; `budget` may interrupt after any epoch.
    """
    while not state.done and state.epochs_done < epochs:
        epoch = state.epochs_done
        keras.utils.set_random_seed(epoch_seed(seed, stage, phase, epoch))
        start = time.perf_counter()
        loss, extra = fit_epoch(epoch)
        val_f1 = score()
        improved = state.update(val_f1, patience)
        seconds = time.perf_counter() - start
        state.seconds += seconds
        record = {
            "epoch": epoch + 1,
            "loss": loss,
            "val_macro_f1": val_f1,
            "best": improved,
            "seconds": round(seconds, 2),
            **extra,
        }
        state.history.append(record)
        if state.epochs_done >= epochs:
            state.done = True
        ckpt.save_epoch(state, improved)
        on_epoch(record)
        budget.tick()
    ckpt.restore_best()
    return state
