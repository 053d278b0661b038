"""The LiteRT runtime: cascade skipping (golden, τ forced through the sidecars), flat model, predict on files,
one-line errors, and no TensorFlow in the import graph."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neurocascade.data.layout import CLASSES
from neurocascade.data.phantoms import make_phantom
from neurocascade.edge.predict import predict_paths
from neurocascade.edge.runtime import Cascade, FlatModel, load_model
from neurocascade.errors import UserError

REPO = Path(__file__).resolve().parents[2]
NO = CLASSES.index("no_tumor")


def fixed_images(n: int = 6) -> np.ndarray:
    """Phantoms of every class at the runs' 32 px input, the same every time."""
    from neurocascade.edge.preprocess import to_model_input

    return np.stack(
        [to_model_input(make_phantom(CLASSES[k % 4], np.random.default_rng(100 + k), 64), 32) for k in range(n)]
    )


def export_with_tau(exported, tmp_path, tau: float, reseal) -> Path:
    """A copy of the cascade export whose sidecars say `tau`, resealed (conftest.py `reseal`)."""
    out = tmp_path / f"export-tau{tau}"
    shutil.copytree(exported["cascade"][0] / "export", out)
    for stage in ("gate", "subtype"):
        path = out / f"{stage}.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "tau": tau}))
    reseal(out)
    return out


def test_cascade_skips_the_subtype_model_when_the_gate_says_no_tumour(exported, tmp_path, reseal):
    images = fixed_images()
    p = load_model(exported["cascade"][0] / "export" / "gate.int8.tflite").predict_proba(images)[:, 0]
    probs, labels, stages = Cascade.load(export_with_tau(exported, tmp_path, 1.0, reseal)).predict(images)
    assert stages == [("gate",)] * len(images)
    np.testing.assert_array_equal(labels, NO)
    assert np.isnan(probs[:, :NO]).all()  # no subtype distribution: unknown, not a made-up uniform split
    np.testing.assert_allclose(probs[:, NO], 1.0 - p)


def test_cascade_runs_the_subtype_model_for_every_image_at_tau_zero(exported, tmp_path, reseal):
    images = fixed_images()
    export = export_with_tau(exported, tmp_path, 0.0, reseal)
    p = load_model(export / "gate.int8.tflite").predict_proba(images)[:, 0]
    q = load_model(export / "subtype.int8.tflite").predict_proba(images)
    probs, labels, stages = Cascade.load(export).predict(images)
    assert stages == [("gate", "subtype")] * len(images)
    np.testing.assert_allclose(probs, np.column_stack([p[:, None] * q, 1.0 - p]), rtol=1e-6)
    np.testing.assert_array_equal(labels, np.argmax(q, axis=1))  # subtype order = CLASSES[:3]
    # subtype_for_all gives the soft output even where the gate says no tumour; hard labels still use τ.
    full = Cascade.load(export_with_tau(exported, tmp_path, 1.0, reseal)).predict(images, subtype_for_all=True)
    np.testing.assert_allclose(full.probs, probs, rtol=1e-6)
    np.testing.assert_array_equal(full.labels, NO)


def test_flat_model_predicts_four_classes(exported):
    images = fixed_images()
    model = FlatModel.load(exported["flat"][0] / "export", variant="float32", num_threads=2)
    probs, labels, stages = model.predict(images)
    assert probs.shape == (len(images), 4) and model.classes == CLASSES
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(labels, np.argmax(probs, axis=1))
    assert stages == [("flat",)] * len(images)


