"""Contact sheet of the image pairs closest to the copy threshold, so the threshold can be checked by eye.

Each row shows a pair side by side (the second mirrored when the mirrored distance was the smaller one),
with its Hamming distance and whether the audit calls it a copy. Keep the sheet as evidence for the
threshold you chose (shared/notes/near-duplicates.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from neurocascade.data.audit import Pair
from neurocascade.data.images import BadImage, read_gray, to_model_input
from neurocascade.data.scan import FileScan
from neurocascade.io import atomic_write_bytes

TILE = 160


def closest_to_threshold(pairs: Sequence[Pair], threshold: int, n: int) -> list[Pair]:
    """The `n` pairs whose distance is nearest the threshold, copies and non-copies alike, by distance."""
    ranked = sorted(
        (p for p in pairs if p.kind != "exact"), key=lambda p: (abs(p.distance - threshold - 0.5), p.i, p.j)
    )
    return sorted(ranked[:n], key=lambda p: (p.distance, p.i, p.j))


def _tile(path: str, mirror: bool) -> np.ndarray:
    try:
        img = to_model_input(read_gray(path), TILE)[..., 0]
    except BadImage:
        return np.zeros((TILE, TILE), np.uint8)
    return img[:, ::-1] if mirror else img


def write_contact_sheet(
    out: str | Path,
    pairs: Sequence[Pair],
    scans: Sequence[FileScan],
    labels: Sequence[str],
    threshold: int,
    root: str | Path,
    n: int = 24,
) -> int:
    """Write a PNG of the `n` pairs nearest the threshold, two pairs a row; returns how many were drawn."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = closest_to_threshold(pairs, threshold, n)
    if not chosen:
        return 0
    cols = 2
    rows = (len(chosen) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols * 2, figsize=(cols * 2 * 1.9, rows * 2.1), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for n, p in enumerate(chosen):
        r, c = divmod(n, cols)
        mirrored = p.kind == "mirror"
        verdict = "copy" if p.kind != "none" else "distinct"
        for side, (k, flip) in enumerate(((p.i, False), (p.j, mirrored))):
            ax = axes[r, c * 2 + side]
            ax.imshow(_tile(scans[k].path, flip), cmap="gray", vmin=0, vmax=255)
            name = Path(scans[k].path).relative_to(root).as_posix()
            ax.set_title(f"{labels[k]}\n{name[-28:]}", fontsize=6)
        axes[r, c * 2].text(
            0,
            TILE + 14,
            f"d={p.distance} bits: {verdict}" + (" (mirrored)" if mirrored else ""),
            fontsize=7,
            color="red" if p.kind != "none" else "black",
            va="top",
        )
    fig.suptitle(f"Pairs nearest the copy threshold ({threshold} bits); copies in red", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    return len(chosen)
