"""INT8 head bias correction (neurocascade.edge.bias_correction): the shift of the INT8 pooled features is
measured on the calibration images and subtracted in the INT8 model's head BatchNorm only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurocascade.config import ModelConfig, load_config
from neurocascade.edge.bias_correction import correct_head_bias, int8_pooled_features, pooled_tensor
from neurocascade.edge.calibration import representative
from neurocascade.edge.export import convert_int8, export_run
from neurocascade.models.build import build_classifier
from neurocascade.models.weights import WeightsSource
from neurocascade.tf import keras


@pytest.fixture(scope="module")
def lite2():
    """A 64-px EfficientNetLite2 classifier with the multi-scale head, its INT8 file and calibration images."""
    cfg = ModelConfig(backbone="EfficientNetLite2", weights="none", head_units=8, taps=("block4d", "block6e"))
    keras.utils.set_random_seed(0)
    model = build_classifier(cfg, 3, 64, WeightsSource("none"))
    images = np.random.default_rng(0).integers(0, 256, (24, 64, 64, 3)).astype(np.float32)
    return model, images, convert_int8(model, representative(images))


def test_the_head_reads_the_int8_features_as_the_float_head_reads_the_float_ones(lite2):
    """...and the corrected INT8 model's probabilities come out closer to Keras'."""
    model, images, int8 = lite2
    corrected, shift = correct_head_bias(model, int8, images)
    pooled = lambda m: keras.Model(m.input, m.get_layer("head_concat").output).predict(images, verbose=0)  # noqa: E731
    float_rows, int8_rows = pooled(model), int8_pooled_features(int8, images, "head_concat")
    np.testing.assert_allclose(shift.shift, (int8_rows - float_rows).mean(axis=0), atol=1e-5)
    assert shift.relative > 0.01  # random weights shift the INT8 features too
    np.testing.assert_allclose(pooled(corrected), float_rows, atol=1e-5)  # the backbone is the same
    before = model.get_layer("head_bn").get_weights()
    after = corrected.get_layer("head_bn").get_weights()
    np.testing.assert_allclose(after[2], before[2] + shift.shift, rtol=1e-6)  # only the moving mean moves
    for k in (0, 1, 3):
        np.testing.assert_array_equal(after[k], before[k])
    np.testing.assert_array_equal(model.get_layer("head_bn").get_weights()[2], before[2])  # the source untouched
    # the corrected model converted with the same calibration: the same INT8 features, now centred on the float ones
    reconverted = convert_int8(corrected, representative(images))
    np.testing.assert_array_equal(int8_pooled_features(reconverted, images, "head_concat"), int8_rows)
    keras_p = model.predict(images, verbose=0)
    error = lambda data: np.abs(_int8_probs(data, images) - keras_p).mean()  # noqa: E731
    assert error(reconverted) < error(int8)


def _int8_probs(data: bytes, images: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    entry, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = out["quantization"]
    rows = []
    for image in images.astype(np.uint8):
        interpreter.set_tensor(entry["index"], image[None])
        interpreter.invoke()
        rows.append((interpreter.get_tensor(out["index"])[0].astype(np.float32) - zero) * scale)
    return np.stack(rows)


def test_a_layer_the_graph_does_not_have_is_named():
    details = [{"name": "m/head_gap/Mean/reduction_indices"}, {"name": "m/head_gap/Mean"}]
    assert pooled_tensor(details, "head_gap")["name"] == "m/head_gap/Mean"
    with pytest.raises(ValueError, match="expected one TFLite tensor for layer 'head_concat', found 0"):
        pooled_tensor(details, "head_concat")


def test_only_post_training_quantization_is_corrected(test_config_path):
    corrects = lambda *s: load_config(test_config_path, list(s)).export.corrects_head_bias  # noqa: E731
    assert corrects("export.qat=false", "export.bias_correction=true")
    assert not corrects("export.qat=true", "export.bias_correction=true")
    assert not corrects("export.qat=false", "export.bias_correction=false")


def test_export_corrects_the_head_and_records_it(tmp_path, train_tiny_flat, phantom_root):
    run = tmp_path / "flat"
    train_tiny_flat(run, phantom_root)
    messages: list[str] = []
    report = export_run(run, progress=messages.append, overrides=["export.qat=false", "export.bias_correction=true"])
    written = json.loads((run / "export" / "agreement.json").read_text())
    assert report["bias_correction"] is True and written["bias_correction"] is True
    entry = written["models"]["flat"]["head_bias_correction"]
    assert entry["features"] > 0 and entry["median_shift_over_std"] >= 0
    assert any(m.startswith("flat: head corrected for the INT8 features' shift") for m in messages)
    card = (run / "export" / "MODEL_CARD.md").read_text()
    assert "INT8 (PTQ, probabilities output, head corrected for the INT8 features' mean shift) against" in card


def test_a_kept_shift_is_used_only_for_its_own_key(tmp_path, monkeypatch):
    from neurocascade.edge.bias_correction import HeadShift
    from neurocascade.edge.shift_store import ShiftStore
    from neurocascade.tf import tf

    store = ShiftStore(tmp_path / "shifts")
    assert store.load("k", ["FULLY_CONNECTED"]) is None  # no folder yet
    shift = HeadShift(np.array([0.5, -0.25], np.float32), 0.125)
    store.save("k", ["FULLY_CONNECTED"], [], shift, "flat in runs/x")
    kept, measured_for = store.load("k", ["FULLY_CONNECTED"])
    np.testing.assert_array_equal(kept.shift, shift.shift)
    assert (kept.relative, measured_for) == (0.125, "flat in runs/x")
    assert store.load("other", ["FULLY_CONNECTED"]) is None
    assert store.load("k", []) is None  # other ops in float quantize the backbone otherwise
    assert store.load("k", ["FULLY_CONNECTED"], ["stem_conv"]) is None  # and so do float layers
    monkeypatch.setattr(tf, "__version__", "0.0.0")
    assert store.load("k", ["FULLY_CONNECTED"]) is None  # another converter
    monkeypatch.undo()
    (path,) = (tmp_path / "shifts").iterdir()
    path.write_bytes(b"not an npz")
    assert store.load("k", ["FULLY_CONNECTED"]) is None  # unreadable: measured again


def test_a_second_export_takes_the_shift_the_first_kept(tmp_path, train_tiny_flat, phantom_root, monkeypatch):
    """The flat run exported twice with one store: the second converts and measures nothing for the shift, says
    whose measurement it took, and installs the same INT8 model."""
    import neurocascade.edge.export as export

    run = tmp_path / "flat"
    train_tiny_flat(run, phantom_root)
    measured: list[str] = []
    measure = export.measure_head_shift

    def spy(model, int8_bytes, images, *args):
        measured.append(model.name)
        return measure(model, int8_bytes, images, *args)

    monkeypatch.setattr(export, "measure_head_shift", spy)
    overrides = ["export.qat=false", "export.bias_correction=true"]
    store = tmp_path / "cache" / "head-shifts"
    export_run(run, overrides=overrides, shift_store=store)
    first = (run / "export" / "flat.int8.tflite").read_bytes()
    assert len(measured) == 1 and len(list(store.iterdir())) == 1
    messages: list[str] = []
    report = export_run(run, progress=messages.append, overrides=overrides, shift_store=store)
    assert len(measured) == 1  # no second measurement
    assert any(f"the measurement of flat in {run}, the same backbone and images" in m for m in messages)
    assert (run / "export" / "flat.int8.tflite").read_bytes() == first
    assert report["models"]["flat"]["head_bias_correction"]["features"] > 0
    export_run(run, overrides=overrides)  # without a store: measured again
    assert len(measured) == 2
