"""A flat phantom run trained whole and the same run killed one epoch into phase 2 and resumed (imported by tests
as `interrupted`): what every "a resumed run ends where the uninterrupted one does" check compares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurocascade.config import Config
from neurocascade.hierarchy.run import train_models
from neurocascade.hierarchy.train import TrainingInterrupted


def flat_run_whole_and_resumed(cfg: Config, tiny_runs: dict, tmp_path: Path) -> tuple[dict, dict, list, list]:
    """(uninterrupted summary, resumed summary, their per-epoch losses) of `cfg`'s flat model on the phantoms."""
    run = dict(data=str(tiny_runs["data"]), cache_root=tiny_runs["cache"])
    full = train_models(cfg, ("flat",), tmp_path / "full", **run)
    phase1_epochs = full["stages"]["flat"]["phase1"]["epochs"]
    with pytest.raises(TrainingInterrupted):
        train_models(cfg, ("flat",), tmp_path / "killed", stop_after_epochs=phase1_epochs + 1, **run)
    resumed = train_models(cfg, ("flat",), tmp_path / "killed", resume=True, **run)
    full_losses, resumed_losses = (
        [r["loss"] for r in json.loads((tmp_path / d / "stages" / "flat" / "history.json").read_text())]
        for d in ("full", "killed")
    )
    return full, resumed, full_losses, resumed_losses
