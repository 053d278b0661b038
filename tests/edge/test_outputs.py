"""Issue 15, item 2: the INT8 model's output keeps its resolution (`export.output = "logits"`), old exports still load.

Tolerances: softmax(logits model) vs the Keras softmax model 1e-6 (the same float graph); INT8 vs Keras 0.03 per
probability, as in test_export.py. The resolution check: a uint8 softmax can only output multiples of 1/256; a
logits export through the runtime's float softmax must give probabilities off that grid.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from neurocascade.data.dataset import load_dataset
from neurocascade.edge.export import export_run
from neurocascade.edge.manifest import verify_export
from neurocascade.edge.outputs import output_model, softmax
from neurocascade.edge.runtime import Cascade, FlatModel, load_model
from neurocascade.config import load_config
from neurocascade.errors import ConfigError, UserError
from neurocascade.tf import keras

FLOAT_ATOL, INT8_ATOL = 1e-5, 0.03
UINT8_STEP = 1 / 256


def test_softmax_hand_computed_and_stable():
    np.testing.assert_allclose(softmax(np.array([[0.0, np.log(3.0)]])), [[0.25, 0.75]], atol=1e-12)
    big = softmax(np.array([[1000.0, 0.0, -1000.0]]))  # no overflow: shifted by the row max
    assert np.isfinite(big).all() and big[0, 0] == pytest.approx(1.0)


def test_output_model_drops_only_the_softmax(make_tiny_classifier):
    model = make_tiny_classifier(3, 32)
    assert output_model(model, "probabilities") is model
    logits = output_model(model, "logits")
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(softmax(logits(x).numpy()), model(x).numpy(), atol=1e-6)
    assert logits.count_params() == model.count_params()
    with pytest.raises(ValueError, match="not a Dense softmax"):
        output_model(logits, "logits")
    with pytest.raises(ValueError, match="unknown export output"):
        output_model(model, "uint8")


def test_config_refuses_an_unknown_output(test_config_path):
    with pytest.raises(ConfigError, match="output"):
        load_config(test_config_path, ["export.output=softmax"])


def _copy_run(run: Path, tmp_path: Path) -> Path:
    """A copy of a session run without its export, so re-exporting it leaves the session's exports alone."""
    copy = tmp_path / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("export*", "quant-debug"))
    return copy


def _val_images(run: Path, phantom_root: Path) -> np.ndarray:
    return load_dataset(load_config(run / "config.toml"), str(phantom_root)).images("val")


def test_logits_export_keeps_resolution_and_agrees(trained_runs, phantom_root, tmp_path):
    run = _copy_run(trained_runs["flat"], tmp_path)
    report = export_run(run, overrides=["export.qat=false", "export.output=logits"])
    assert report["output"] == "logits"
    verify_export(run / "export")
    sidecar = json.loads((run / "export" / "flat.json").read_text())
    assert sidecar["schema"] == "neurocascade-edge/2" and sidecar["output"] == "logits"
    assert sidecar["models"]["int8"]["output"]["dtype"] == "uint8"
    assert sidecar["models"]["int8"]["input"]["quantization"] == {"scale": 1.0, "zero_point": 0}  # still pixels
    assert sidecar["models"]["int8"]["output"]["quantization"]["scale"] != UINT8_STEP

    images = _val_images(run, phantom_root)
    expected = keras.models.load_model(str(run / "models" / "flat.keras"), compile=False)(
        images.astype(np.float32), training=False
    ).numpy()
    int8 = FlatModel.load(run / "export").model.predict_proba(images)
    np.testing.assert_allclose(int8, expected, atol=INT8_ATOL)
    np.testing.assert_allclose(int8.sum(axis=1), 1.0, atol=1e-6)
    off_grid = np.abs(int8 / UINT8_STEP - np.rint(int8 / UINT8_STEP)) > 1e-3
    assert off_grid.mean() > 0.5  # a uint8 softmax would give 0 here
    fp32 = load_model(run / "export" / "flat.float32.tflite").predict_proba(images)
    np.testing.assert_allclose(fp32, expected, atol=FLOAT_ATOL)
    m = report["models"]["flat"]
    assert m["int8_max_abs_prob_diff"] <= INT8_ATOL and m["float_max_abs_prob_diff"] <= FLOAT_ATOL


def test_logits_cascade_through_qat_reports_what_a_user_sees(trained_runs, tmp_path):
    run = _copy_run(trained_runs["cascade"], tmp_path)
    report = export_run(run, overrides=["export.output=logits"])  # QAT (tests' settings) on the logits model
    assert report["method"] == "qat" and report["output"] == "logits"
    cascade = report["models"]["cascade"]
    assert 0.0 <= cascade["tau_decision_agreement"] <= 1.0 and 0.0 <= cascade["int8_max_abs_prob_diff"] <= 1.0
    assert 0.0 <= report["models"]["gate"]["tau_decision_agreement"] <= 1.0
    for stage in ("gate", "subtype"):
        assert report["models"][stage]["int8_max_abs_prob_diff"] <= INT8_ATOL
        assert json.loads((run / "export" / f"{stage}.json").read_text())["output"] == "logits"
    assert Cascade.load(run / "export").gate.output == "logits"


