"""The bootstrap's fast metrics agree with scikit-learn (and with neurocascade.eval.metrics) to 1e-12."""

import numpy as np
import pytest

from neurocascade.eval.metrics import classification_metrics
from neurocascade.eval.scores import METRICS, get_metric, headline_metrics, register


def _case(seed: int, n: int = 200, drop_class: int | None = None, constant_pred: bool = False):
    rng = np.random.default_rng(seed)
    classes = [c for c in range(4) if c != drop_class]
    y = rng.choice(classes, n)
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), y] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = np.full(n, 1) if constant_pred else probs.argmax(1)
    return y, probs, pred


@pytest.mark.parametrize(
    "case", [dict(seed=0), dict(seed=1, n=37), dict(seed=2, drop_class=2), dict(seed=3, constant_pred=True)]
)
def test_fast_metrics_match_sklearn(case):
    y, probs, pred = _case(**case)
    ref = classification_metrics(y, probs, pred)
    fns = headline_metrics()
    for name in (
        "accuracy",
        "balanced_accuracy",
        "macro_f1",
        "weighted_f1",
        "mcc",
        "kappa",
        "brier",
        "roc_auc_macro",
        "recall_glioma",
        "recall_no_tumor",
    ):
        got, want = fns[name](y, probs, pred), ref[name]
        if want is None:
            assert np.isnan(got), name
        else:
            assert got == pytest.approx(want, abs=1e-12), name


def test_metrics_without_probabilities():
    y, probs, pred = _case(4)
    assert METRICS["macro_f1"](y, None, pred) == pytest.approx(METRICS["macro_f1"](y, probs, pred), abs=1e-12)


def test_registry_rejects_duplicates_and_names_valid_metrics():
    with pytest.raises(ValueError, match="already registered"):
        register("accuracy")(lambda y, p, q: 0.0)
    with pytest.raises(KeyError, match="macro_f1"):
        get_metric("macro_F1")
