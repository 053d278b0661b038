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


def test_choose_tau_with_confidence_needs_the_lower_bound_to_reach_the_target():
    """tau_confidence: the called count c is the smallest whose one-sided Clopper–Pearson bound reaches the target,
    i.e. (the binomial dual of the beta quantile the code uses) P(X >= c | n, target) <= 1 − confidence."""
    from scipy.stats import binom

    n, target, confidence = 1000, 0.97, 0.95
    p = np.linspace(0.001, 0.999, n)
    tumour = np.ones(n, bool)
    point, bounded = choose_tau(p, tumour, target), choose_tau(p, tumour, target, confidence)
    called = int((p >= bounded).sum())
    assert int((p >= point).sum()) == 970
    assert binom.sf(called - 1, n, target) <= 1 - confidence < binom.sf(called - 2, n, target)
    assert called == 980  # ten more tumours than the point rule: about 1.8 standard errors of a 0.97 share
    assert choose_tau(p, tumour, target, 0.0) == point


@pytest.mark.parametrize("value", ["-0.1", "1", "nan"])
def test_bad_tau_confidence_is_refused(test_config_path, value):
    from neurocascade.config import load_config
    from neurocascade.errors import ConfigError

    with pytest.raises(ConfigError, match="tau_confidence"):
        load_config(test_config_path, (f"train.tau_confidence={value}",))


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
