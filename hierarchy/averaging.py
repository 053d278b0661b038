"""An average of a model's weights over its training epochs (`train.weight_average`, issue 13).

Validation macro-F1 moves by 2-4 points from one epoch to the next on ~400-image folds, so the epoch early
stopping keeps is partly a lucky draw. An exponential moving average of the weights, one step per epoch
(avg = m·avg + (1 − m)·w, the first epoch's weights as the start), is a smoother model: the phase scores it,
stops on it and keeps it, while training itself goes on with the raw weights. Its values are part of the phase
checkpoint, so a resumed phase continues the same average.

    average = WeightAverage(model, momentum=0.8)
    average.update()                  # after each epoch's training
    with average.in_model():          # the model holds the average here, its raw weights again after
        score = evaluate(model)
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from neurocascade.tf import keras, tf


class WeightAverage:
    """The epoch-wise exponential moving average of every weight of `model` (BatchNorm statistics included)."""

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
        for avg, w in zip(self.state.values, self.model.weights):
            avg.assign(m * avg + (1.0 - m) * tf.cast(w, avg.dtype))
        self.state.epochs.assign_add(1)

    @contextmanager
    def in_model(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block and its own ones again after it."""
        if not int(self.state.epochs.numpy()):  # nothing averaged yet: the model's own weights are all there is
            yield
            return
        raw = [w.numpy() for w in self.model.weights]
        for w, avg in zip(self.model.weights, self.state.values):
            w.assign(avg)
        try:
            yield
        finally:
            for w, value in zip(self.model.weights, raw):
                w.assign(value)
