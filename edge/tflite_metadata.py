"""TFLite Metadata in the exported .tflite files, so that any LiteRT / MediaPipe image classifier can read a model's
labels and input normalisation, and `predict` can check them against the sidecar.

    data = with_metadata(model_bytes, description)     # export (needs TensorFlow's flatbuffer_utils)
    meta = read_metadata(path)                         # anywhere (flatbuffers and zipfile only); None: none embedded
    meta.labels, meta.input.mean, meta.input.std, meta.neurocascade["tau"]

The layout is tflite-support's `MetadataPopulator`'s (metadata_schema.fbs, tensorflow/tflite-support, schema
1.5.0): a `ModelMetadata` flatbuffer (file identifier "M001") in a buffer of the model, named by the model's
`metadata` entry "TFLITE_METADATA"; the files it names (here the labels file) appended to the .tflite as an
uncompressed zip. tflite-support itself cannot be installed beside TensorFlow 2.21 (its protobuf pin), so the few
tables used are written with `flatbuffers.Builder` and read with `flatbuffers.table.Table`; FIELD slots below are
the schema's field order (a union takes two: its type, then its value). tests/edge/test_tflite_metadata.py reads
the result with the flatc-generated code of the same schema as an independent check.

What is written: `ModelMetadata` name, description (what the model does, τ for a cascade), version (run and the
.keras file's sha256), author, license; one `SubGraphMetadata` with the input tensor's `ImageProperties` (RGB),
`NormalizationOptions` (mean 0, std 1: the model takes 0..255 pixels, its normalisation is inside it) and `Stats`;
the output tensor's `FeatureProperties`, `Stats` and the labels file (`TENSOR_AXIS_LABELS`, one label a line, in
the output's order); and a `CustomMetadata` "neurocascade" holding JSON: stage, kind, output ("probabilities" or
"logits"), τ and the preprocessing (what a generic classifier cannot know; custom metadata is schema 1.5.0).
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import flatbuffers
from flatbuffers.table import Table

from neurocascade.errors import UserError

METADATA_NAME = "TFLITE_METADATA"  # the model's `metadata` entry that points at the ModelMetadata buffer
METADATA_IDENTIFIER = b"M001"
MODEL_IDENTIFIER = b"TFL3"
MIN_PARSER_VERSION = "1.5.0"  # SubGraphMetadata.custom_metadata was added in 1.5.0; every other field here is 1.0.0
CUSTOM_NAME = "neurocascade"
LABELS_FILE = "labels.txt"
TENSOR_AXIS_LABELS = 2  # AssociatedFileType
RGB = 1  # ColorSpaceType
FEATURE_PROPERTIES, IMAGE_PROPERTIES = 1, 2  # ContentProperties union
NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union
# Field slots, in metadata_schema.fbs order.
MODEL = {"name": 0, "description": 1, "version": 2, "subgraph_metadata": 3, "author": 4, "license": 5,
         "min_parser_version": 7}  # fmt: skip
SUBGRAPH = {"input_tensor_metadata": 2, "output_tensor_metadata": 3, "custom_metadata": 9}
TENSOR = {"name": 0, "description": 1, "content": 3, "process_units": 4, "stats": 5, "associated_files": 6}
CONTENT = {"content_properties_type": 0, "content_properties": 1}
IMAGE = {"color_space": 0}
PROCESS_UNIT = {"options_type": 0, "options": 1}
NORMALIZATION = {"mean": 0, "std": 1}
STATS = {"max": 0, "min": 1}
FILE = {"name": 0, "description": 1, "type": 2}
CUSTOM = {"name": 0, "data": 1}
# The TFLite model schema (schema.fbs): Model.buffers, Model.metadata, Metadata.name/.buffer, Buffer.data.
TFL_MODEL = {"buffers": 4, "metadata": 6}
TFL_METADATA = {"name": 0, "buffer": 1}
TFL_BUFFER = {"data": 0}


@dataclass(frozen=True)
class ModelDescription:
    """What one exported model says about itself (the export fills it from the run and the sidecar's values)."""

    name: str
    description: str
    version: str
    author: str
    license: str
    labels: tuple[str, ...]
    input_description: str
    output_description: str
    output: str  # "probabilities" or "logits": whether the float output has the 0..1 range
    custom: Mapping[str, Any] = field(default_factory=dict)  # the "neurocascade" JSON
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's metadata as read back."""

    name: str | None
    description: str | None
    content: int  # ContentProperties union type (IMAGE_PROPERTIES, FEATURE_PROPERTIES, 0: none)
    color_space: int | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    minimum: tuple[float, ...] | None
    maximum: tuple[float, ...] | None
    files: tuple[tuple[str, int], ...]  # (name, AssociatedFileType)


@dataclass(frozen=True)
class EmbeddedMetadata:
    """A model's TFLite Metadata and the files appended to it."""

    name: str | None
    description: str | None
    version: str | None
    author: str | None
    license: str | None
    min_parser_version: str | None
    input: TensorInfo
    output: TensorInfo
    custom: Mapping[str, bytes]
    files: Mapping[str, bytes]
    neurocascade: Mapping[str, Any]  # the "neurocascade" custom metadata's JSON (stage, kind, output, τ); {} if none

    @property
    def labels(self) -> tuple[str, ...]:
        """The output's labels, from its TENSOR_AXIS_LABELS file (as a MediaPipe classifier reads them)."""
        names = [name for name, kind in self.output.files if kind == TENSOR_AXIS_LABELS]
        if not names or names[0] not in self.files:
            return ()
        return tuple(line.strip() for line in self.files[names[0]].decode("utf-8").splitlines() if line.strip())


# ---------------------------------------------------------------------------------------------- writing


def _table(b: flatbuffers.Builder, n_slots: int, fields: list[tuple[int, str, Any]]) -> int:
    """One table: `fields` as (slot, kind, value), kind "offset" | "uint8" | "int8"; None values left out."""
    b.StartObject(n_slots)
    for slot, kind, value in fields:
        if value is None:
            continue
        if kind == "offset":
            b.PrependUOffsetTRelativeSlot(slot, value, 0)
        elif kind == "uint8":
            b.PrependUint8Slot(slot, value, 0)
        else:
            b.PrependInt8Slot(slot, value, 0)
    return b.EndObject()


def _offsets(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _floats(b: flatbuffers.Builder, values: tuple[float, ...]) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependFloat32(float(v))
    return b.EndVector()


def _bytes(b: flatbuffers.Builder, data: bytes, alignment: int = 16) -> int:
    b.StartVector(1, len(data), alignment)  # CustomMetadata.data is (force_align: 16)
    for byte in reversed(data):
        b.PrependUint8(byte)
    return b.EndVector()


def _stats(b: flatbuffers.Builder, minimum: tuple[float, ...] | None, maximum: tuple[float, ...] | None) -> int:
    if minimum is None or maximum is None:
        return _table(b, 2, [])
    hi, lo = _floats(b, maximum), _floats(b, minimum)
    return _table(b, 2, [(STATS["max"], "offset", hi), (STATS["min"], "offset", lo)])


def _input_tensor(b: flatbuffers.Builder, d: ModelDescription, dtype: str) -> int:
    """The image input: RGB, normalisation (mean, std) and the range of what the model receives (tflite-support's
    InputImageTensorMd: 0..255 for uint8, (0 - mean)/std..(255 - mean)/std per channel for float32)."""
    name, text = b.CreateString("image"), b.CreateString(d.input_description)
    image = _table(b, 2, [(IMAGE["color_space"], "int8", RGB)])
    content = _table(
        b,
        3,
        [
            (CONTENT["content_properties_type"], "uint8", IMAGE_PROPERTIES),
            (CONTENT["content_properties"], "offset", image),
        ],
    )
    mean, std = _floats(b, d.mean), _floats(b, d.std)
    norm = _table(b, 2, [(NORMALIZATION["mean"], "offset", mean), (NORMALIZATION["std"], "offset", std)])
    unit = _table(
        b,
        2,
        [(PROCESS_UNIT["options_type"], "uint8", NORMALIZATION_OPTIONS), (PROCESS_UNIT["options"], "offset", norm)],
    )
    units = _offsets(b, [unit])
    if dtype == "uint8":
        stats = _stats(b, (0.0,), (255.0,))
    else:
        stats = _stats(
            b, tuple((0.0 - m) / s for m, s in zip(d.mean, d.std)), tuple((255 - m) / s for m, s in zip(d.mean, d.std))
        )
    return _table(
        b,
        7,
        [
            (TENSOR["name"], "offset", name),
            (TENSOR["description"], "offset", text),
            (TENSOR["content"], "offset", content),
            (TENSOR["process_units"], "offset", units),
            (TENSOR["stats"], "offset", stats),
        ],
    )


def _output_tensor(b: flatbuffers.Builder, d: ModelDescription, dtype: str) -> int:
    """The class scores with their labels file (tflite-support's ClassificationTensorMd: 0..255 for uint8, 0..1 for
    float probabilities; logits have no range)."""
    name, text = (
        b.CreateString("probability" if d.output == "probabilities" else "logits"),
        b.CreateString(d.output_description),
    )
    content = _table(
        b,
        3,
        [
            (CONTENT["content_properties_type"], "uint8", FEATURE_PROPERTIES),
            (CONTENT["content_properties"], "offset", _table(b, 0, [])),
        ],
    )
    if dtype == "uint8":
        stats = _stats(b, (0.0,), (255.0,))
    else:
        stats = _stats(b, (0.0,), (1.0,)) if d.output == "probabilities" else _stats(b, None, None)
    file_name, file_text = (
        b.CreateString(LABELS_FILE),
        b.CreateString("Labels of the output, one a line, in its order."),
    )
    labels = _table(
        b,
        5,
        [
            (FILE["name"], "offset", file_name),
            (FILE["description"], "offset", file_text),
            (FILE["type"], "int8", TENSOR_AXIS_LABELS),
        ],
    )
    files = _offsets(b, [labels])
    return _table(
        b,
        7,
        [
            (TENSOR["name"], "offset", name),
            (TENSOR["description"], "offset", text),
            (TENSOR["content"], "offset", content),
            (TENSOR["stats"], "offset", stats),
            (TENSOR["associated_files"], "offset", files),
        ],
    )


def metadata_buffer(d: ModelDescription, input_dtype: str, output_dtype: str) -> bytes:
    """The serialized ModelMetadata (identifier "M001") for a model with these input and output dtypes."""
    b = flatbuffers.Builder(1024)
    inputs = _offsets(b, [_input_tensor(b, d, input_dtype)])
    outputs = _offsets(b, [_output_tensor(b, d, output_dtype)])
    custom_name = b.CreateString(CUSTOM_NAME)
    custom_data = _bytes(b, json.dumps(dict(d.custom), sort_keys=True).encode("utf-8"))
    custom = _offsets(
        b, [_table(b, 2, [(CUSTOM["name"], "offset", custom_name), (CUSTOM["data"], "offset", custom_data)])]
    )
    subgraph = _table(
        b,
        10,
        [
            (SUBGRAPH["input_tensor_metadata"], "offset", inputs),
            (SUBGRAPH["output_tensor_metadata"], "offset", outputs),
            (SUBGRAPH["custom_metadata"], "offset", custom),
        ],
    )
    subgraphs = _offsets(b, [subgraph])
    strings = {key: b.CreateString(getattr(d, key)) for key in ("name", "description", "version", "author", "license")}
    version = b.CreateString(MIN_PARSER_VERSION)
    root = _table(
        b,
        8,
        [(MODEL[key], "offset", off) for key, off in strings.items()]
        + [(MODEL["subgraph_metadata"], "offset", subgraphs), (MODEL["min_parser_version"], "offset", version)],
    )
    b.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def _zip(files: Mapping[str, bytes]) -> bytes:
    """The associated files as an uncompressed zip with fixed timestamps (the same model, the same bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def with_metadata(model: bytes, d: ModelDescription) -> bytes:
    """`model` (a converter's .tflite) with `d` as its TFLite Metadata and the labels file appended, as
    tflite-support's MetadataPopulator writes them (module doc). Export-time only: it needs TensorFlow."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    if len(obj.subgraphs) != 1 or len(obj.subgraphs[0].inputs) != 1 or len(obj.subgraphs[0].outputs) != 1:
        raise ValueError("TFLite Metadata is written for one subgraph with one input and one output")
    graph = obj.subgraphs[0]
    dtypes = {schema.TensorType.UINT8: "uint8", schema.TensorType.FLOAT32: "float32"}
    input_dtype = dtypes[graph.tensors[graph.inputs[0]].type]
    output_dtype = dtypes[graph.tensors[graph.outputs[0]].type]
    buffer = schema.BufferT()
    buffer.data = metadata_buffer(d, input_dtype, output_dtype)
    obj.metadata = obj.metadata or []
    entry = next((m for m in obj.metadata if m.name.decode() == METADATA_NAME), None)
    if entry is not None:  # metadata written before: replaced in place, as the populator does
        obj.buffers[entry.buffer] = buffer
    else:
        obj.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = METADATA_NAME, len(obj.buffers) - 1
        obj.metadata.append(entry)
    labels = "".join(f"{label}\n" for label in d.labels).encode("utf-8")
    # Serialising writes the flatbuffer alone: a zip appended before is dropped, the new one appended.
    return flatbuffer_utils.convert_object_to_bytearray(obj) + _zip({LABELS_FILE: labels})


# ---------------------------------------------------------------------------------------------- reading


def _root(buf: bytes, identifier: bytes) -> Table:
    if len(buf) < 8 or buf[4:8] != identifier:
        raise ValueError(f"not a flatbuffer with identifier {identifier.decode()}")
    return Table(buf, struct.unpack_from("<I", buf, 0)[0])


def _offset(t: Table, slot: int) -> int:
    return t.Offset(4 + 2 * slot)


def _string(t: Table, slot: int) -> str | None:
    o = _offset(t, slot)
    return t.String(o + t.Pos).decode("utf-8") if o else None


def _scalar(t: Table, slot: int, flags=flatbuffers.number_types.Uint8Flags) -> int:
    o = _offset(t, slot)
    return t.Get(flags, o + t.Pos) if o else 0


def _child(t: Table, slot: int) -> Table | None:
    o = _offset(t, slot)
    return Table(t.Bytes, t.Indirect(o + t.Pos)) if o else None


def _tables(t: Table | None, slot: int) -> list[Table]:
    o = _offset(t, slot) if t is not None else 0
    if not o:
        return []
    start = t.Vector(o)
    return [Table(t.Bytes, t.Indirect(start + 4 * i)) for i in range(t.VectorLen(o))]


def _vector(t: Table | None, slot: int, fmt: str) -> tuple | None:
    o = _offset(t, slot) if t is not None else 0
    if not o:
        return None
    start, n = t.Vector(o), t.VectorLen(o)
    return struct.unpack_from(f"<{n}{fmt}", t.Bytes, start)


def _tensor(t: Table) -> TensorInfo:
    content = _child(t, TENSOR["content"])
    kind = _scalar(content, CONTENT["content_properties_type"]) if content else 0
    props = _child(content, CONTENT["content_properties"]) if content else None
    color = (
        _scalar(props, IMAGE["color_space"], flatbuffers.number_types.Int8Flags) if kind == IMAGE_PROPERTIES else None
    )
    mean = std = None
    for unit in _tables(t, TENSOR["process_units"]):
        if _scalar(unit, PROCESS_UNIT["options_type"]) == NORMALIZATION_OPTIONS:
            norm = _child(unit, PROCESS_UNIT["options"])
            mean, std = _vector(norm, NORMALIZATION["mean"], "f"), _vector(norm, NORMALIZATION["std"], "f")
    stats = _child(t, TENSOR["stats"])
    files = tuple(
        (_string(f, FILE["name"]) or "", _scalar(f, FILE["type"], flatbuffers.number_types.Int8Flags))
        for f in _tables(t, TENSOR["associated_files"])
    )
    return TensorInfo(
        _string(t, TENSOR["name"]),
        _string(t, TENSOR["description"]),
        kind,
        color,
        mean,
        std,
        _vector(stats, STATS["min"], "f"),
        _vector(stats, STATS["max"], "f"),
        files,
    )


def metadata_bytes(model: bytes) -> bytes | None:
    """The ModelMetadata buffer the model's "TFLITE_METADATA" entry points at; None when it has none."""
    root = _root(model, MODEL_IDENTIFIER)
    buffers = _tables(root, TFL_MODEL["buffers"])
    for entry in _tables(root, TFL_MODEL["metadata"]):
        if _string(entry, TFL_METADATA["name"]) == METADATA_NAME:
            buffer = buffers[_scalar(entry, TFL_METADATA["buffer"], flatbuffers.number_types.Uint32Flags)]
            o = _offset(buffer, TFL_BUFFER["data"])
            return bytes(buffer.Bytes[buffer.Vector(o) : buffer.Vector(o) + buffer.VectorLen(o)]) if o else None
    return None


def parse_metadata(buf: bytes, files: Mapping[str, bytes] | None = None) -> EmbeddedMetadata:
    """A ModelMetadata buffer (and the appended files) as an EmbeddedMetadata; ValueError if it is malformed."""
    root = _root(buf, METADATA_IDENTIFIER)
    subgraphs = _tables(root, MODEL["subgraph_metadata"])
    if len(subgraphs) != 1:
        raise ValueError(f"{len(subgraphs)} subgraph metadata, expected 1")
    inputs = _tables(subgraphs[0], SUBGRAPH["input_tensor_metadata"])
    outputs = _tables(subgraphs[0], SUBGRAPH["output_tensor_metadata"])
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError("expected one input and one output tensor metadata")
    custom = {}
    for entry in _tables(subgraphs[0], SUBGRAPH["custom_metadata"]):
        data = _vector(entry, CUSTOM["data"], "B")
        custom[_string(entry, CUSTOM["name"]) or ""] = bytes(data or ())
    strings = {key: _string(root, MODEL[key]) for key in ("name", "description", "version", "author", "license")}
    return EmbeddedMetadata(
        **strings,
        min_parser_version=_string(root, MODEL["min_parser_version"]),
        input=_tensor(inputs[0]),
        output=_tensor(outputs[0]),
        custom=custom,
        files=dict(files or {}),
        neurocascade=json.loads(custom[CUSTOM_NAME].decode("utf-8")) if CUSTOM_NAME in custom else {},
    )


def appended_files(model: bytes) -> dict[str, bytes]:
    """The files of the zip appended to the model ({} when there is none)."""
    stream = io.BytesIO(model)
    if not zipfile.is_zipfile(stream):
        return {}
    with zipfile.ZipFile(stream) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def read_metadata(model: str | Path | bytes) -> EmbeddedMetadata | None:
    """The TFLite Metadata of a .tflite file (or its bytes); None when it has none; a file that is not a readable
    TFLite model, or whose metadata is malformed, is a one-line UserError naming it."""
    where = "model" if isinstance(model, (bytes, bytearray)) else str(model)
    try:
        data = bytes(model) if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
        buf = metadata_bytes(data)
        return None if buf is None else parse_metadata(buf, appended_files(data))
    except OSError as exc:
        raise UserError(f"{where}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, IndexError, struct.error, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise UserError(f"{where}: unreadable TFLite metadata ({exc}); re-export the run") from None
