"""`predict`: classify image files with an exported cascade or flat model (LiteRT only, no TensorFlow).

    rows = predict_paths("runs/NAME/export", ["scan.jpg", "more_scans/"])
    rows[0]  # {"path": "scan.jpg", "label": "meningioma", "probabilities": {"glioma": 0.01, ..., "no_tumor": 0.02},
             #  "stages": ["gate", "subtype"], "gate": {"p_tumour": 0.98, "tau": 0.84}, "variant": "int8"}
             #  ("gate": None for flat; "variant": which file ran, int8 or float32)

A cascade's label is decided in two steps, not by the largest of the four probabilities: the gate calls a tumour
when P(tumour) >= τ (τ chosen on validation for a target sensitivity, so it can be far from 0.5), then the subtype
with the largest probability is the label. So P(no_tumor) = 1 − P(tumour) can be the largest number printed while
the label is a subtype (P(tumour) = 0.45 ≥ τ = 0.3 splits 0.45 over three subtypes); the table shows P(tumour)
beside τ so the decision can be read off.

Each image is decoded and preprocessed as in training (`neurocascade.edge.preprocess`, settings from the sidecar). For a cascade,
an image the gate calls "no tumour" skips the subtype model: its three tumour probabilities are None (unknown;
together they are 1 − P(no_tumor)) and its stages are ["gate"]. A directory argument contributes its .jpg/.jpeg/.png,
.dcm and extension-less DICOM files (recursively, sorted); a multi-frame DICOM contributes one row per frame, its
path `file.dcm#n` (n from 1). A missing or unreadable image is a one-line UserError naming it.

An export with the cascade as one graph (`export.one_graph`) is run through it: one backbone pass per image, every
image's four probabilities known, its stages ["one_graph"]; the label follows the same two steps.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from neurocascade.data.layout import image_names, is_image_file
from neurocascade.edge.preprocess import IMAGE_SUFFIXES, load_image
from neurocascade.edge.runtime import GATE_LABELS, Cascade, FlatModel, OneGraphCascade
from neurocascade.hierarchy.stages import ONE_GRAPH
from neurocascade.errors import UserError

CHUNK = 64  # images decoded and run per step


Predictor = Cascade | OneGraphCascade | FlatModel


def load_predictor(models_dir: str | Path, variant: str = "int8", num_threads: int | None = None) -> Predictor:
    """The cascade (gate.json and subtype.json present; as one graph when the export has one_graph.json: one
    backbone pass, the same decision rule) or the flat model (flat.json) in an export directory."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise UserError(f"{models_dir}: export directory not found (run the export first)")
    has = {stage for stage in ("gate", "subtype", ONE_GRAPH, "flat") if (models_dir / f"{stage}.json").is_file()}
    if ONE_GRAPH in has:
        return OneGraphCascade.load(models_dir, variant, num_threads)
    if {"gate", "subtype"} <= has:
        return Cascade.load(models_dir, variant, num_threads)
    if "flat" in has:
        return FlatModel.load(models_dir, variant, num_threads)
    raise UserError(f"{models_dir}: no exported models (expected gate.json + subtype.json, or flat.json)")


def expand_paths(paths: list[str]) -> list[Path]:
    """Files as given, directories replaced by their image files, multi-frame DICOMs by their frames
    (`file.dcm#n`); an empty directory is a UserError."""
    out: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if is_image_file(p))
            if not found:
                raise UserError(f"{path}: no {'/'.join(IMAGE_SUFFIXES)} images in this directory")
        else:
            found = [path]
        out += [Path(name) for p in found for name in (image_names(p) if p.is_file() else [str(p)])]
    if not out:
        raise UserError("no images given")
    return out


def _number(x: float) -> float | None:
    return None if math.isnan(x) else round(float(x), 6)


def predict_paths(
    models_dir: str | Path, paths: list[str], variant: str = "int8", num_threads: int | None = None
) -> list[dict]:
    """One dict per image (see module doc), in the order given (directories expanded in sorted order)."""
    return predict_rows(load_predictor(models_dir, variant, num_threads), variant, paths)


def predict_rows(predictor: Predictor, variant: str, paths: list[str]) -> list[dict]:
    """`predict_paths` with a loaded predictor (`variant`: the file it runs, recorded in every row)."""
    inp = predictor.sidecar.input
    files = expand_paths(paths)
    rows = []
    for start in range(0, len(files), CHUNK):  # bounded memory for large folders
        chunk = files[start : start + CHUNK]
        images = np.stack(
            [
                load_image(
                    p,
                    predictor.size,
                    bool(inp.get("clahe", False)),
                    float(inp.get("clahe_clip", 2.0)),
                    int(inp.get("min_side", 1)),
                )
                for p in chunk
            ]
        )
        probs, labels, stages = predictor.predict(images)
        rows += [
            {
                "path": str(path),
                "label": predictor.classes[int(label)],
                "probabilities": {c: _number(v) for c, v in zip(predictor.classes, row)},
                "stages": list(st),
                "gate": _gate(predictor, row),
                "variant": variant,
            }
            for path, row, label, st in zip(chunk, probs, labels, stages)
        ]
    return rows


def _gate(predictor: Predictor, probs: np.ndarray) -> dict | None:
    """The gate's score and threshold for one image of a cascade (P(tumour) = 1 − P(no_tumor)); None for flat."""
    if isinstance(predictor, FlatModel):
        return None
    p_no = float(probs[predictor.classes.index(GATE_LABELS[1])])
    return {"p_tumour": _number(1.0 - p_no), "tau": _number(predictor.tau)}


def gate_text(gate: dict | None) -> str:
    """`0.912 ≥ τ 0.842 → subtype` / `0.310 < τ 0.842 → no_tumor`: the cascade's first decision, readable."""
    if gate is None:
        return "-"
    p, tau = gate["p_tumour"], gate["tau"]
    return f"{p:.3f} ≥ τ {tau:.3f} → subtype" if p >= tau else f"{p:.3f} < τ {tau:.3f} → {GATE_LABELS[1]}"


def predict_table(rows: list[dict]):
    """Per image: the label, the gate's P(tumour) against τ (cascade), the four probabilities ("-" where the
    stage did not run) and the stages run; the caption says how a cascade's label follows from them."""
    from rich.table import Table

    cascade = any(row.get("gate") for row in rows)
    caption = (
        (
            "cascade: the label is no_tumor when the gate's P(tumour) < τ, else the subtype with the largest "
            "probability; it need not be the largest of the four numbers"
        )
        if cascade
        else None
    )
    table = Table(title="Predictions (research use only, not a diagnosis)", caption=caption)
    table.add_column("image")
    table.add_column("label")
    if cascade:
        table.add_column("gate P(tumour) vs τ")
    classes = list(rows[0]["probabilities"]) if rows else []
    for c in classes:
        table.add_column(f"P({c})", justify="right")
    table.add_column("stages run")
    for row in rows:
        probs = [("-" if row["probabilities"][c] is None else f"{row['probabilities'][c]:.3f}") for c in classes]
        gate = [gate_text(row.get("gate"))] if cascade else []
        table.add_row(Path(row["path"]).name, row["label"], *gate, *probs, " → ".join(row["stages"]))
    return table
