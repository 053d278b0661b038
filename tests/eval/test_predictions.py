"""predictions.csv: one row per evaluated image, the report's decisions, the gate score and τ."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from neurocascade.eval.predictions import PREDICTIONS_FILE, prediction_table, write_predictions

CLASS_COLUMNS = ["p_glioma", "p_meningioma", "p_pituitary", "p_no_tumor"]


def _models() -> dict:
    # image 0: p = 0.6 ≥ τ = 0.5 → subtype arg-max (meningioma) although P(no_tumor) = 0.4 is the largest single value
    # image 1: p = 0.3 < τ → no_tumor
    cascade = {
        "y_true": np.array([1, 3]),
        "paths": ["a.png", "v.dcm#2"],
        "tau": 0.5,
        "p_tumour": np.array([0.6, 0.3]),
        "q_subtype": np.array([[0.25, 0.5, 0.25], [0.5, 0.25, 0.25]]),
    }
    flat = {
        "y_true": np.array([1, 3]),
        "paths": ["a.png", "v.dcm#2"],
        "probs": np.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]]),
    }
    return {"cascade": cascade, "flat": flat}


def test_columns_and_hand_computed_rows():
    header, rows = prediction_table(_models())
    assert header == (
        ["path", "true_label", "cascade_label"]
        + [f"cascade_{c}" for c in CLASS_COLUMNS]
        + ["cascade_gate_p_tumour", "cascade_tau", "flat_label"]
        + [f"flat_{c}" for c in CLASS_COLUMNS]
    )
    assert rows[0] == [
        "a.png",
        "meningioma",
        "meningioma",
        "0.150000",
        "0.300000",
        "0.150000",
        "0.400000",
        "0.600000",
        "0.500000",
        "no_tumor",
        "0.100000",
        "0.200000",
        "0.300000",
        "0.400000",
    ]
    assert rows[1][:3] == ["v.dcm#2", "no_tumor", "no_tumor"] and rows[1][9] == "glioma"


def test_written_file_has_one_row_per_image(tmp_path):
    path = write_predictions(_models(), tmp_path)
    assert path == tmp_path / PREDICTIONS_FILE
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows] == ["a.png", "v.dcm#2"]
    assert all(abs(sum(float(r[f"flat_{c}"]) for c in CLASS_COLUMNS) - 1) < 1e-6 for r in rows)


def test_models_on_other_images_are_refused():
    models = _models()
    models["flat"]["paths"] = ["b.png", "v.dcm#2"]
    with pytest.raises(ValueError, match="not scored on the same images"):
        prediction_table(models)
