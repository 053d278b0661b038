"""INT8 against Keras on the same images, from the predictions.csv of the two evaluations: agreement as a user
feels it (issue 15), on test as the export's `agreement.json` gives it on validation.

It reads files `eval` already writes (`neurocascade.eval.predictions`), so no model runs again. Per model:

- cascade: its four-class decision (`cascade_label`, decided at τ), the τ decision (P(tumour) ≥ τ, i.e. whether
  the image went on to the subtype model) and the largest four-class probability difference;
- gate: its top-1 (P(tumour) ≥ 0.5) and the largest P(tumour) difference;
- subtype: its top-1 over the three tumour classes on the images whose true class is a tumour, as its
  validation agreement counts them; the cascade's tumour columns are P(tumour)·P(subtype), so their argmax is
  the subtype model's (an image where either backend's P(tumour) rounds to 0 says nothing about it: skipped);
- flat: its four-class decision and the largest probability difference;
- one_graph (a LiteRT evaluation of a cascade exported with `export.one_graph` writes its columns too): the cascade
  as one graph against the Keras cascade, as the cascade is compared, and its own four-class macro-F1 on these
  images (the evaluation's report scores the two models only).

    result = prediction_agreement(keras_dir / "predictions.csv", int8_dir / "predictions.csv")
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from neurocascade.data.layout import CLASSES, TUMOUR_CLASSES
from neurocascade.eval.scores import macro_f1_score


def _read(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no predictions")
    return {key: np.array([r[key] for r in rows]) for key in rows[0]}


def _probs(table: dict[str, np.ndarray], model: str, classes: tuple[str, ...] = CLASSES) -> np.ndarray:
    return np.stack([table[f"{model}_p_{c}"].astype(float) for c in classes], axis=1)


def _called(table: dict[str, np.ndarray], model: str) -> np.ndarray:
    """Per image, whether the cascade `model`'s gate called tumour: P(tumour) ≥ its τ."""
    return table[f"{model}_gate_p_tumour"].astype(float) >= table[f"{model}_tau"].astype(float)


def _share(same: np.ndarray) -> dict[str, float | int]:
    return {"top1_agreement": round(float(same.mean()), 4) if same.size else None, "n": int(same.size)}


def _macro_f1(true_labels: np.ndarray, labels: np.ndarray) -> float | None:
    """Four-class macro-F1 of `labels` (class names), or None where an image's true class is not one of CLASSES."""
    index = {c: k for k, c in enumerate(CLASSES)}
    if not set(true_labels) <= set(index):
        return None
    return macro_f1_score(np.array([index[c] for c in true_labels]), np.array([index[c] for c in labels]), len(CLASSES))


def prediction_agreement(reference: Path, other: Path) -> dict[str, Any]:
    """Per-model agreement of `other` (e.g. LiteRT INT8) with `reference` (Keras) on the same images (module doc)."""
    ref, oth = _read(reference), _read(other)
    if len(ref["path"]) != len(oth["path"]) or (ref["path"] != oth["path"]).any():
        raise ValueError(f"{reference} and {other} do not list the same images in the same order")
    out: dict[str, Any] = {"images": int(len(ref["path"])), "models": {}}
    for model in ("cascade", "flat"):
        if f"{model}_label" not in ref or f"{model}_label" not in oth:
            continue
        out["models"][model] = {
            **_share(ref[f"{model}_label"] == oth[f"{model}_label"]),
            "max_abs_prob_diff": round(float(np.abs(_probs(ref, model) - _probs(oth, model)).max()), 4),
        }
    if "cascade_gate_p_tumour" in ref and "cascade_gate_p_tumour" in oth:
        p_ref, p_oth = ref["cascade_gate_p_tumour"].astype(float), oth["cascade_gate_p_tumour"].astype(float)
        passed_ref, passed_oth = _called(ref, "cascade"), _called(oth, "cascade")
        out["models"]["cascade"]["tau_decision_agreement"] = round(float((passed_ref == passed_oth).mean()), 4)
        out["models"]["gate"] = {
            **_share((p_ref >= 0.5) == (p_oth >= 0.5)),
            "max_abs_prob_diff": round(float(np.abs(p_ref - p_oth).max()), 4),
        }
        seen = np.isin(ref["true_label"], TUMOUR_CLASSES) & (p_ref > 0) & (p_oth > 0)
        sub_ref = _probs(ref, "cascade", TUMOUR_CLASSES)[seen].argmax(axis=1)
        sub_oth = _probs(oth, "cascade", TUMOUR_CLASSES)[seen].argmax(axis=1)
        out["models"]["subtype"] = _share(sub_ref == sub_oth)
    if "one_graph_label" in oth and "cascade_label" in ref:  # the cascade as one graph, against the Keras cascade
        out["models"]["one_graph"] = {
            **_share(ref["cascade_label"] == oth["one_graph_label"]),
            "max_abs_prob_diff": round(float(np.abs(_probs(ref, "cascade") - _probs(oth, "one_graph")).max()), 4),
            "tau_decision_agreement": round(float((_called(ref, "cascade") == _called(oth, "one_graph")).mean()), 4),
            "macro_f1": _macro_f1(oth["true_label"], oth["one_graph_label"]),
        }
    return out
