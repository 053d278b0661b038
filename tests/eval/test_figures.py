"""Every figure is written as a real PNG (signature and a plausible size)."""

from pathlib import Path

import numpy as np

from neurocascade.data.layout import CLASSES
from neurocascade.eval.calibration import expected_calibration_error, reliability_diagram
from neurocascade.eval.figures import confusion_figure, error_sheet
from synthetic import structured_image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > 1024, path


def _probs(seed: int, n: int = 80):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    z = rng.normal(size=(n, 4))
    z[np.arange(n), y] += 2
    return y, np.exp(z) / np.exp(z).sum(1, keepdims=True)


def test_confusion_figure(tmp_path):
    counts = {
        "cascade": np.array([[9, 1, 0, 0], [1, 8, 1, 0], [0, 0, 10, 0], [0, 1, 0, 9]]),
        "flat": np.array([[7, 2, 1, 0], [2, 6, 1, 1], [0, 1, 9, 0], [1, 1, 0, 8]]),
    }
    assert_png(confusion_figure(counts, CLASSES, tmp_path / "confusion.png"))


def test_reliability_diagram(tmp_path):
    cals = {name: expected_calibration_error(*_probs(seed), n_bins=10) for seed, name in enumerate(("a", "b"))}
    assert_png(reliability_diagram(cals, tmp_path / "reliability.png"))
    assert_png(reliability_diagram({"bins only": cals["a"]["bins"]}, tmp_path / "bins.png"))


def test_error_sheet_gray_rgb_heatmap_and_empty(tmp_path):
    gray = structured_image(1, 64)
    items = [
        {
            "image": gray,
            "true": "glioma",
            "predicted": "no_tumor",
            "probability": 0.91,
            "path": "Testing/g/1.jpg",
            "heatmap": np.outer(np.hanning(8), np.hanning(8)),
        },  # low-resolution map, stretched over the image
        {
            "image": np.stack([gray] * 3, -1),
            "true": "pituitary",
            "predicted": "meningioma",
            "probability": 0.7,
            "path": "Testing/p/2.jpg",
        },
    ]
    assert_png(error_sheet(items, tmp_path / "errors.png"))
    assert_png(error_sheet([], tmp_path / "none.png"))
