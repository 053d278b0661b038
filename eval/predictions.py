"""Every evaluated image's predictions as one flat CSV beside the report: what a reader re-analyses, filters
or joins with their own records without re-running the models.

One row per image in the report's order; the columns (for each scored model, cascade first as in the report):

    path, true_label,
    <model>_label, <model>_p_glioma, <model>_p_meningioma, <model>_p_pituitary, <model>_p_no_tumor,
    cascade_gate_p_tumour, cascade_tau          (a cascade only: the gate's score and the threshold it met)

A LiteRT evaluation of a cascade whose export has the cascade as one graph (`export.one_graph`) adds its columns
(`one_graph_label`, …, `one_graph_gate_p_tumour`, `one_graph_tau`) after the models the report scores.

`eval --external` adds, after `true_label`, each image's copy audit against the model's training images
(`neurocascade.eval.external`): `copy_in_training` (exact, near, mirror or none), `training_copy`, `copy_distance_bits`.

`<model>_label` is the model's decision as the report scores it (the cascade's from τ, so it can differ from
the largest probability); probabilities are the four-class ones the metrics use. Floats carry 6 decimals;
labels are decided on the unrounded values, so a gate score within 1e-6 of τ may print equal to it.

    path = write_predictions(models, out_dir)    # models: what `neurocascade.eval.report.build_report` is given
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Mapping, Sequence

from neurocascade.data.layout import CLASSES
from neurocascade.eval.report import prepare_model
from neurocascade.io import atomic_write_text

PREDICTIONS_FILE = "predictions.csv"
DIGITS = 6


def _number(x: float) -> str:
    return f"{float(x):.{DIGITS}f}"


def prediction_table(
    models: Mapping[str, Mapping[str, Any]],
    classes: Sequence[str] = CLASSES,
    extra: Mapping[str, Sequence[str]] | None = None,
) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the predictions CSV for `models` scored on the same images (module doc); `extra`:
    more columns, {name: one value per image}, placed after `true_label`."""
    if not models:
        raise ValueError("no models to write predictions for")
    prepared = {name: prepare_model(name, spec, len(classes)) for name, spec in models.items()}
    first = next(iter(prepared.values()))
    for name, m in prepared.items():
        if list(m["y_true"]) != list(first["y_true"]) or m["paths"] != first["paths"]:
            raise ValueError(f"model {name!r} was not scored on the same images as the others")
    extra = dict(extra or {})
    for name, values in extra.items():
        if len(values) != len(first["paths"]):
            raise ValueError(f"column {name!r} has {len(values)} values for {len(first['paths'])} images")
    header = ["path", "true_label", *extra]
    for name, m in prepared.items():
        header += [f"{name}_label"] + [f"{name}_p_{c}" for c in classes]
        if m.get("p_tumour") is not None:
            header += [f"{name}_gate_p_tumour", f"{name}_tau"]
    rows = []
    for i, path in enumerate(first["paths"]):
        row = [path, classes[int(first["y_true"][i])], *(str(values[i]) for values in extra.values())]
        for m in prepared.values():
            row += [classes[int(m["y_pred"][i])]] + [_number(p) for p in m["probs"][i]]
            if m.get("p_tumour") is not None:
                row += [_number(m["p_tumour"][i]), "" if m.get("tau") is None else _number(m["tau"])]
        rows.append(row)
    return header, rows


def write_predictions(
    models: Mapping[str, Mapping[str, Any]],
    out_dir: str | Path,
    classes: Sequence[str] = CLASSES,
    extra: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Atomically write `out_dir/predictions.csv` (`extra`: see `prediction_table`); returns its path."""
    header, rows = prediction_table(models, classes, extra)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path = Path(out_dir) / PREDICTIONS_FILE
    atomic_write_text(path, buf.getvalue())
    return path