def test_predict_paths_on_files_and_directories(exported, tmp_path, reseal):
    folder = tmp_path / "scans"
    folder.mkdir()
    for k in range(3):
        Image.fromarray(make_phantom(CLASSES[k], np.random.default_rng(k), 64)).save(folder / f"s{k}.png")
    Image.fromarray(make_phantom("no_tumor", np.random.default_rng(9), 80)).convert("RGB").save(tmp_path / "one.jpg")
    rows = predict_paths(export_with_tau(exported, tmp_path, 1.0, reseal), [str(tmp_path / "one.jpg"), str(folder)])
    assert [Path(r["path"]).name for r in rows] == ["one.jpg", "s0.png", "s1.png", "s2.png"]
    for row in rows:
        assert row["label"] == "no_tumor" and row["stages"] == ["gate"]
        assert list(row["probabilities"]) == list(CLASSES)
        assert [row["probabilities"][c] for c in CLASSES[:3]] == [None] * 3
        assert 0 <= row["probabilities"]["no_tumor"] <= 1
    json.dumps(rows)  # plain JSON: no NaN
    flat = predict_paths(exported["flat"][0] / "export", [str(folder)])
    assert all(r["stages"] == ["flat"] and None not in r["probabilities"].values() for r in flat)
    with pytest.raises(UserError, match="missing.png: file not found"):
        predict_paths(exported["flat"][0] / "export", [str(tmp_path / "missing.png")])


def _one_line_error(call, match: str) -> None:
    with pytest.raises(UserError, match=match) as err:
        call()
    assert "\n" not in str(err.value)


def test_missing_or_corrupt_models_are_one_line_user_errors(exported, tmp_path, reseal):
    """Each check in turn: the export is resealed after each edit (conftest.py `reseal`), as a forger would, so the
    checks behind the manifest's are reached too (the manifest's own are in test_export_trust.py)."""
    export = tmp_path / "export"
    shutil.copytree(exported["flat"][0] / "export", export)
    original = (exported["flat"][0] / "export" / "flat.int8.tflite").read_bytes()
    _one_line_error(lambda: load_model(export / "gate.int8.tflite"), "model file not found")
    _one_line_error(lambda: Cascade.load(export), "model file not found")
    _one_line_error(lambda: predict_paths(tmp_path / "nowhere", ["x.png"]), "export directory not found")

    (export / "flat.int8.tflite").write_bytes(b"this is not a flatbuffer" * 10)
    _one_line_error(lambda: load_model(export / "flat.int8.tflite"), "sha256 differs from export-manifest.json")
    reseal(export)
    _one_line_error(lambda: load_model(export / "flat.int8.tflite"), "not a valid TFLite model")
    (export / "flat.int8.tflite").write_bytes(original[:500])
    reseal(export)
    _one_line_error(lambda: load_model(export / "flat.int8.tflite"), "not a valid TFLite model")

    # A model with other outputs than its sidecar's labels (the labels themselves must be the stage's classes).
    shutil.copy(exported["cascade"][0] / "export" / "subtype.float32.tflite", export / "flat.float32.tflite")
    reseal(export)
    _one_line_error(lambda: load_model(export / "flat.float32.tflite"), "sidecar says output shape")
    shutil.copy(exported["flat"][0] / "export" / "flat.float32.tflite", export)
    sidecar = json.loads((export / "flat.json").read_text())
    (export / "flat.json").write_text(json.dumps({**sidecar, "input": {**sidecar["input"], "size": 64}}))
    reseal(export)
    _one_line_error(lambda: load_model(export / "flat.float32.tflite"), "sidecar says input shape")
    (export / "flat.json").write_text("{ not json")
    reseal(export)
    _one_line_error(lambda: load_model(export / "flat.float32.tflite"), "not a readable sidecar")
    (export / "export-manifest.json").unlink()  # a single model without a manifest: load_model still needs a sidecar
    (export / "flat.json").unlink()
    _one_line_error(lambda: load_model(export / "flat.float32.tflite"), "sidecar not found")


def test_runtime_imports_without_tensorflow():
    code = (
        "import neurocascade.edge.runtime, neurocascade.edge.predict, sys; assert not any(m == 'tensorflow' or m.startswith('tensorflow.') "
        "or m.startswith('tf_keras') for m in sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
