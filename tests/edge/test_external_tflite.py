"""`eval --external --backend tflite-int8`: the exported models score the external images (the same answers as
`predict` gives on those files), after the same copy audit as under Keras."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from neurocascade.data.dataset import load_dataset
from neurocascade.edge.predict import predict_paths
from neurocascade.eval.external import evaluate_external
from neurocascade.config import load_config


def test_external_eval_with_the_int8_export_matches_predict(exported, phantom_root, tmp_path):
    cascade, flat = exported["cascade"][0], exported["flat"][0]
    external = tmp_path / "site"
    shutil.copytree(phantom_root / "Testing", external)
    ds = load_dataset(load_config(cascade / "config.toml"), str(phantom_root), pixels=False)
    source = Path(ds.samples[ds.indices("train")[0]].path)
    shutil.copy(source, external / source.parent.name / "copied.png")

    report, out = evaluate_external(cascade, external, flat=flat, backend="tflite-int8")
    assert out.name == "external-site-tflite-int8" and report["meta"]["backend"] == "tflite-int8"
    with (out / "predictions.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    copied = next(r for r in rows if r["path"].endswith("/copied.png"))
    assert copied["copy_in_training"] == "exact"
    assert report["no_copy"]["models"]["flat"]["n"] == sum(r["copy_in_training"] == "none" for r in rows)

    files = [str(external / r["path"]) for r in rows]
    by_cascade = predict_paths(cascade / "export", files, "int8")
    by_flat = predict_paths(flat / "export", files, "int8")
    assert [r["cascade_label"] for r in rows] == [p["label"] for p in by_cascade]
    for row, predicted in zip(rows, by_flat):
        for cls, value in predicted["probabilities"].items():
            assert abs(float(row[f"flat_p_{cls}"]) - value) < 2e-3, (row["path"], cls)
