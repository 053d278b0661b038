"""Calibration of the soft probabilities: top-label ECE and the reliability diagram.

Top-label: each image contributes its highest probability (confidence) and whether that arg-max class is
right, so the cascade's soft P(k) = p · q_k is judged like any flat softmax, whatever τ decided.
Bins are equal-width and right-closed: (0, 0.1], (0.1, 0.2], ... (ECE is sensitive to the binning, so the
bin count is in the report next to the value).

    cal = expected_calibration_error(y_true, probs, n_bins=10)
    reliability_diagram({"cascade": cal_c, "flat": cal_f}, "reliability.png")
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from neurocascade.eval.scores import ece_from_bins, top_label_bins


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int) -> dict:
    """{"ece", "n_bins", "bins": [{"lower", "upper", "confidence", "accuracy", "count"}]}; empty bins give None."""
    y_true, probs = np.asarray(y_true, np.int64), np.asarray(probs, np.float64)
    bins, conf, top = top_label_bins(probs, n_bins)
    correct = (top == y_true).astype(np.float64)
    counts = np.bincount(bins, minlength=n_bins)
    conf_sum = np.bincount(bins, weights=conf, minlength=n_bins)
    right_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    rows = []
    for k in range(n_bins):
        n = int(counts[k])
        rows.append(
            {
                "lower": k / n_bins,
                "upper": (k + 1) / n_bins,
                "confidence": float(conf_sum[k] / n) if n else None,
                "accuracy": float(right_sum[k] / n) if n else None,
                "count": n,
            }
        )
    return {"ece": ece_from_bins(bins, conf, correct, n_bins), "n_bins": int(n_bins), "bins": rows}


def reliability_diagram(bins_by_model: Mapping[str, dict | list], path: str | Path) -> Path:
    """PNG: accuracy against confidence per bin, one line per model, bin counts underneath.

    Each value is an `expected_calibration_error` result (its ECE goes in the legend) or just its "bins" list.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_n) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
    n_models = max(len(bins_by_model), 1)
    for i, (name, cal) in enumerate(bins_by_model.items()):
        rows = cal["bins"] if isinstance(cal, dict) else cal
        label = f"{name} (ECE {cal['ece']:.3f})" if isinstance(cal, dict) and cal.get("ece") is not None else name
        filled = [r for r in rows if r["count"]]
        (line,) = ax.plot([r["confidence"] for r in filled], [r["accuracy"] for r in filled], marker="o", label=label)
        width = (rows[0]["upper"] - rows[0]["lower"]) / (n_models + 1)
        ax_n.bar(
            [r["lower"] + width * (i + 0.5) for r in rows],
            [r["count"] for r in rows],
            width=width,
            align="edge",
            color=line.get_color(),
            alpha=0.8,
        )
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy of the top label", title="Reliability (top-label)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    ax_n.set(xlabel="confidence (top-label probability)", ylabel="images")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
