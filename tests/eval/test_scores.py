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


@pytest.mark.parametrize("seed", range(20))
def test_one_macro_f1_keeps_every_former_rule_where_it_was_defined(seed):
    """`macro_f1_score` replaced scikit-learn's f1_score with zero_division=0 (training, export) and =nan (eval).

    It equals the nan rule always, bit for bit, and the 0 rule bit for bit whenever every class is present in
    y_true (every validation set of a stratified split): no number reported before the merge changes. Only a
    class neither present nor predicted is treated differently, left out of the mean instead of counted as 0.
    """
    from sklearn.metrics import f1_score

    from neurocascade.eval.scores import macro_f1_of_probs, macro_f1_score

    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 5))
    n = int(rng.integers(n_classes, 60))
    y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, n - n_classes)])  # every class present
    probs = rng.dirichlet(np.ones(n_classes), n)
    pred = probs.argmax(1)
    labels = list(range(n_classes))
    for rule in (0, np.nan):
        assert macro_f1_score(y, pred, n_classes) == float(
            f1_score(y, pred, labels=labels, average="macro", zero_division=rule)
        )
    assert macro_f1_of_probs(y, probs, n_classes) == macro_f1_score(y, pred, n_classes)
    absent = y != n_classes - 1  # drop the last class from the truth and the predictions
    y2, pred2 = y[absent], np.minimum(pred[absent], n_classes - 2)
    got = macro_f1_score(y2, pred2, n_classes)
    assert got == float(f1_score(y2, pred2, labels=labels, average="macro", zero_division=np.nan))
    assert got * (n_classes - 1) / n_classes == pytest.approx(
        f1_score(y2, pred2, labels=labels, average="macro", zero_division=0), abs=1e-12
    )
