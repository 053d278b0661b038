"""The export's Keras reference: training's saved validation probabilities only when they are this model's."""

from __future__ import annotations

import numpy as np
import pytest

from neurocascade.edge.keras_reference import VAL_PREDICTIONS, keras_validation_probs
from neurocascade.hierarchy.engine import predict_batches


@pytest.fixture(scope="module")
def gate_run(tiny_runs):
    from neurocascade.edge.export import _dataset, _load_run
    from neurocascade.keras_io import load_keras_model

    run = tiny_runs["cascade"]
    cfg, manifest = _load_run(run, ())
    ds = _dataset(cfg, manifest, str(tiny_runs["data"]))
    model = load_keras_model(run / "models" / "gate.keras", manifest.model_sha256("gate"))
    return run, model, ds.images("val"), ds.labels("val")


def _with(tmp_path, saved: dict) -> object:
    np.savez(tmp_path / VAL_PREDICTIONS, **saved)
    return tmp_path


def test_the_saved_probabilities_are_used_when_the_model_gives_them_again(gate_run, monkeypatch):
    from neurocascade.edge import keras_reference

    run, model, x_val, y4_val = gate_run
    predicted = []
    monkeypatch.setattr(keras_reference, "SPOT_CHECK_IMAGES", 3)  # the tiny run has fewer than the real 16
    monkeypatch.setattr(keras_reference, "predict_batches", lambda m, x, b: predicted.append(len(x)) or m.predict(x))
    probs, source = keras_validation_probs(model, run, "gate", x_val, y4_val, 8)
    np.testing.assert_array_equal(probs, np.load(run / VAL_PREDICTIONS)["gate"])
    assert "from training's val_predictions.npz" in source and "on 3 images" in source
    assert predicted == [3] and len(x_val) > 3
    np.testing.assert_allclose(probs, predict_batches(model, x_val, 8), atol=1e-5)


@pytest.mark.parametrize("change", ["other model", "other split", "no gate", "not an npz"])
def test_anything_else_is_predicted_again_and_says_why(gate_run, tmp_path, change):
    run, model, x_val, y4_val = gate_run
    saved = dict(np.load(run / VAL_PREDICTIONS))
    if change == "other model":  # the probabilities of one image off by 0.01: another model's
        saved["gate"] = saved["gate"].copy()
        saved["gate"][0] += [0.01, -0.01]
    elif change == "other split":
        saved["y_true"] = np.roll(saved["y_true"], 1) if len(set(saved["y_true"])) > 1 else saved["y_true"][1:]
    elif change == "no gate":
        del saved["gate"]
    folder = _with(tmp_path, saved)
    if change == "not an npz":
        (folder / VAL_PREDICTIONS).write_bytes(b"\x93NUMPY not really")
    probs, source = keras_validation_probs(model, folder, "gate", x_val, y4_val, 8)
    np.testing.assert_allclose(probs, predict_batches(model, x_val, 8), atol=1e-6)
    assert source.startswith("Keras validation probabilities predicted again: ")
    assert ("is not this model's output" in source) == (change == "other model")
