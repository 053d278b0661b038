"""TFLite Metadata in exported models (edge/tflite_metadata.py): the model still runs with identical outputs, the
metadata reads back, the appended zip holds the labels, and the flatc-generated code of metadata_schema.fbs
(tests/vendor, tflite-support's) reads the same values as an independent reader.

The first tests convert a small Keras model (seconds); the last ones use the session's tiny trained exports.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from neurocascade.edge.export import convert_float, convert_int8, export_run
from neurocascade.edge.manifest import Sidecar
from neurocascade.edge.runtime import load_model, model_path
from neurocascade.edge.tflite_metadata import (
    FEATURE_PROPERTIES,
    IMAGE_PROPERTIES,
    LABELS_FILE,
    METADATA_NAME,
    MIN_PARSER_VERSION,
    RGB,
    TENSOR_AXIS_LABELS,
    ModelDescription,
    read_metadata,
    with_metadata,
)
from neurocascade.errors import UserError
from vendor import metadata_schema_py_generated as mfb

REPO = Path(__file__).resolve().parents[2]
SIZE = 32
LABELS = ("tumour", "no_tumor")


def _description(output: str = "probabilities", tau: float | None = 0.4321) -> ModelDescription:
    return ModelDescription(
        name="NeuroCascade gate (test)",
        description=f"a gate; tau = {tau}",
        version="run test",
        author="NeuroCascade test",
        license="Apache-2.0",
        labels=LABELS,
        input_description="pixels 0..255",
        output_description="probabilities",
        output=output,
        custom={"stage": "gate", "tau": tau, "output": output},
    )


@pytest.fixture(scope="module")
def converted() -> dict[str, bytes]:
    """{"float32": .tflite bytes, "int8": .tflite bytes} of a small classifier (0..255 in, softmax out), no metadata."""
    from neurocascade.tf import keras

    L = keras.layers
    inputs = keras.Input((SIZE, SIZE, 3))
    x = L.Rescaling(1.0 / 128.0, offset=-1.0)(inputs)  # the normalisation inside the model, like the real ones
    x = L.Conv2D(4, 3, activation="relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, L.Dense(len(LABELS), activation="softmax")(x))
    images = np.random.default_rng(0).integers(0, 256, (8, SIZE, SIZE, 3)).astype(np.float32)

    def representative():
        for image in images:
            yield [image[None]]

    return {"float32": convert_float(model), "int8": convert_int8(model, representative)}


def _run(model: bytes, images: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for image in images:
        interp.set_tensor(inp["index"], image[None].astype(inp["dtype"]))
        interp.invoke()
        rows.append(interp.get_tensor(out["index"])[0].copy())
    return np.array(rows)


@pytest.mark.parametrize("variant", ["float32", "int8"])
def test_model_with_metadata_runs_with_identical_outputs(converted, variant):
    images = np.random.default_rng(1).integers(0, 256, (6, SIZE, SIZE, 3)).astype(np.uint8)
    plain = converted[variant]
    labelled = with_metadata(plain, _description())
    assert len(labelled) > len(plain)
    np.testing.assert_array_equal(_run(labelled, images), _run(plain, images))


@pytest.mark.parametrize("variant", ["float32", "int8"])
def test_metadata_reads_back(converted, variant):
    meta = read_metadata(with_metadata(converted[variant], _description()))
    assert meta.name == "NeuroCascade gate (test)" and meta.author == "NeuroCascade test"
    assert meta.license == "Apache-2.0" and meta.min_parser_version == MIN_PARSER_VERSION
    assert meta.labels == LABELS
    assert meta.input.content == IMAGE_PROPERTIES and meta.input.color_space == RGB
    assert meta.input.mean == (0.0, 0.0, 0.0) and meta.input.std == (1.0, 1.0, 1.0)
    assert meta.output.content == FEATURE_PROPERTIES
    assert meta.output.files == ((LABELS_FILE, TENSOR_AXIS_LABELS),)
    assert meta.neurocascade == {"stage": "gate", "tau": 0.4321, "output": "probabilities"}
    # the range of what the tensors hold, as tflite-support's image classifier writer records it
    if variant == "int8":
        assert (meta.input.minimum, meta.input.maximum) == ((0.0,), (255.0,))
        assert (meta.output.minimum, meta.output.maximum) == ((0.0,), (255.0,))
    else:
        assert (meta.input.minimum, meta.input.maximum) == ((0.0,) * 3, (255.0,) * 3)
        assert not np.signbit(meta.input.minimum).any()  # 0.0, not -0.0 (what a displayer would print)
        assert (meta.output.minimum, meta.output.maximum) == ((0.0,), (1.0,))


def test_logits_output_has_no_probability_range(converted):
    meta = read_metadata(with_metadata(converted["float32"], _description(output="logits", tau=None)))
    assert meta.output.name == "logits" and meta.output.minimum is None and meta.output.maximum is None
    assert meta.neurocascade["tau"] is None


def test_appended_zip_holds_the_labels_file(converted):
    data = with_metadata(converted["int8"], _description())
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == [LABELS_FILE]
        assert zf.getinfo(LABELS_FILE).compress_type == zipfile.ZIP_STORED  # MediaPipe maps it in place
        assert zf.read(LABELS_FILE) == b"tumour\nno_tumor\n"
    assert with_metadata(converted["int8"], _description()) == data  # the same model, the same bytes


def test_writing_metadata_again_replaces_it(converted):
    once = with_metadata(converted["int8"], _description(tau=0.25))
    assert with_metadata(once, _description()) == with_metadata(converted["int8"], _description())


def _independent(model: bytes):
    """The ModelMetadata read through TensorFlow's model schema and tflite-support's generated code only."""
    from tensorflow.lite.python import schema_py_generated as schema

    root = schema.Model.GetRootAs(model, 0)
    entries = [root.Metadata(i) for i in range(root.MetadataLength())]
    found = [m for m in entries if m.Name().decode() == METADATA_NAME]
    assert len(found) == 1
    buf = root.Buffers(found[0].Buffer()).DataAsNumpy().tobytes()
    assert mfb.ModelMetadata.ModelMetadataBufferHasIdentifier(buf, 0)
    return mfb.ModelMetadataT.InitFromObj(mfb.ModelMetadata.GetRootAs(buf, 0))


def test_generated_schema_code_reads_the_same_metadata(converted):
    meta = _independent(with_metadata(converted["float32"], _description()))
    assert meta.name.decode() == "NeuroCascade gate (test)" and meta.minParserVersion.decode() == MIN_PARSER_VERSION
    (graph,) = meta.subgraphMetadata
    (image,), (scores,) = graph.inputTensorMetadata, graph.outputTensorMetadata
    assert image.content.contentPropertiesType == mfb.ContentProperties.ImageProperties
    assert image.content.contentProperties.colorSpace == mfb.ColorSpaceType.RGB
    (unit,) = image.processUnits
    assert unit.optionsType == mfb.ProcessUnitOptions.NormalizationOptions
    assert list(unit.options.mean) == [0.0] * 3 and list(unit.options.std) == [1.0] * 3
    assert scores.content.contentPropertiesType == mfb.ContentProperties.FeatureProperties
    (labels,) = scores.associatedFiles
    assert labels.name.decode() == LABELS_FILE and labels.type == mfb.AssociatedFileType.TENSOR_AXIS_LABELS
    (custom,) = graph.customMetadata
    assert custom.name.decode() == "neurocascade"
    assert json.loads(bytes(custom.data))["tau"] == 0.4321


def test_reader_needs_no_tensorflow(converted, tmp_path):
    """The edge install has no TensorFlow: reading labels and τ back takes flatbuffers and zipfile only."""
    path = tmp_path / "gate.int8.tflite"
    path.write_bytes(with_metadata(converted["int8"], _description()))
    probe = (
        "import json, sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'):\n"
        "            raise ImportError(name + ' is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from neurocascade.edge.tflite_metadata import read_metadata\n"
        f"meta = read_metadata({str(path)!r})\n"
        "print(json.dumps([meta.labels, meta.neurocascade['tau'], meta.input.mean]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert json.loads(proc.stdout) == [list(LABELS), 0.4321, [0.0, 0.0, 0.0]]


def test_a_model_without_metadata_reads_as_none(converted):
    assert read_metadata(converted["int8"]) is None


def test_not_a_model_is_a_one_line_error(tmp_path):
    bad = tmp_path / "notes.tflite"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(UserError, match="notes.tflite: unreadable TFLite metadata") as err:
        read_metadata(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="missing.tflite: cannot read"):
        read_metadata(tmp_path / "missing.tflite")


# ---------------------------------------------------------------------------------------------- the export


@pytest.mark.parametrize("kind", ["cascade", "flat"])
def test_every_exported_model_describes_itself_as_its_sidecar_does(exported, kind):
    run, _ = exported[kind]
    folder = run / "export"
    for stage in ("gate", "subtype") if kind == "cascade" else ("flat",):
        sidecar = Sidecar.read(folder / f"{stage}.json")
        for variant in ("float32", "int8"):
            meta = read_metadata(model_path(folder, stage, variant))
            assert meta.labels == sidecar.labels
            assert meta.neurocascade["tau"] == sidecar.tau
            assert meta.neurocascade["output"] == sidecar.output_kind
            assert meta.neurocascade["input"]["size"] == sidecar.input["size"]
            assert meta.input.mean == (0.0, 0.0, 0.0) and meta.input.std == (1.0, 1.0, 1.0)
            assert "Research software, not a medical device" in meta.description
            assert run.resolve().name in meta.version and sidecar.source["sha256"] in meta.version
            if sidecar.tau is not None and stage == "gate":
                assert f"tau = {sidecar.tau:.4f}" in meta.description
            assert "licence not recorded" not in meta.license  # the phantoms and "none" weights are listed


def test_export_without_metadata_has_the_same_agreement(exported, tmp_path):
    """export.metadata = false: plain converter output, and every agreement number the same (only sizes move)."""
    run, report = exported["flat"]
    copy = tmp_path / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("export"))
    plain = export_run(copy, overrides=["export.qat=false", "export.metadata=false"])
    for variant in ("float32", "int8"):
        assert read_metadata(model_path(copy / "export", "flat", variant)) is None
    with_meta, without = report["models"]["flat"], plain["models"]["flat"]
    moved = {"seconds", "float32_bytes", "int8_bytes", "float32_to_int8_ratio", "keras_to_int8_ratio", "candidates"}
    assert {k: v for k, v in without.items() if k not in moved} == {
        k: v for k, v in with_meta.items() if k not in moved
    }
    unsized = [{mode: {k: v for k, v in c.items() if k != "bytes"} for mode, c in m["candidates"].items()}
               for m in (without, with_meta)]  # fmt: skip
    assert unsized[0] == unsized[1] and with_meta["candidates"]["int8"]["bytes"] == with_meta["int8_bytes"]
    for variant in ("float32", "int8"):
        extra = with_meta[f"{variant}_bytes"] - without[f"{variant}_bytes"]
        assert 0 < extra < 16_384, (variant, extra)  # a few kB of metadata, licence text and labels
        labelled = model_path(run / "export", "flat", variant).stat().st_size
        assert labelled == with_meta[f"{variant}_bytes"]  # the reported size is the file's
    images = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    np.testing.assert_array_equal(
        load_model(model_path(run / "export", "flat")).predict_proba(images),
        load_model(model_path(copy / "export", "flat")).predict_proba(images),
    )
