"""Most confident errors: ranked by P(predicted class), ties by path, correct images never listed."""

import numpy as np

from neurocascade.eval.errors import most_confident_errors

Y = np.array([0, 1, 2, 3, 0, 1])
P = np.array(
    [
        [0.9, 0.1, 0.0, 0.0],  # right: never listed
        [0.7, 0.2, 0.1, 0.0],  # wrong, p = 0.7
        [0.0, 0.1, 0.1, 0.8],  # wrong, p = 0.8
        [0.6, 0.0, 0.0, 0.4],  # wrong, p = 0.6
        [0.1, 0.0, 0.2, 0.7],  # wrong, p = 0.7 (tie with image 1; its path sorts first)
        [0.0, 1.0, 0.0, 0.0],  # right
    ]
)
PATHS = ["f.jpg", "d.jpg", "c.jpg", "b.jpg", "a.jpg", "e.jpg"]


def test_order_and_fields():
    errs = most_confident_errors(Y, P, P.argmax(1), PATHS, k=10)
    assert [e["index"] for e in errs] == [2, 4, 1, 3]
    assert errs[0] == {
        "index": 2,
        "path": "c.jpg",
        "true": "pituitary",
        "predicted": "no_tumor",
        "probability": 0.8,
        "true_probability": 0.1,
    }


def test_k_limits_and_hard_predictions_count():
    assert [e["index"] for e in most_confident_errors(Y, P, P.argmax(1), PATHS, k=2)] == [2, 4]
    assert most_confident_errors(Y, P, P.argmax(1), PATHS, k=0) == []
    # With hard predictions (a cascade's), image 3 called no_tumor is right and drops out.
    pred = P.argmax(1)
    pred[3] = 3
    assert 3 not in [e["index"] for e in most_confident_errors(Y, P, pred, PATHS, k=10)]
