"""Figures for the report, as PNG files: confusion matrices side by side and a contact sheet of errors.

matplotlib runs headless (Agg); nothing is shown. Heat maps (Grad-CAM or any other) are computed elsewhere
and passed in as float arrays in 0..1.

    confusion_figure({"cascade": counts_c, "flat": counts_f}, CLASSES, "confusion.png")
    error_sheet([{"image": img, "true": "glioma", "predicted": "no_tumor", "probability": 0.93,
                  "path": "Testing/glioma/g1.jpg", "heatmap": cam}], "errors.png")
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.15)
    _pyplot().close(fig)
    return path


def confusion_figure(matrices: Mapping[str, np.ndarray], classes: Sequence[str], path: str | Path) -> Path:
    """One row-normalised heat map per model (colour = recall share), each cell annotated with count and %."""
    plt = _pyplot()
    n_models, n = len(matrices), len(classes)
    fig, axes = plt.subplots(1, n_models, figsize=(1.6 + 3.4 * n_models, 4.0), squeeze=False, layout="constrained")
    image = None
    for panel, (ax, (name, counts)) in enumerate(zip(axes[0], matrices.items())):
        counts = np.asarray(counts, dtype=np.int64)
        rows = counts.sum(1, keepdims=True)
        share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
        image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    f"{counts[i, j]}\n{share[i, j]:.0%}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if share[i, j] > 0.6 else "black",
                )
        ax.set_xticks(range(n), classes, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(n), classes, fontsize=8)
        ax.tick_params(axis="y", labelleft=panel == 0)  # class names once, at the left: panels share rows
        ax.set(xlabel="predicted", ylabel="true" if panel == 0 else "", title=f"{name} (n = {int(counts.sum())})")
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="share of the true class")
    return _save(fig, path)


def _tile_title(item: Mapping) -> str:
    name = Path(str(item.get("path", ""))).name
    if len(name) > 28:
        name = "…" + name[-27:]
    return f"{name}\ntrue {item['true']} → pred {item['predicted']} (p = {float(item['probability']):.2f})"


def error_sheet(items: Sequence[Mapping], path: str | Path, columns: int = 4) -> Path:
    """Contact sheet of misclassified images: file name, true → predicted (probability), optional heat map.

    Each item: "image" (uint8 HxW or HxWx3), "true", "predicted", "probability", "path", and optionally
    "heatmap" (float HxW in 0..1, any resolution; it is stretched over the image, jet at alpha 0.4).
    """
    plt = _pyplot()
    columns = max(1, min(columns, len(items)))
    rows = max(1, -(-len(items) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if not items:
        axes[0, 0].text(0.5, 0.5, "no errors", ha="center", va="center", fontsize=12)
    for ax, item in zip(axes.flat, items):
        image = np.asarray(item["image"])
        h, w = image.shape[:2]
        gray = {"cmap": "gray", "vmin": 0, "vmax": 255} if image.ndim == 2 else {}
        ax.imshow(image, interpolation="nearest", **gray)
        heat = item.get("heatmap")
        if heat is not None:
            ax.imshow(
                np.clip(np.asarray(heat, dtype=np.float64), 0, 1),
                cmap="jet",
                alpha=0.4,
                vmin=0,
                vmax=1,
                extent=(-0.5, w - 0.5, h - 0.5, -0.5),
                interpolation="bilinear",
            )
        ax.set_title(_tile_title(item), fontsize=7)
    fig.tight_layout()
    return _save(fig, path)
