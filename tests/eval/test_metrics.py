"""Point metrics on hand-computable cases (the arithmetic is in the comments)."""

import math

import numpy as np
import pytest

from neurocascade.eval.metrics import (
    classification_metrics,
    confusion,
    error_propagation,
    gate_metrics,
    subtype_metrics,
)

# Six images; classes 0 glioma, 1 meningioma, 2 pituitary, 3 no_tumor. Predictions are the arg-max.
Y6 = np.array([0, 0, 1, 1, 2, 3])
P6 = np.array(
    [
        [0.7, 0.1, 0.1, 0.1],  # right;  squared error 0.3² + 3·0.1²        = 0.12
        [0.4, 0.5, 0.1, 0.0],  # wrong (1); 0.6² + 0.5² + 0.1²             = 0.62
        [0.1, 0.8, 0.1, 0.0],  # right;  0.1² + 0.2² + 0.1²                = 0.06
        [0.2, 0.6, 0.1, 0.1],  # right;  0.2² + 0.4² + 0.1² + 0.1²         = 0.22
        [0.0, 0.1, 0.9, 0.0],  # right;  0.1² + 0.1²                       = 0.02
        [0.1, 0.1, 0.5, 0.3],  # wrong (2); 0.1² + 0.1² + 0.5² + 0.7²      = 0.76
    ]
)
# Confusion (rows true): glioma 1 of 2 right, meningioma 2 of 2, pituitary 1 of 1, no_tumor 0 of 1.
# F1 = 2TP / (2TP + FP + FN): glioma 2/3, meningioma 4/5, pituitary 2/3 (one false alarm), no_tumor 0.
# macro-F1 = (2/3 + 4/5 + 2/3 + 0) / 4 = 0.5333;  weighted = (2·2/3 + 2·4/5 + 2/3 + 0) / 6 = 0.6
# balanced accuracy = (1/2 + 1 + 1 + 0) / 4 = 0.625
# κ: po = 4/6, row sums (2,2,1,1), column sums (1,3,2,0), pe = (2 + 6 + 2 + 0) / 36 = 10/36 → κ = 14/26
# MCC = (4·6 − 10) / sqrt((36 − 10)(36 − 14)) = 14 / sqrt(26·22)
# Brier = (0.12 + 0.62 + 0.06 + 0.22 + 0.02 + 0.76) / 6 = 0.30
EXPECTED6 = {
    "accuracy": 4 / 6,
    "balanced_accuracy": 0.625,
    "macro_f1": (2 / 3 + 0.8 + 2 / 3) / 4,
    "weighted_f1": 0.6,
    "kappa": 14 / 26,
    "mcc": 14 / math.sqrt(26 * 22),
    "brier": 0.30,
    "log_loss": -sum(map(math.log, [0.7, 0.4, 0.8, 0.6, 0.9, 0.3])) / 6,
    "precision_glioma": 1.0,
    "recall_glioma": 0.5,
    "f1_glioma": 2 / 3,
    "support_glioma": 2,
    "precision_meningioma": 2 / 3,
    "recall_meningioma": 1.0,
    "f1_meningioma": 0.8,
    "precision_pituitary": 0.5,
    "recall_pituitary": 1.0,
    "recall_no_tumor": 0.0,
    "f1_no_tumor": 0.0,
    "support_no_tumor": 1,
    # no_tumor's single image scores 0.3, above every other image's 0.0-0.1: AUC and AP are 1.
    "roc_auc_no_tumor": 1.0,
    "pr_auc_no_tumor": 1.0,
}


def test_six_image_case_by_hand():
    m = classification_metrics(Y6, P6)
    for key, want in EXPECTED6.items():
        assert m[key] == pytest.approx(want, abs=1e-12), key
    assert m["precision_no_tumor"] is None  # never predicted: undefined, not 0
    assert m["n"] == 6


def test_hard_predictions_override_argmax():
    # Calling image 5 no_tumor (as a gate might) fixes it: 5 of 6 right.
    m = classification_metrics(Y6, P6, y_pred=np.array([0, 1, 1, 1, 2, 3]))
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["brier"] == pytest.approx(0.30)  # probability metrics do not change


def test_absent_class_gives_none_not_a_crash():
    y = np.array([0, 0, 1, 1, 3, 3])  # no pituitary
    probs = np.full((6, 4), 0.25)
    probs[[0, 2, 4], :] = [[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]]
    m = classification_metrics(y, probs)
    assert m["roc_auc_pituitary"] is None and m["pr_auc_pituitary"] is None
    assert m["recall_pituitary"] is None and m["support_pituitary"] == 0
    assert m["roc_auc_macro"] == pytest.approx(
        np.mean([m[f"roc_auc_{c}"] for c in ("glioma", "meningioma", "no_tumor")])
    )


@pytest.mark.parametrize("bad", [np.ones((6, 3)) / 3, np.ones((6, 4)), np.ones((5, 4)) / 4])
def test_bad_probabilities_fail_clearly(bad):
    with pytest.raises(ValueError, match="probs"):
        classification_metrics(Y6, bad)


def test_confusion_counts_and_rows():
    counts, rows = confusion(Y6, P6.argmax(1), 4)
    assert counts.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]]
    np.testing.assert_allclose(rows[0], [0.5, 0.5, 0, 0])
    counts, rows = confusion([0, 0], [0, 1], 4)
    assert rows[3].tolist() == [0, 0, 0, 0]  # a class with no images: a zero row, not NaN


def test_gate_metrics_at_tau():
    y = np.array([0, 1, 2, 3, 3, 3])
    p = np.array([0.9, 0.3, 0.6, 0.2, 0.7, 0.1])
    g = gate_metrics(y, p, tau=0.5)
    # Tumours called: 0.9 yes, 0.3 no, 0.6 yes → 2/3; healthy cleared: 0.2, 0.1 yes, 0.7 no → 2/3.
    assert (g["tp"], g["fn"], g["tn"], g["fp"]) == (2, 1, 2, 1)
    assert g["tumour_sensitivity"] == pytest.approx(2 / 3) and g["tumour_specificity"] == pytest.approx(2 / 3)
    # AUC: tumour-over-healthy pairs ordered right: 0.9 beats 3, 0.3 beats 2, 0.6 beats 2 → 7/9.
    assert g["gate_roc_auc"] == pytest.approx(7 / 9)
    assert gate_metrics(y, p, tau=0.6)["tp"] == 2  # p ≥ τ is tumour, as in hierarchy.cascade


def test_subtype_metrics_on_true_tumours_only():
    y = np.array([0, 1, 2, 3])
    q = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.6, 0.3], [0.9, 0.05, 0.05]])
    s = subtype_metrics(y, q)
    # The healthy image is ignored; 2 of 3 right. F1: glioma 1, meningioma 2/3, pituitary 0 → 5/9.
    assert s["n"] == 3
    assert s["accuracy"] == pytest.approx(2 / 3) and s["macro_f1"] == pytest.approx(5 / 9)


def test_error_propagation_kinds():
    y = np.array([0, 1, 2, 3, 3, 0, 1])
    pred = np.array([3, 1, 0, 0, 3, 0, 2])
    e = error_propagation(y, pred)
    assert e == {"n": 7, "errors": 4, "gate_misses": 1, "gate_false_alarms": 1, "subtype_confusions": 2}
    assert e["gate_misses"] + e["gate_false_alarms"] + e["subtype_confusions"] == e["errors"]
