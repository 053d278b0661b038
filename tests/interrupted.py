"""A flat phantom run trained whole and the same run killed one epoch into phase 2 and resumed (imported by tests
as `interrupted`): what every "a resumed run ends where the uninterrupted one does" check compares; and the flat
phantom run and validation record check the phase-2 variants share."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neurocascade.config import Config
from neurocascade.data.dataset import load_dataset
from neurocascade.hierarchy.engine import predict_batches
from neurocascade.hierarchy.run import train_models
from neurocascade.hierarchy.train import TrainingInterrupted
from neurocascade.tf import keras


def flat_run(cfg: Config, tiny_runs: dict, out: Path, **kwargs) -> dict:
    """`cfg`'s flat model trained on the session's phantoms into `out`, on its shared activation cache."""
    return train_models(cfg, ("flat",), out, data=str(tiny_runs["data"]), cache_root=tiny_runs["cache"], **kwargs)


def check_validation_record(cfg: Config, out: Path, tiny_runs: dict) -> None:
    """The run's recorded validation probabilities are its saved model's on the validation images themselves."""
    ds = load_dataset(cfg, str(tiny_runs["data"]))
    model = keras.models.load_model(str(out / "models" / "flat.keras"))
    recorded = np.load(out / "val_predictions.npz")["flat"]
    np.testing.assert_allclose(predict_batches(model, ds.images("val"), 8), recorded, atol=1e-5)


def flat_run_whole_and_resumed(cfg: Config, tiny_runs: dict, tmp_path: Path) -> tuple[dict, dict, list, list]:
    """(uninterrupted summary, resumed summary, their per-epoch losses) of `cfg`'s flat model on the phantoms."""
    full = flat_run(cfg, tiny_runs, tmp_path / "full")
    phase1_epochs = full["stages"]["flat"]["phase1"]["epochs"]
    with pytest.raises(TrainingInterrupted):
        flat_run(cfg, tiny_runs, tmp_path / "killed", stop_after_epochs=phase1_epochs + 1)
    resumed = flat_run(cfg, tiny_runs, tmp_path / "killed", resume=True)
    full_losses, resumed_losses = (
        [r["loss"] for r in json.loads((tmp_path / d / "stages" / "flat" / "history.json").read_text())]
        for d in ("full", "killed")
    )
    return full, resumed, full_losses, resumed_losses
