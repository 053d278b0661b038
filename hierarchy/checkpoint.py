"""Per-epoch state of a training phase, so an interrupted run loses at most the current epoch.

After every epoch: a TF checkpoint of the model and optimizer (two kept, so the one `state.json` names
always exists), the best weights when they improved, then `state.json`, each written atomically; the
checkpoint `state.json` names is relative to the phase's folder, so the run folder can move. `--resume`
restores the checkpoint `state.json` names and continues with the next epoch, same phase, same optimizer.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from neurocascade.errors import UserError
from neurocascade.hierarchy.averaging import WeightAverage, averaged
from neurocascade.io import write_json
from neurocascade.tf import keras, tf


@dataclass
class PhaseState:
    """Where a phase stands: epochs done, early-stopping bookkeeping, per-epoch history."""

    epochs_done: int = 0
    best_score: float = -1.0
    best_epoch: int = -1
    wait: int = 0
    done: bool = False
    checkpoint: str = ""
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)

    def update(self, score: float, patience: int) -> bool:
        """Record an epoch's validation score; True if it is the best so far (strictly better)."""
        improved = score > self.best_score
        if improved:
            self.best_score, self.best_epoch, self.wait = score, self.epochs_done, 0
        else:
            self.wait += 1
        self.epochs_done += 1
        if self.wait >= patience:
            self.done = True
        return improved


class PhaseCheckpoint:
    """The files of one phase of one model: `state.json`, `ckpt-*` (model + optimizer), `best_weights.h5`."""

    def __init__(
        self,
        directory: Path,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        average: WeightAverage | None = None,
    ) -> None:
        """`average`: the phase keeps the averaged weights as its best (`train.weight_average`); the checkpoint
        holds the raw weights and the average both, so a resumed phase continues each."""
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.model, self.average = model, average
        tracked = {"average": average.state} if average else {}
        self.ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, **tracked)
        self.manager = tf.train.CheckpointManager(self.ckpt, str(self.dir / "ckpt"), max_to_keep=2)

    @property
    def best_path(self) -> Path:
        return self.dir / "best_weights.h5"

    def load_state(self) -> PhaseState:
        """The saved state (restoring model and optimizer to it), or a fresh one."""
        path = self.dir / "state.json"
        if not path.exists():
            return PhaseState()
        state = PhaseState(**json.loads(path.read_text()))
        if state.checkpoint and not state.done:
            self.ckpt.restore(str(self.checkpoint_path(state.checkpoint))).expect_partial()
        return state

    def checkpoint_path(self, recorded: str) -> Path:
        """Where the checkpoint `state.json` names is now: in this phase's `ckpt/`, whatever folder the run
        was in or started from when the name was recorded (older runs recorded it relative to that)."""
        path = self.dir / "ckpt" / Path(recorded).name
        if not path.with_name(path.name + ".index").is_file():
            raise UserError(
                f"{self.dir / 'state.json'}: its checkpoint ckpt/{path.name} is missing; the run folder is incomplete"
            )
        return path

    def save_epoch(self, state: PhaseState, improved: bool) -> None:
        """Persist one finished epoch: best weights if improved, the checkpoint, then the state that names it."""
        if improved:
            tmp = self.dir / ".best_tmp.h5"
            with averaged(self.average):
                self.model.save_weights(str(tmp))
            os.replace(tmp, self.best_path)
        # Recorded relative to this phase's folder, so a moved run, or one resumed from another working
        # folder, finds it (issue 14, item 6).
        state.checkpoint = Path(self.manager.save()).relative_to(self.dir).as_posix()
        write_json(self.dir / "state.json", asdict(state))

    def restore_best(self) -> None:
        if self.best_path.exists():
            self.model.load_weights(str(self.best_path))
