"""An average of a model's weights over its training epochs (`train.weight_average`, issue 13).

Validation macro-F1 moves by 2-4 points from one epoch to the next on ~400-image folds, so the epoch early
stopping keeps is partly a lucky draw. An exponential moving average of the weights, one step per epoch
(avg = m·avg + (1 − m)·w, the first epoch's weights as the start), is a smoother model: the phase scores it,
stops on it and keeps it, while training itself goes on with the raw weights. Its values are part of the phase
checkpoint, so a resumed phase continues the same average.

    average = WeightAverage(model, momentum=0.8)
    average.update()                  # after each epoch's training
    with averaged(average):           # the model holds the average here, its raw weights again after
        score = evaluate(model)
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import ContextManager, Iterator

from neurocascade.tf import keras, tf


class WeightAverage:
    """The epoch-wise exponential moving average of every float weight of `model` (BatchNorm statistics
    included); integer weights (a Normalization layer's count) are carried as they are."""

    def __init__(self, model: keras.Model, momentum: float) -> None:
        if not 0 < momentum < 1:
            raise ValueError(f"momentum must be in (0, 1), got {momentum}")
        self.model, self.momentum = model, momentum
        # What the phase checkpoint saves and restores: the averaged values and how many epochs they hold.
        self.state = tf.Module(name="weight_average")
        self.state.epochs = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.state.values = [tf.Variable(tf.zeros_like(w), trainable=False) for w in model.weights]

    def update(self) -> None:
        """Fold the model's current weights into the average (the first call copies them)."""
        m = self.momentum if int(self.state.epochs.numpy()) else 0.0
        for avg, w in zip(self.state.values, self.model.weights, strict=True):
            if avg.dtype.is_floating:
                # avg += (1 − m)(w − avg), not m·avg + (1 − m)·w: a weight that does not move (a frozen layer,
                # its BatchNorm statistics) stays bit for bit what it is instead of drifting by an ulp a step.
                avg.assign_add((1.0 - m) * (w - avg))
            else:
                avg.assign(w)
        self.state.epochs.assign_add(1)

    @contextmanager
    def in_model(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block and its own ones again after it."""
        if not int(self.state.epochs.numpy()):  # nothing averaged yet: the model's own weights are all there is
            yield
            return
        raw = [w.numpy() for w in self.model.weights]
        try:
            for w, avg in zip(self.model.weights, self.state.values, strict=True):
                w.assign(avg)
            yield
        finally:
            for w, value in zip(self.model.weights, raw, strict=True):
                w.assign(value)


def averaged(average: WeightAverage | None) -> ContextManager[None]:
    """`average.in_model()`, or nothing to swap when the phase keeps no average."""
    return average.in_model() if average else nullcontext()
