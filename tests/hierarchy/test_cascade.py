"""Hard and soft cascade combination and the threshold choice, on fixed arrays with hand-computed answers."""

import numpy as np
import pytest

from neurocascade.hierarchy.cascade import choose_tau, hard_predictions, soft_probabilities
from neurocascade.hierarchy.stages import STAGES

P = np.array([0.9, 0.2, 0.6, 0.05])
Q = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.2, 0.2, 0.6]])


def test_soft_probabilities_golden():
    expected = np.array(
        [
            [0.63, 0.18, 0.09, 0.10],
            [0.02, 0.16, 0.02, 0.80],
            [0.18, 0.18, 0.24, 0.40],
            [0.01, 0.01, 0.03, 0.95],
        ]
    )
    out = soft_probabilities(P, Q)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)


def test_hard_predictions_golden():
    assert hard_predictions(P, Q, tau=0.5).tolist() == [0, 3, 2, 3]
    assert hard_predictions(P, Q, tau=0.1).tolist() == [0, 1, 2, 3]
    assert hard_predictions(P, Q, tau=0.95).tolist() == [3, 3, 3, 3]


def test_choose_tau_reaches_target_with_best_specificity():
    p = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.3, 0.05])
    tumour = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0], bool)
    assert choose_tau(p, tumour, 1.0) == 0.1  # every tumour above it
    assert choose_tau(p, tumour, 0.9) == 0.2  # 9 of 10 tumours: one may be missed
    assert choose_tau(p, tumour, 0.75) == 0.3  # floor(10 * 0.25) = 2 may be missed (0.1, 0.2)
    sens = ((p >= choose_tau(p, tumour, 0.75)) & tumour).sum() / tumour.sum()
    assert sens >= 0.75


def test_choose_tau_needs_tumours():
    with pytest.raises(ValueError):
        choose_tau(np.array([0.1]), np.array([False]), 0.97)


def test_stage_label_selection():
    y4 = np.array([0, 1, 2, 3, 3, 1])
    mask, y = STAGES["gate"].select(y4)
    assert mask.all() and y.tolist() == [0, 0, 0, 1, 1, 0]
    mask, y = STAGES["subtype"].select(y4)
    assert mask.tolist() == [True, True, True, False, False, True] and y.tolist() == [0, 1, 2, 1]
    assert STAGES["flat"].select(y4)[1].tolist() == y4.tolist()


def test_cascade_rule_in_other_column_orders():
    """The runtime's sidecar may order the classes otherwise: the same rule, columns moved (no tumour first)."""
    from neurocascade.hierarchy.cascade import tumour_called

    cols = (1, 2, 3)
    soft = soft_probabilities(P, Q, no_tumour=0, subtype_columns=cols)
    np.testing.assert_array_equal(soft[:, [1, 2, 3, 0]], soft_probabilities(P, Q))
    hard = hard_predictions(P, Q, 0.5, no_tumour=0, subtype_columns=cols)
    assert hard.tolist() == [1, 0, 3, 0]
    assert tumour_called(P, 0.6).tolist() == [True, False, True, False]  # p = τ is called tumour


def test_cascade_rule_without_a_subtype_distribution():
    """Where the subtype model did not run (q NaN), the subtype probabilities are unknown, not a split."""
    q = Q.copy()
    q[[1, 3]] = np.nan
    soft = soft_probabilities(P, q)
    assert np.isnan(soft[[1, 3], :3]).all()
    np.testing.assert_allclose(soft[:, 3], 1.0 - P)
    assert hard_predictions(P, q, 0.5).tolist() == [0, 3, 2, 3]
