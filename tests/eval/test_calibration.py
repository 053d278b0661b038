"""Top-label ECE on a hand case, and the bin edges."""

import numpy as np
import pytest

from neurocascade.eval.calibration import expected_calibration_error


def test_ece_hand_case():
    # 5 bins of width 0.2. Confidence / right?: 0.9 yes, 0.9 no → bin (0.8, 1]: conf 0.9, acc 0.5, gap 0.4;
    # 0.5 yes → (0.4, 0.6]: gap 0.5; 0.3 no → (0.2, 0.4]: gap 0.3.
    # ECE = 2/4 · 0.4 + 1/4 · 0.5 + 1/4 · 0.3 = 0.4
    y = np.array([0, 1, 2, 3])
    probs = np.array([[0.9, 0.05, 0.05, 0.0], [0.9, 0.1, 0.0, 0.0], [0.2, 0.1, 0.5, 0.2], [0.3, 0.25, 0.25, 0.2]])
    cal = expected_calibration_error(y, probs, n_bins=5)
    assert cal["ece"] == pytest.approx(0.4, abs=1e-12)
    assert [b["count"] for b in cal["bins"]] == [0, 1, 1, 0, 2]
    top = cal["bins"][4]
    assert top["confidence"] == pytest.approx(0.9) and top["accuracy"] == pytest.approx(0.5)
    assert cal["bins"][0]["confidence"] is None  # an empty bin has no mean
    assert (top["lower"], top["upper"]) == (0.8, 1.0)


def test_bins_are_right_closed_at_exact_edges():
    # 0.7 · 10 = 7.000000000000001 in floating point; 0.7 must still land in (0.6, 0.7].
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.3, 0.3, 0.3, 0.1], [1.0, 0.0, 0.0, 0.0]])
    counts = [b["count"] for b in expected_calibration_error(np.zeros(3, int), probs, 10)["bins"]]
    assert counts == [0, 0, 1, 0, 0, 0, 1, 0, 0, 1]


def test_perfectly_calibrated_is_zero():
    y = np.array([0, 0, 0, 1])  # confidence 0.75 everywhere, 3 of 4 right
    probs = np.tile([0.75, 0.25, 0.0, 0.0], (4, 1))
    assert expected_calibration_error(y, probs, 10)["ece"] == pytest.approx(0.0, abs=1e-12)
