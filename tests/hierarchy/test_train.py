"""End to end on tiny phantoms: train-cascade and train-flat write every artifact; a killed run resumes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from data.phantoms import write_phantom_dataset
from hierarchy.run import train_models
from hierarchy.train import TrainingInterrupted
from neurocascade.config import load_config
from neurocascade.errors import UserError


@pytest.fixture(scope="module")
def cfg(test_config_path):
    return load_config(test_config_path)


@pytest.fixture(scope="module")
def phantoms(tiny_runs):
    return tiny_runs["data"]


@pytest.fixture(scope="module")
def cascade_run(tiny_runs):
    out = tiny_runs["cascade"]
    return out, json.loads((out / "summary.json").read_text()), tiny_runs["cache"]


def test_cascade_run_writes_every_artifact(cascade_run, cfg):
    out, summary, _ = cascade_run
    for rel in ("config.toml", "manifest.json", "summary.json", "tau.json", "val_predictions.npz",
                "models/gate.keras", "models/subtype.keras",
                "stages/gate/history.csv", "stages/gate/history.json", "stages/subtype/history.csv"):
        assert (out / rel).is_file(), rel
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"]["protocol"] == "B" and manifest["seed"] == cfg.train.seed
    assert set(manifest["dataset"]["split_hashes"]) == {"train", "val", "test", "dropped"}
    assert manifest["packages"]["tensorflow"] == "2.21.0"
    assert manifest["weights"]["kind"] == "none"
    tau = json.loads((out / "tau.json").read_text())
    assert 0.0 <= tau["tau"] <= 1.0 and tau["chosen_on"] == "validation"
    assert summary["cascade"]["val_tumour_sensitivity"] >= cfg.train.target_sensitivity
    history = json.loads((out / "stages" / "gate" / "history.json").read_text())
    assert [r["phase"] for r in history].count("phase1") == summary["stages"]["gate"]["phase1"]["epochs"]
    preds = np.load(out / "val_predictions.npz")
    assert preds["gate"].shape[1] == 2 and preds["subtype"].shape[1] == 3
    np.testing.assert_allclose(preds["subtype"].sum(axis=1), 1.0, rtol=1e-5)


def test_existing_run_dir_is_refused(cascade_run, cfg, phantoms):
    out, _, cache = cascade_run
    with pytest.raises(UserError, match="run directory exists; pass --resume"):
        train_models(cfg, ("gate", "subtype"), out, data=str(phantoms), cache_root=cache)


def test_flat_reuses_the_cached_activations(cascade_run, tiny_runs):
    _, cascade, cache = cascade_run
    flat = json.loads((tiny_runs["flat"] / "summary.json").read_text())
    assert (tiny_runs["flat"] / "models" / "flat.keras").is_file()
    assert len(list(cache.iterdir())) == 1  # one cache entry, shared by the cascade and the flat run
    assert flat["seconds"]["activations"] < cascade["seconds"]["activations"]


def test_interrupted_run_resumes_to_the_same_epochs(cfg, phantoms, tmp_path):
    cache = tmp_path / "cache"
    full = train_models(cfg, ("flat",), tmp_path / "full", data=str(phantoms), cache_root=cache)
    with pytest.raises(TrainingInterrupted):
        train_models(cfg, ("flat",), tmp_path / "killed", data=str(phantoms), cache_root=cache, stop_after_epochs=1)
    state = json.loads((tmp_path / "killed" / "stages" / "flat" / "phase1" / "state.json").read_text())
    assert state["epochs_done"] == 1
    resumed = train_models(cfg, ("flat",), tmp_path / "killed", data=str(phantoms), resume=True, cache_root=cache)
    for phase in ("phase1", "phase2"):
        assert resumed["stages"]["flat"][phase]["epochs"] == full["stages"]["flat"][phase]["epochs"]
    assert resumed["stages"]["flat"]["val_macro_f1"] == pytest.approx(full["stages"]["flat"]["val_macro_f1"], abs=1e-6)
