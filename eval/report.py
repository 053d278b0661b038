"""The evaluation report: one JSON-ready dict for every model, then Markdown and a terminal table from it.

`build_report` computes; `report_markdown` and `side_by_side_table` only format the dict they are given, so
the JSON, the Markdown and the terminal agree. Floats are rounded to 4 decimals (stable across BLAS builds,
so the goldens in tests/eval/golden can be compared exactly); decisions such as "the interval excludes 0"
are taken before rounding and stored as booleans.

    report = build_report({"cascade": {"y_true": y, "p_tumour": p, "q_subtype": q, "tau": tau, "paths": paths},
                           "flat": {"y_true": y, "probs": probs_flat, "paths": paths}}, cfg.eval, meta)
    figures = report_figures(report, out_dir)
    save_report(report, report_markdown(report, figures), out_dir)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from neurocascade.data.layout import CLASSES
from neurocascade.eval.calibration import expected_calibration_error, reliability_diagram
from neurocascade.eval.errors import most_confident_errors
from neurocascade.eval.figures import confusion_figure
from neurocascade.eval.metrics import (
    check_inputs,
    classification_metrics,
    confusion,
    error_propagation,
    gate_metrics,
    subtype_metrics,
)
from neurocascade.eval.report_text import render_text, report_markdown, side_by_side_table  # noqa: F401  (public API)
from neurocascade.eval.scores import METRICS, NO_TUMOUR, headline_metrics
from neurocascade.eval.uncertainty import bootstrap_ci, mcnemar, paired_bootstrap_diff

# numpy only: the cascade's one definition
from neurocascade.hierarchy.cascade import hard_predictions, soft_probabilities, tumour_called
from neurocascade.config import EvalConfig

__all__ = [
    "SCHEMA_VERSION",
    "build_report",
    "prepare_model",
    "render_text",
    "report_figures",
    "report_markdown",
    "rounded",
    "save_report",
    "side_by_side_table",
]

SCHEMA_VERSION = 1
ALPHA = 0.05
DIGITS = 4
MODEL_KEYS = ("y_true", "probs", "y_pred", "p_tumour", "q_subtype", "tau", "paths")
REQUIRED_META = ("protocol", "protocol_name", "split")
COMPARED = ("cascade", "flat")  # a − b, when both are present


def rounded(obj: Any, digits: int = DIGITS) -> Any:
    """JSON-ready copy: floats rounded (NaN → None, −0.0 → 0.0), numpy scalars and arrays as Python values."""
    if isinstance(obj, Mapping):
        return {str(k): rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [rounded(v, digits) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return None if math.isnan(x) else round(x, digits) + 0.0
    return obj


def prepare_model(name: str, spec: Mapping[str, Any], n_classes: int) -> dict[str, Any]:
    """Fill in a model's probabilities and hard predictions (the cascade's from p, q and τ) and check them:
    the one place they are derived, for the report and the predictions CSV alike."""
    unknown = set(spec) - set(MODEL_KEYS)
    if unknown:
        raise ValueError(f"model {name!r}: unknown keys {sorted(unknown)}; allowed: {', '.join(MODEL_KEYS)}")
    m = dict(spec)
    has_cascade = m.get("p_tumour") is not None and m.get("q_subtype") is not None
    if m.get("probs") is None:
        if not has_cascade:
            raise ValueError(f"model {name!r}: give probs, or p_tumour and q_subtype")
        m["probs"] = soft_probabilities(m["p_tumour"], m["q_subtype"])
    if m.get("y_pred") is None:
        if has_cascade and m.get("tau") is not None:
            m["y_pred"] = hard_predictions(m["p_tumour"], m["q_subtype"], m["tau"])
        else:
            m["y_pred"] = np.asarray(m["probs"]).argmax(1)
    m["y_true"], m["probs"], m["y_pred"] = check_inputs(m.get("y_true"), m["probs"], m["y_pred"], n_classes)
    if m.get("p_tumour") is not None and m.get("tau") is not None:
        gate_says = tumour_called(m["p_tumour"], m["tau"])
        disagree = int(np.sum(gate_says != (m["y_pred"] != NO_TUMOUR)))
        if disagree:
            raise ValueError(f"model {name!r}: y_pred disagrees with p_tumour >= tau on {disagree} images")
    paths = m.get("paths")
    m["paths"] = [f"#{i}" for i in range(len(m["y_true"]))] if paths is None else [str(p) for p in paths]
    return m


def _model_section(m: Mapping[str, Any], cfg: EvalConfig, classes: Sequence[str]) -> dict:
    y, probs, pred = m["y_true"], m["probs"], m["y_pred"]
    counts, normalised = confusion(y, pred, len(classes))
    section = {
        "n": int(len(y)),
        "metrics": classification_metrics(y, probs, pred, classes),
        "ci": bootstrap_ci(
            y, probs, pred, headline_metrics(classes, cfg.ece_bins), cfg.bootstrap, cfg.seed, alpha=ALPHA
        ),
        "calibration": expected_calibration_error(y, probs, cfg.ece_bins),
        "confusion": {"counts": counts, "normalised": normalised},
        "error_propagation": error_propagation(y, pred),
        "most_confident_errors": most_confident_errors(y, probs, pred, m["paths"], cfg.top_errors, classes),
    }
    if m.get("p_tumour") is not None and m.get("tau") is not None:
        gate_pred = np.where(np.asarray(m["p_tumour"]) >= m["tau"], 0, NO_TUMOUR)
        fns = {k: METRICS[k] for k in ("tumour_sensitivity", "tumour_specificity")}
        section["gate"] = {
            **gate_metrics(y, m["p_tumour"], m["tau"]),
            "ci": bootstrap_ci(y, None, gate_pred, fns, cfg.bootstrap, cfg.seed, alpha=ALPHA),
        }
    if m.get("q_subtype") is not None:
        tumour = y != NO_TUMOUR
        sub = {**subtype_metrics(y, m["q_subtype"]), "ci": None}
        if tumour.any():
            fns = {k: METRICS[k] for k in ("accuracy", "macro_f1")}
            sub_pred = np.asarray(m["q_subtype"])[tumour].argmax(1)
            sub["ci"] = bootstrap_ci(y[tumour], None, sub_pred, fns, cfg.bootstrap, cfg.seed, alpha=ALPHA)
        section["subtype"] = sub
    return section


def _comparison(a: Mapping[str, Any], b: Mapping[str, Any], cfg: EvalConfig) -> dict:
    if not np.array_equal(a["y_true"], b["y_true"]):
        raise ValueError(f"{COMPARED[0]} and {COMPARED[1]} must be scored on the same images in the same order")
    diff = paired_bootstrap_diff(
        a["y_true"], a["y_pred"], b["y_pred"], METRICS["macro_f1"], cfg.bootstrap, cfg.seed, alpha=ALPHA
    )
    return {
        "a": COMPARED[0],
        "b": COMPARED[1],
        "metric": "macro_f1",
        "difference": diff,
        "mcnemar": mcnemar(a["y_true"], a["y_pred"], b["y_pred"]),
    }


def build_report(
    models: Mapping[str, Mapping[str, Any]],
    cfg: EvalConfig,
    meta: Mapping[str, Any],
    classes: Sequence[str] = CLASSES,
    audit: Mapping[str, Any] | None = None,
) -> dict:
    """Every metric with its 95% CI, calibration, confusions, error sources and worst errors, per model.

    Each model gives "y_true" and "probs" (or the cascade's "p_tumour", "q_subtype"), optionally "y_pred"
    (default: from τ for the cascade, else the arg-max), "tau" and "paths". With both "cascade" and "flat",
    also the paired bootstrap CI of cascade − flat macro-F1 and McNemar's test, under "comparison".
    `audit`: the data audit's digest (`neurocascade.data.audit.audit_digest`), kept under "audit" when given.
    """
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"meta needs {', '.join(missing)}: every reported number names its protocol and split")
    if not models:
        raise ValueError("no models to report")
    prepared = {name: prepare_model(name, spec, len(classes)) for name, spec in models.items()}
    report = {
        "schema_version": SCHEMA_VERSION,
        "meta": dict(meta),
        "classes": list(classes),
        "bootstrap": {
            "n_resamples": cfg.bootstrap,
            "seed": cfg.seed,
            "stratified": True,
            "alpha": ALPHA,
            "interval": "percentile",
        },
        "ece_bins": cfg.ece_bins,
        "models": {name: _model_section(m, cfg, classes) for name, m in prepared.items()},
        "comparison": (
            _comparison(prepared[COMPARED[0]], prepared[COMPARED[1]], cfg)
            if all(k in prepared for k in COMPARED)
            else None
        ),
    }
    if audit is not None:
        report["audit"] = dict(audit)
    return rounded(report)


def report_figures(report: Mapping, out_dir: str | Path) -> dict[str, str]:
    """Write confusion.png and reliability.png into out_dir; {caption: file name} for `report_markdown`."""
    out_dir = Path(out_dir)
    models = report["models"]
    confusion_figure(
        {n: np.asarray(m["confusion"]["counts"]) for n, m in models.items()},
        report["classes"],
        out_dir / "confusion.png",
    )
    reliability_diagram({n: m["calibration"] for n, m in models.items()}, out_dir / "reliability.png")
    return {"confusion matrices (row-normalised)": "confusion.png", "reliability diagram": "reliability.png"}


def save_report(report: Mapping, markdown: str, out_dir: str | Path) -> dict[str, Path]:
    """Atomically write report.json and report.md into out_dir."""
    from neurocascade.eval.report_file import EvalReport
    from neurocascade.io import atomic_write_text

    out_dir = Path(out_dir)
    EvalReport.from_json(report, out_dir / "report.json").write(out_dir / "report.json")  # checked as written
    atomic_write_text(out_dir / "report.md", markdown)
    return {"json": out_dir / "report.json", "markdown": out_dir / "report.md"}
