"""INT8-vs-Keras agreement read from two predictions.csv files (neurocascade.eval.agreement)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from neurocascade.eval.agreement import prediction_agreement

HEADER = [
    "path", "true_label",
    "cascade_label", "cascade_p_glioma", "cascade_p_meningioma", "cascade_p_pituitary", "cascade_p_no_tumor",
    "cascade_gate_p_tumour", "cascade_tau",
    "flat_label", "flat_p_glioma", "flat_p_meningioma", "flat_p_pituitary", "flat_p_no_tumor",
]  # fmt: skip
TAU = 0.6


def _row(path: str, true: str, gate: float, subtype: tuple[float, float, float], flat: str) -> list:
    """One image: the cascade's columns from the gate's P(tumour) and the subtype's probabilities, as eval writes."""
    four = [gate * s for s in subtype] + [1 - gate]
    label = (
        ("glioma", "meningioma", "pituitary")[max(range(3), key=lambda k: subtype[k])] if gate >= TAU else "no_tumor"
    )
    flat_p = [1.0 if c == flat else 0.0 for c in ("glioma", "meningioma", "pituitary", "no_tumor")]
    return [path, true, label, *four, gate, TAU, flat, *flat_p]


def _write(path: Path, rows: list[list]) -> Path:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([HEADER, *rows])
    return path


def test_each_model_agreement_counts_the_images_where_the_two_backends_decide_alike(tmp_path):
    keras = [
        _row("a.jpg", "glioma", 0.9, (0.7, 0.2, 0.1), "glioma"),
        _row("b.jpg", "meningioma", 0.8, (0.2, 0.7, 0.1), "meningioma"),
        _row("c.jpg", "pituitary", 0.65, (0.1, 0.1, 0.8), "pituitary"),
        _row("d.jpg", "no_tumor", 0.1, (0.3, 0.3, 0.4), "no_tumor"),
    ]
    int8 = [
        _row("a.jpg", "glioma", 0.9, (0.7, 0.2, 0.1), "glioma"),
        _row("b.jpg", "meningioma", 0.8, (0.6, 0.3, 0.1), "meningioma"),  # the subtype flips
        _row("c.jpg", "pituitary", 0.55, (0.1, 0.1, 0.8), "pituitary"),  # below τ, still a tumour at 0.5
        _row("d.jpg", "no_tumor", 0.1, (0.3, 0.3, 0.4), "glioma"),  # the flat model flips
    ]
    got = prediction_agreement(_write(tmp_path / "k.csv", keras), _write(tmp_path / "i.csv", int8))
    models = got["models"]
    assert got["images"] == 4
    assert models["cascade"]["top1_agreement"] == 0.5  # b (subtype) and c (τ) differ
    assert models["cascade"]["tau_decision_agreement"] == 0.75
    assert models["gate"]["top1_agreement"] == 1.0 and models["gate"]["max_abs_prob_diff"] == pytest.approx(0.1)
    assert models["subtype"] == {"top1_agreement": pytest.approx(2 / 3, abs=1e-4), "n": 3}  # tumour images only
    assert models["flat"]["top1_agreement"] == 0.75 and models["flat"]["max_abs_prob_diff"] == 1.0
    assert models["cascade"]["max_abs_prob_diff"] == pytest.approx(0.8 * 0.4)


def test_an_image_whose_gate_score_rounds_to_zero_says_nothing_about_the_subtype(tmp_path):
    keras = [_row("a.jpg", "glioma", 0.9, (0.7, 0.2, 0.1), "glioma")]
    int8 = [_row("a.jpg", "glioma", 0.0, (0.2, 0.7, 0.1), "glioma")]
    got = prediction_agreement(_write(tmp_path / "k.csv", keras), _write(tmp_path / "i.csv", int8))
    assert got["models"]["subtype"] == {"top1_agreement": None, "n": 0}


def test_two_files_of_different_images_are_refused(tmp_path):
    a = _write(tmp_path / "a.csv", [_row("a.jpg", "glioma", 0.9, (0.7, 0.2, 0.1), "glioma")])
    b = _write(tmp_path / "b.csv", [_row("b.jpg", "glioma", 0.9, (0.7, 0.2, 0.1), "glioma")])
    with pytest.raises(ValueError, match="same images"):
        prediction_agreement(a, b)
