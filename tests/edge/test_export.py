"""`export_run` on the tiny trained runs (conftest.py): every file, the sidecar, INT8 vs Keras, the report table.

Tolerances, for these barely trained tiny models on fixed validation images:
- float32 TFLite vs Keras: 1e-5 absolute per probability (same float graph; measured ≤ 1e-7);
- INT8 TFLite vs Keras: 0.03 absolute per probability (the uint8 output alone has steps of 1/256 ≈ 0.004;
  measured ≈ 0.005 for QAT, ≈ 0.002 post-training). Top-1 agreement is not asserted: these models' outputs are
  nearly uniform, so a 0.004 step can flip an arg-max; `agreement.json` reports it and flags it.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from rich.console import Console

from neurocascade.data.dataset import load_dataset
from neurocascade.data.phantoms import write_phantom_dataset
from neurocascade.edge.export import agreement_table, export_run
from neurocascade.edge.runtime import load_model
from neurocascade.hierarchy.stages import STAGES
from neurocascade.config import load_config
from neurocascade.errors import UserError
from neurocascade.tf import keras

TINY_EXTRA = "EdgeTinyNet48"  # conftest.py registers it beside EdgeTinyNet while a run trains
FLOAT_ATOL = 1e-5
INT8_ATOL = 0.03


def _val_images(run, phantom_root):
    cfg = load_config(run / "config.toml")
    return load_dataset(cfg, str(phantom_root)).images("val")


def test_export_writes_every_file(exported):
    for kind, stages in (("cascade", ("gate", "subtype")), ("flat", ("flat",))):
        run, report = exported[kind]
        out = run / "export"
        names = {p.name for p in out.iterdir()}
        variants = ("json", "float32.tflite", "int8.tflite")
        assert names == {"agreement.json", "export-manifest.json", "MODEL_CARD.md"} | {
            f"{s}.{v}" for s in stages for v in variants
        }
        assert [p.name for p in run.iterdir() if p.name.startswith("export")] == ["export"]  # no temporary folder
        assert json.loads((out / "agreement.json").read_text())["models"].keys() == report["models"].keys()
        assert report["kind"] == kind and report["method"] == ("qat" if kind == "cascade" else "ptq")
        assert set(report["models"]) == set(stages) | ({"cascade"} if kind == "cascade" else set())
        for stage in stages:
            m = report["models"][stage]
            assert 0.0 <= m["int8_top1_agreement"] <= 1.0 and m["n_val"] > 0
            assert m["float_max_abs_prob_diff"] <= FLOAT_ATOL
            assert m["int8_bytes"] < m["float32_bytes"] < m["keras_bytes"]
            assert (stage in report["flagged"]) == (m["int8_top1_agreement"] < report["min_agreement"])
    qat = json.loads((exported["cascade"][0] / "export" / "gate.json").read_text())["qat"]
    assert qat["quantization"]["custom_by_class"] == {"BatchNormalization": 1, "Multiply": 1, "Rescaling": 1}
    assert qat["epochs"] == 1 and qat["warmup_batches"] == 4


def test_sidecar_round_trips(exported):
    run, _ = exported["cascade"]
    tau = json.loads((run / "tau.json").read_text())["tau"]
    for stage in ("gate", "subtype"):
        sidecar = json.loads((run / "export" / f"{stage}.json").read_text())
        assert sidecar["labels"] == list(STAGES[stage].classes) and sidecar["tau"] == tau
        keras_file = run / "models" / f"{stage}.keras"
        assert sidecar["source"]["sha256"] == hashlib.sha256(keras_file.read_bytes()).hexdigest()
        for variant in ("int8", "float32"):
            model = load_model(run / "export" / f"{stage}.{variant}.tflite")  # checks the sidecar against the file
            assert model.labels == tuple(sidecar["labels"]) and model.size == sidecar["input"]["size"] == 32
            assert model.sidecar.to_json() == sidecar
        int8 = sidecar["models"]["int8"]
        assert int8["input"] == {"dtype": "uint8", "quantization": {"scale": 1.0, "zero_point": 0}}
        assert int8["output"] == {"dtype": "uint8", "quantization": {"scale": 1 / 256, "zero_point": 0}}
        assert sidecar["models"]["float32"]["input"] == {"dtype": "float32", "quantization": None}


@pytest.mark.parametrize("kind,stage", [("cascade", "gate"), ("cascade", "subtype"), ("flat", "flat")])
def test_tflite_outputs_agree_with_keras_on_fixed_images(exported, phantom_root, kind, stage):
    run, _ = exported[kind]
    images = _val_images(run, phantom_root)[:6]
    reference = keras.models.load_model(str(run / "models" / f"{stage}.keras"), compile=False)
    expected = reference(images.astype(np.float32), training=False).numpy()
    got_float = load_model(run / "export" / f"{stage}.float32.tflite").predict_proba(images)
    got_int8 = load_model(run / "export" / f"{stage}.int8.tflite", num_threads=1).predict_proba(images)
    np.testing.assert_allclose(got_float, expected, atol=FLOAT_ATOL)
    np.testing.assert_allclose(got_int8, expected, atol=INT8_ATOL)


def test_agreement_table_flags_loudly(exported):
    _, report = exported["cascade"]
    forced = {**report, "flagged": ["subtype"]}
    console = Console(record=True, width=200, color_system=None)
    console.print(agreement_table(forced))
    text = console.export_text()
    assert "FLAGGED: subtype" in text and "BELOW 0.98" in text and "gate" in text and "cascade" in text
    console = Console(record=True, width=200, color_system=None)
    console.print(agreement_table({**report, "flagged": []}))
    assert "FLAGGED" not in console.export_text()


def test_agreement_table_keeps_numbers_whole_beside_a_long_label(exported):
    """A model calibrated on the balanced draw is labelled so; in a 120-column log its label wraps, not its numbers."""
    _, report = exported["flat"]
    flat = {**report["models"]["flat"], "calibration": "balanced"}
    console = Console(record=True, width=120, color_system=None)
    console.print(agreement_table({**report, "models": {"flat": flat}, "flagged": ["flat"]}))
    text = console.export_text()
    assert (
        "calibration" in text and "…" not in text and f"{flat['macro_f1_diff']:+.3f}" in text and "BELOW 0.98" in text
    )


def test_export_refuses_what_is_not_a_finished_run(tmp_path, trained_runs):
    with pytest.raises(UserError, match="not a training run"):
        export_run(tmp_path)
    with pytest.raises(UserError, match="may only change export"):
        export_run(trained_runs["flat"], overrides=["train.seed=3"])
    other = tmp_path / "other"
    write_phantom_dataset(other, 6, 48, 1, 0.25, 0.0)
    with pytest.raises(UserError, match="not the dataset or split this run was trained on"):
        export_run(trained_runs["flat"], data=str(other))


def test_extra_backbone_trains_frozen_and_exports_with_the_same_graph(tmp_path, train_tiny_flat, phantom_root):
    """An extra backbone (`model.extra_backbones`): its pooled map comes from the activation cache, its weights
    stay those it started with, and the export (resize included) computes what the Keras model does."""
    run = tmp_path / "extra"
    train_tiny_flat(run, phantom_root, f'model.extra_backbones=["{TINY_EXTRA}"]', "export.qat=false")
    manifest = json.loads((run / "manifest.json").read_text())
    assert f"head_tap_{TINY_EXTRA}_top" in manifest["cut"]
    reference = keras.models.load_model(str(run / "models" / "flat.keras"), compile=False)
    assert reference.get_layer(f"{TINY_EXTRA}_resize").output_shape == (None, 48, 48, 3)
    assert reference.get_layer("head_concat").output_shape == (None, 24 + 24)
    # the extra's starting weights: the cache's template, saved before any training
    template = keras.models.load_model(str(run / "models" / "flat.keras"), compile=False)
    template.load_weights(str(next((run.parent / "cache").glob("*/init_weights.h5"))))
    for layer in reference.layers:
        if layer.name.startswith(f"{TINY_EXTRA}_") and layer.weights:
            for trained, initial in zip(layer.get_weights(), template.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(trained, initial)
    export_run(run)
    images = _val_images(run, phantom_root)[:6]
    expected = reference(images.astype(np.float32), training=False).numpy()
    np.testing.assert_allclose(
        load_model(run / "export" / "flat.float32.tflite").predict_proba(images), expected, atol=FLOAT_ATOL
    )
    np.testing.assert_allclose(
        load_model(run / "export" / "flat.int8.tflite", num_threads=1).predict_proba(images), expected, atol=INT8_ATOL
    )


def test_extra_backbone_on_the_subtype_model_only(tmp_path, test_config_path, phantom_root):
    """`model.extra_backbone_stages = ["subtype"]`: one cache with the extra's taps serves both stages, the gate is
    built and trained without them (its backbone copied past the extra's layers), and both export."""
    from neurocascade.hierarchy.run import train_models
    from tests.edge.conftest import EXPORT_SETTINGS, TRAIN_SETTINGS, tiny_registered

    settings = [
        f'model.extra_backbones=["{TINY_EXTRA}"]',
        'model.extra_backbone_stages=["subtype"]',
        "export.qat=false",
    ]
    cfg = load_config(test_config_path, TRAIN_SETTINGS + EXPORT_SETTINGS + settings)
    run = tmp_path / "sub-extra"
    with tiny_registered():
        summary = train_models(cfg, ("gate", "subtype"), run, data=str(phantom_root), cache_root=tmp_path / "cache")
    assert "cascade" in summary
    assert f"head_tap_{TINY_EXTRA}_top" in json.loads((run / "manifest.json").read_text())["cut"]
    gate = keras.models.load_model(str(run / "models" / "gate.keras"), compile=False)
    subtype = keras.models.load_model(str(run / "models" / "subtype.keras"), compile=False)
    assert not [layer.name for layer in gate.layers if layer.name.startswith(f"{TINY_EXTRA}_")]
    assert subtype.get_layer("head_concat").output_shape == (None, 24 + 24)
    assert gate.get_layer("head_gap").output_shape == (None, 24)
    # the gate's frozen stem is the template's, as the subtype's is (two fresh initialisations would differ)
    for name in ("stem_conv", "stem_bn"):
        for got, want in zip(gate.get_layer(name).get_weights(), subtype.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    # the gate's saved validation probabilities are what its own graph computes on the images
    images = _val_images(run, phantom_root)
    saved = np.load(run / "val_predictions.npz")["gate"]
    np.testing.assert_allclose(gate.predict(images.astype(np.float32), verbose=0), saved, atol=1e-4)
    # the probe gives each stage the columns its model reads: the gate's are its own pooled features
    from neurocascade.results.probe import pooled_features

    with tiny_registered():
        rows, *_ = pooled_features(run, str(phantom_root), tmp_path / "cache")
    assert {stage: r.train[0].shape[1] for stage, r in rows.items()} == {"gate": 24, "subtype": 48, "flat": 24}
    gate_pooled = keras.Model(gate.input, gate.get_layer("head_gap").output)
    np.testing.assert_allclose(gate_pooled.predict(images.astype(np.float32), verbose=0), rows["gate"].val, atol=1e-4)
    export_run(run)
    expected = subtype(images[:6].astype(np.float32), training=False).numpy()
    got = load_model(run / "export" / "subtype.int8.tflite", num_threads=1).predict_proba(images[:6])
    np.testing.assert_allclose(got, expected, atol=INT8_ATOL)
    card = (run / "export" / "MODEL_CARD.md").read_text()
    assert f"frozen extra backbones {TINY_EXTRA} (in the subtype model only)" in card
    assert f"extra backbone {TINY_EXTRA}" in card  # its weights' licence line


def test_gate_at_its_own_backbone_size_trains_on_its_own_rows_and_exports_the_resize(
    tmp_path, test_config_path, phantom_root
):
    """`model.backbone_size = 32` on the gate only: the gate resizes the 40-px images inside its graph and fills
    its own cache, the subtype model sees 40 px; each model's saved validation probabilities are what its own
    graph computes on the images, and the QAT INT8 export of the gate carries the resize."""
    from neurocascade.hierarchy.run import CUT_SEPARATOR, train_models
    from tests.edge.conftest import EXPORT_SETTINGS, TRAIN_SETTINGS, tiny_registered

    settings = ["data.image_size=40", "model.backbone_size=32", 'model.backbone_size_stages=["gate"]']
    cfg = load_config(test_config_path, TRAIN_SETTINGS + EXPORT_SETTINGS + settings)
    run, cache = tmp_path / "gate-32", tmp_path / "cache"
    with tiny_registered():
        summary = train_models(cfg, ("gate", "subtype"), run, data=str(phantom_root), cache_root=cache)
    assert "cascade" in summary
    assert len([d for d in cache.iterdir() if d.is_dir()]) == 2  # one cache per size the backbones see
    assert len(json.loads((run / "manifest.json").read_text())["cut"].split(CUT_SEPARATOR)) == 2
    gate = keras.models.load_model(str(run / "models" / "gate.keras"), compile=False)
    subtype = keras.models.load_model(str(run / "models" / "subtype.keras"), compile=False)
    assert gate.input_shape == subtype.input_shape == (None, 40, 40, 3)
    assert gate.get_layer("backbone_resize").output_shape == (None, 32, 32, 3)
    assert "backbone_resize" not in [layer.name for layer in subtype.layers]
    images = _val_images(run, phantom_root)
    saved = np.load(run / "val_predictions.npz")
    for stage, model in (("gate", gate), ("subtype", subtype)):
        np.testing.assert_allclose(model.predict(images.astype(np.float32), verbose=0), saved[stage], atol=1e-4)
    # the probe reads each model's rows from the cache of the size its backbone sees
    from neurocascade.results.probe import pooled_features

    with tiny_registered():
        rows, *_ = pooled_features(run, str(phantom_root), cache)
    assert set(rows) == {"gate", "subtype", "flat"}  # the flat model sees 40 px, as the subtype model does
    np.testing.assert_array_equal(rows["flat"].val, rows["subtype"].val)
    for stage, model in (("gate", gate), ("subtype", subtype)):
        pooled = keras.Model(model.input, model.get_layer("head_gap").output)
        np.testing.assert_allclose(pooled.predict(images.astype(np.float32), verbose=0), rows[stage].val, atol=1e-4)
    export_run(run)
    expected = gate(images[:6].astype(np.float32), training=False).numpy()
    got = load_model(run / "export" / "gate.int8.tflite", num_threads=1).predict_proba(images[:6])
    np.testing.assert_allclose(got, expected, atol=INT8_ATOL)
    card = (run / "export" / "MODEL_CARD.md").read_text()
    assert "(the gate model resizes it to 32×32 inside its graph)" in card


def test_multi_scale_head_exports_through_qat_with_the_same_graph(tmp_path, train_tiny_flat, phantom_root):
    """A tapped block pooled beside the last map (neurocascade.models.head taps) survives QAT and INT8 conversion."""
    run = tmp_path / "multi"
    train_tiny_flat(run, phantom_root, 'model.taps=["block1a"]')
    export_run(run)
    images = _val_images(run, phantom_root)[:6]
    reference = keras.models.load_model(str(run / "models" / "flat.keras"), compile=False)
    assert reference.get_layer("head_concat").output_shape == (None, 8 + 24)
    expected = reference(images.astype(np.float32), training=False).numpy()
    np.testing.assert_allclose(
        load_model(run / "export" / "flat.float32.tflite").predict_proba(images), expected, atol=FLOAT_ATOL
    )
    np.testing.assert_allclose(
        load_model(run / "export" / "flat.int8.tflite", num_threads=1).predict_proba(images), expected, atol=INT8_ATOL
    )