def test_schema_1_sidecars_still_load(exported, tmp_path, reseal):
    """An export made before schema /2 (its `output` a description, its models probabilities) predicts as before."""
    folder = tmp_path / "export"
    shutil.copytree(exported["cascade"][0] / "export", folder)
    before = Cascade.load(folder)
    x = np.random.default_rng(1).integers(0, 256, (4, before.size, before.size, 3), dtype=np.uint8)
    expected = before.predict(x, subtype_for_all=True).probs
    for stage in ("gate", "subtype"):
        path = folder / f"{stage}.json"
        sidecar = json.loads(path.read_text())
        sidecar.update(schema="neurocascade-edge/1", output="softmax probabilities in `labels` order")
        sidecar.pop("output_meaning", None)
        path.write_text(json.dumps(sidecar))
    reseal(folder)
    old = Cascade.load(folder)
    assert old.gate.output == "probabilities"
    np.testing.assert_array_equal(old.predict(x, subtype_for_all=True).probs, expected)


def test_schema_2_sidecar_with_unknown_output_is_one_line(exported, tmp_path, reseal):
    folder = tmp_path / "export"
    shutil.copytree(exported["flat"][0] / "export", folder)
    sidecar = json.loads((folder / "flat.json").read_text())
    sidecar["output"] = "softmax"
    (folder / "flat.json").write_text(json.dumps(sidecar))
    reseal(folder)
    with pytest.raises(UserError) as err:
        FlatModel.load(folder)
    assert "output" in str(err.value) and "logits" in str(err.value) and "\n" not in str(err.value)


def test_float_ops_stay_float_and_io_stays_uint8(trained_runs, phantom_root, tmp_path):
    """`export.float_ops`: the named TFLite ops compute in float inside the otherwise full-integer model."""
    from ai_edge_litert.interpreter import Interpreter

    run = _copy_run(trained_runs["flat"], tmp_path)
    report = export_run(
        run, overrides=["export.qat=false", "export.output=logits", 'export.float_ops=["FULLY_CONNECTED"]']
    )
    assert report["float_ops"] == ["FULLY_CONNECTED"]
    path = run / "export" / "flat.int8.tflite"
    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    dtypes = {op["op_name"]: set() for op in interp._get_ops_details()}
    for op in interp._get_ops_details():
        dtypes[op["op_name"]] |= {interp._get_tensor_details(i, 0)["dtype"].__name__ for i in op["outputs"]}
    assert dtypes["FULLY_CONNECTED"] == {"float32"} and "int8" in dtypes["CONV_2D"]
    assert interp.get_input_details()[0]["dtype"].__name__ == "uint8"
    model = FlatModel.load(run / "export").model
    images = _val_images(run, phantom_root)
    expected = keras.models.load_model(str(run / "models" / "flat.keras"), compile=False)(
        images.astype(np.float32), training=False
    ).numpy()
    np.testing.assert_allclose(model.predict_proba(images), expected, atol=INT8_ATOL)


def test_float_layers_keep_only_the_named_ops_float(trained_runs, phantom_root, tmp_path):
    """`export.float_layers`: the ops of the named Keras layer compute in float, every other conv stays int8, and the
    export records the names; a name no op comes from is refused in one line."""
    from ai_edge_litert.interpreter import Interpreter

    from neurocascade.edge.float_layers import layer_names

    run = _copy_run(trained_runs["flat"], tmp_path)
    keras_model = keras.models.load_model(str(run / "models" / "flat.keras"), compile=False)
    conv = next(layer.name for layer in _layers(keras_model) if isinstance(layer, keras.layers.Conv2D))
    report = export_run(run, overrides=["export.qat=false", f'export.float_layers=["{conv}"]'])
    assert report["float_layers"] == [conv]
    verify_export(run / "export")
    sidecar = json.loads((run / "export" / "flat.json").read_text())
    assert sidecar["models"]["int8"]["float_layers"] == [conv]
    interp = Interpreter(model_path=str(run / "export" / "flat.int8.tflite"))
    interp.allocate_tensors()
    kept, quantized = set(), set()
    for op in interp._get_ops_details():
        if op["op_name"] != "CONV_2D":
            continue
        (out,) = op["outputs"]
        detail = interp._get_tensor_details(out, 0)
        named = conv in layer_names(detail["name"])
        (kept if named else quantized).add(detail["dtype"].__name__)
    assert kept == {"float32"} and quantized == {"int8"}
    assert interp.get_input_details()[0]["dtype"].__name__ == "uint8"
    expected = keras_model(_val_images(run, phantom_root).astype(np.float32), training=False).numpy()
    got = FlatModel.load(run / "export").model.predict_proba(_val_images(run, phantom_root))
    np.testing.assert_allclose(got, expected, atol=INT8_ATOL)

    with pytest.raises(UserError) as err:
        export_run(_copy_run(trained_runs["flat"], tmp_path / "typo"), overrides=['export.float_layers=["no_such"]'])
    assert "no_such" in str(err.value) and "\n" not in str(err.value)


def _layers(model) -> list:
    """Every layer of `model`, nested models' too, in order."""
    out = []
    for layer in model.layers:
        out.extend(_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return out
