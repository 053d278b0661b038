"""What the edge runtime checks before it loads anything: the export manifest and the sidecars' values.

No TensorFlow and no LiteRT here (numpy and the class names only), so `predict` stays small.

An export folder (`runs/NAME/export/`) is written whole by `neurocascade.edge.export` into a temporary sibling and swapped in
at the end. Its last file is `export-manifest.json`, one `ExportManifest`:

    {"schema": "neurocascade-export/1", "run": "NAME", "kind": "cascade", "stages": ["gate", "subtype"],
     "created": "2026-12-01T10:00:00Z",
     "files": {"agreement.json": {"bytes": 2311, "sha256": "…"}, "gate.float32.tflite": {…}, …}}

It lists exactly the files the export wrote (per stage `<stage>.json`, `<stage>.float32.tflite`,
`<stage>.int8.tflite`, plus `agreement.json` and, since exports write one, `MODEL_CARD.md`) with their size and
sha256. `verify_export(folder)` refuses, in one line naming the file: a missing or invalid manifest, a listed
file that is missing or whose size or sha256 differs (changed after the export, or copied from another export),
and a file the runtime or a reader could take for the export's (`*.tflite`, a stage sidecar, `agreement.json`,
`MODEL_CARD.md`) that the manifest does not list. Other files — edge-bench's `bench.json`, which it writes into
the folder by default, notes, dotfiles — are never read and are ignored.

`Sidecar` is a sidecar (`<stage>.json`), written and read through `Sidecar.write` / `Sidecar.read`
(`neurocascade.artifacts`); its `from_json` checks the values: every key known, those the runtime reads present
and typed, the stage is a known one and the file's, `labels` are exactly that stage's classes in the order
of `neurocascade.hierarchy.stages.EXPORT_STAGES` (the trained stages and, with `export.one_graph`, "one_graph": the
four classes), `classes` are `neurocascade.data.layout.CLASSES`, τ (a cascade's sidecars) is a finite
number in [0, 1], the input size a positive integer, each model entry has a sha256 and tensor dtypes (and, when
it records its `quantization`, "int8" or "int16x8", the dtypes of that mode and a known `calibration`), and (schema
/2) `output` says whether the models output probabilities or logits.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

from neurocascade.data.layout import CLASSES
from neurocascade.edge.outputs import OUTPUTS
from neurocascade.hierarchy.stages import CASCADE_STAGES, EXPORT_STAGES, ONE_GRAPH
from neurocascade.artifacts import (
    Artifact,
    ArtifactError,
    Fields,
    Invalid,
    count,
    flag,
    json_value,
    list_of,
    map_of,
    nonempty,
    number,
    one_of,
    optional,
    permutation_of,
    positive,
    probability,
    record,
    text,
)
from neurocascade.artifacts import seconds as seconds_check
from neurocascade.artifacts import version as artifact_version
from neurocascade.config import CALIBRATION_DRAWS, EXPORT_CALIBRATIONS, EXPORT_QUANTIZATIONS, QUANTIZED_MODES
from neurocascade.errors import UserError
from neurocascade.io import sha256_file, write_json

MANIFEST_FILE = "export-manifest.json"
MANIFEST_SCHEMA = "neurocascade-export/1"
AGREEMENT_FILE = "agreement.json"
MODEL_CARD_FILE = "MODEL_CARD.md"
# Listed (and then verified) when present: an export made before exports wrote a model card still verifies.
OPTIONAL_FILES = frozenset({MODEL_CARD_FILE})
MODEL_VARIANTS = ("int8", "float32")
# Sidecar schemas the runtime reads. /2 adds "output": "probabilities" | "logits" (both variants of a stage); a /1
# sidecar's "output" is a description and its models output probabilities.
SIDECAR_SCHEMA = "neurocascade-edge/2"
SIDECAR_SCHEMAS = ("neurocascade-edge/1", SIDECAR_SCHEMA)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_REEXPORT = "re-export the run (python cli.py export --run RUN)"


def export_files(stages: tuple[str, ...] | list[str]) -> set[str]:
    """The files an export of `stages` writes, besides the manifest."""
    return {AGREEMENT_FILE} | {
        f"{s}.{suffix}" for s in stages for suffix in ("json", *(f"{v}.tflite" for v in MODEL_VARIANTS))
    }


def _read_by_runtime(name: str) -> bool:
    """Whether the runtime, results or a reader of the model card could read a file of this name from an export
    folder (so it must be one the manifest vouches for)."""
    return (
        name.endswith(".tflite")
        or name == AGREEMENT_FILE
        or name in OPTIONAL_FILES
        or name in {f"{s}.json" for s in EXPORT_STAGES}
    )


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


@dataclass(frozen=True)
class FileRecord:
    sha256: str
    bytes: int


@dataclass(frozen=True)
class ExportManifest:
    """Every file of one export with its size and sha256 (module doc); written last, read first."""

    run: str
    kind: str
    stages: tuple[str, ...]
    created: str
    files: Mapping[str, FileRecord] = field(default_factory=dict)
    schema: str = MANIFEST_SCHEMA

    def to_json(self) -> dict:
        return {
            "schema": self.schema,
            "run": self.run,
            "kind": self.kind,
            "stages": list(self.stages),
            "created": self.created,
            "files": {name: {"sha256": r.sha256, "bytes": r.bytes} for name, r in sorted(self.files.items())},
        }

    @classmethod
    def from_json(cls, obj: Any, source: str | Path = MANIFEST_FILE) -> "ExportManifest":
        """Parse and check a manifest's dict; anything missing, unknown or out of range is a one-line UserError."""

        def bad(key: str, why: str) -> UserError:
            return UserError(f"{source}: {key}: {why}; {_REEXPORT}")

        if not isinstance(obj, dict):
            raise UserError(f"{source}: not an export manifest (a JSON object expected); {_REEXPORT}")
        if obj.get("schema") != MANIFEST_SCHEMA:
            raise bad("schema", f"{obj.get('schema')!r}, expected {MANIFEST_SCHEMA!r}")
        keys = {"schema", "run", "kind", "stages", "created", "files"}
        missing, unknown = sorted(keys - obj.keys()), sorted(obj.keys() - keys)
        if missing:
            raise bad(missing[0], "missing")
        if unknown:
            raise bad(unknown[0], "unknown key")
        if not isinstance(obj["run"], str) or not obj["run"]:
            raise bad("run", "expected the run's name")
        if not isinstance(obj["created"], str):
            raise bad("created", "expected a UTC timestamp")
        kind, stages = obj["kind"], obj["stages"]
        expected = {"cascade": list(CASCADE_STAGES), "flat": ["flat"]}
        if kind not in expected:
            raise bad("kind", f"{kind!r}, expected one of {', '.join(expected)}")
        if stages not in (expected[kind], *([[*CASCADE_STAGES, ONE_GRAPH]] if kind == "cascade" else [])):
            also = f" (and {ONE_GRAPH!r} with export.one_graph)" if kind == "cascade" else ""
            raise bad("stages", f"{stages!r}, a {kind} export has {expected[kind]}{also}")
        files = obj["files"]
        if not isinstance(files, dict):
            raise bad("files", "expected an object of file name → sha256 and bytes")
        want = export_files(stages)
        for name in sorted(want ^ (files.keys() - OPTIONAL_FILES)):
            raise bad(f"files.{name}", "not listed" if name in want else "not a file this export writes")
        records = {}
        for name, rec in files.items():
            if (
                not isinstance(rec, dict)
                or rec.keys() != {"sha256", "bytes"}
                or not isinstance(rec["sha256"], str)
                or not _SHA256.fullmatch(rec["sha256"])
                or not isinstance(rec["bytes"], int)
                or isinstance(rec["bytes"], bool)
                or rec["bytes"] < 0
            ):
                raise bad(f"files.{name}", 'expected {"sha256": 64 lowercase hex digits, "bytes": size ≥ 0}')
            records[name] = FileRecord(rec["sha256"], rec["bytes"])
        return cls(obj["run"], kind, tuple(stages), obj["created"], records)


def write_manifest(
    folder: str | Path, run: str, kind: str, stages: tuple[str, ...] | list[str], created: str
) -> ExportManifest:
    """Hash the export's files (and the optional ones present) in `folder` and write the manifest there
    (atomically; call it last)."""
    folder = Path(folder)
    names = export_files(stages) | {name for name in OPTIONAL_FILES if (folder / name).is_file()}
    files = {name: FileRecord(sha256_file(folder / name), (folder / name).stat().st_size) for name in sorted(names)}
    manifest = ExportManifest(run, kind, tuple(stages), created, files)
    ExportManifest.from_json(manifest.to_json(), folder / MANIFEST_FILE)  # the writer obeys the reader
    write_json(folder / MANIFEST_FILE, manifest.to_json())
    return manifest


def read_manifest(folder: str | Path) -> ExportManifest:
    """The folder's manifest, checked; a missing or unreadable one is a one-line UserError."""
    path = Path(folder) / MANIFEST_FILE
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(
            f"{path}: export manifest not found (an incomplete export, or one made before exports "
            f"were verified); {_REEXPORT}"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{path}: not a readable export manifest ({first}); {_REEXPORT}") from None
    return ExportManifest.from_json(obj, path)


def verify_file(folder: Path, manifest: ExportManifest, name: str) -> None:
    """`folder/name` is listed in the manifest and has its size and sha256."""
    path = folder / name
    record = manifest.files.get(name)
    if record is None:
        raise UserError(
            f"{path}: not listed in {MANIFEST_FILE} (not written by this export); {_REEXPORT} or remove the file"
        )
    if not path.is_file():
        raise UserError(
            f"{path}: listed in {MANIFEST_FILE} but missing; copy the export folder as a whole, or {_REEXPORT}"
        )
    if path.stat().st_size != record.bytes or sha256_file(path) != record.sha256:
        raise UserError(
            f"{path}: sha256 differs from {MANIFEST_FILE} (changed after the export, or copied "
            f"from another export); {_REEXPORT}"
        )


def verify_export(folder: str | Path) -> ExportManifest:
    """Check the whole export folder against its manifest (module doc) and return the manifest."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: export directory not found (run the export first)")
    manifest = read_manifest(folder)
    for path in sorted(folder.iterdir()):
        if path.name not in manifest.files and _read_by_runtime(path.name) and not path.name.startswith("."):
            raise UserError(
                f"{path}: not listed in {MANIFEST_FILE} (not written by this export); {_REEXPORT} or remove the file"
            )
    for name in sorted(manifest.files):
        verify_file(folder, manifest, name)
    return manifest


def manifest_beside(path: Path) -> bool:
    return os.path.lexists(path.parent / MANIFEST_FILE)


# ---------------------------------------------------------------------------------------------- sidecars


def _quantization(v: Any) -> dict | None:
    if v is None:
        return None
    if (
        not isinstance(v, dict)
        or v.keys() != {"scale", "zero_point"}
        or not _is_number(v["scale"])
        or not math.isfinite(v["scale"])
        or v["scale"] <= 0
        or not isinstance(v["zero_point"], int)
        or isinstance(v["zero_point"], bool)
    ):
        raise Invalid("expected null or a finite scale > 0 and an integer zero_point")
    return dict(v)


def _tensor(f: Fields) -> dict:
    return {"dtype": f.take("dtype", text), "quantization": f.take("quantization", _quantization)}


def _sha256(v: Any) -> str:
    if not isinstance(v, str) or not _SHA256.fullmatch(v):
        raise Invalid("expected 64 lowercase hex digits")
    return v


# The tensor dtypes a quantized model's input and output may have in each mode (`neurocascade.edge.precision`): an
# int8 model whose last op `export.float_ops` keeps in float outputs float32
_ENDS = {"int8": (("uint8",), ("uint8", "float32")), "int16x8": (("int16",), ("int16",))}


def _model_entry(f: Fields) -> dict:
    entry = {
        "file": f.take("file", nonempty),
        "sha256": f.take("sha256", _sha256),
        "input": f.take("input", record(_tensor)),
        "output": f.take("output", record(_tensor)),
    }
    for key, check in (
        ("bytes", count),
        ("method", one_of("qat", "ptq")),
        ("quantization", one_of(*QUANTIZED_MODES)),
        ("calibration", one_of(*CALIBRATION_DRAWS)),
        ("representative_samples", count),
        ("float_ops", list_of(text)),
        ("float_layers", list_of(text)),
    ):
        if f.has(key):
            entry[key] = f.take(key, check)
    mode = entry.get("quantization")
    for end, allowed in zip(("input", "output"), _ENDS[mode]) if mode else ():
        if entry[end]["dtype"] not in allowed:
            raise f.error(f"{end}.dtype", f"{entry[end]['dtype']!r}, but an {mode} model's is {' or '.join(allowed)}")
    if mode == "int16x8" and (entry.get("float_ops") or entry.get("float_layers")):
        raise f.error("float_ops", "only an int8 model keeps ops in float")
    return entry


def _input(f: Fields) -> dict:
    def clip(v: Any) -> float:
        if not _is_number(v) or not math.isfinite(v) or v <= 0:
            raise Invalid("expected a finite number > 0")
        return v

    out = {"size": f.take("size", positive)}
    for key, check in (
        ("shape", list_of(positive)),
        ("dtype", text),
        ("preprocessing", text),
        ("clahe", flag),
        ("clahe_clip", clip),
        ("min_side", positive),
    ):
        if f.has(key):
            out[key] = f.take(key, check)
    return out


def _models(v: Any) -> dict:
    if not isinstance(v, dict) or not v:
        raise Invalid("expected an object of model variant → file entry")
    return map_of(record(_model_entry))(v)


_SIDECAR_OPTIONAL = ("output_meaning", "tau_meaning", "source", "qat", "packages")


@dataclass(frozen=True)
class Sidecar(Artifact):
    """`<stage>.json`: what the runtime needs to run one stage's models (module doc), value-checked."""

    WHAT: ClassVar[str] = "sidecar"

    stage: str
    kind: str
    labels: tuple[str, ...]
    classes: tuple[str, ...]
    input: Mapping[str, Any]
    models: Mapping[str, Mapping[str, Any]]
    output: str | None = None  # schema /2: "probabilities" or "logits"; /1: a description of the output
    tau: float | None = None
    schema: str = SIDECAR_SCHEMA
    output_meaning: str | None = None
    tau_meaning: str | None = None
    source: Mapping[str, Any] | None = None
    qat: Mapping[str, Any] | None = None
    packages: Mapping[str, Any] | None = None

    @property
    def output_kind(self) -> str:
        """What the models output: `output` in schema /2, "probabilities" before (module doc)."""
        return "probabilities" if self.schema == SIDECAR_SCHEMAS[0] else self.output

    def to_json(self) -> dict:
        obj = {
            "schema": self.schema,
            "stage": self.stage,
            "kind": self.kind,
            "labels": list(self.labels),
            "classes": list(self.classes),
            "input": dict(self.input),
            "output": self.output,
            "models": {k: dict(v) for k, v in self.models.items()},
        }
        if self.tau is not None:
            obj["tau"] = self.tau
        for key in _SIDECAR_OPTIONAL:  # the descriptions when there are any; the records always (qat: null)
            if getattr(self, key) is not None or not key.endswith("meaning"):
                obj[key] = getattr(self, key)
        return obj

    @classmethod
    def from_json(cls, obj: Any, source: str | Path, stage: str | None = None) -> "Sidecar":
        """Check a sidecar's keys and values (module doc); `stage`: the file's (default: its name's)."""
        path = Path(source)
        stage = stage or path.name.split(".")[0]
        try:
            if not isinstance(obj, dict) or obj.get("schema") not in SIDECAR_SCHEMAS:
                expected = " or ".join(map(repr, SIDECAR_SCHEMAS))
                raise ArtifactError(f"{path}: not a NeuroCascade sidecar (expected schema {expected})")
            return cls._parse(Fields(obj, path), stage)
        except ArtifactError as exc:
            raise ArtifactError(f"{exc}; {_REEXPORT}") from None

    @classmethod
    def _parse(cls, f: Fields, stage: str) -> "Sidecar":
        schema = f.take("schema", text)
        for key in ("stage", "kind", "labels", "classes", "input", "models"):
            if not f.has(key):
                raise f.error(key, "missing (required)")
        got = f.take("stage", lambda v: v)
        if got not in EXPORT_STAGES or got != stage:
            raise f.error("stage", f"{got!r}, but this is the {stage!r} sidecar")
        kind = "cascade" if stage in (*CASCADE_STAGES, ONE_GRAPH) else "flat"
        f.take("kind", one_of(kind))
        labels = f.take("labels", permutation_of(EXPORT_STAGES[stage].classes, exact_order=True))
        classes = f.take("classes", permutation_of(CLASSES, exact_order=True))
        inp = f.take("input", record(_input))
        models = f.take("models", _models)
        output = f.take("output", one_of(*OUTPUTS) if schema == SIDECAR_SCHEMA else optional(text), None)
        if schema == SIDECAR_SCHEMA and output is None:
            raise f.error("output", f"None, expected one of {', '.join(map(repr, OUTPUTS))}")
        if kind == "cascade":
            tau = f.take("tau", probability)
        else:
            tau = f.take("tau", lambda v: v, None)
            if tau is not None:
                raise f.error("tau", f"{tau!r}, but a flat model has no gate threshold")
        extra = {
            key: f.take(key, optional(text if key.endswith("meaning") else json_value), None)
            for key in _SIDECAR_OPTIONAL
        }
        f.done()
        return cls(stage, kind, tuple(labels), tuple(classes), inp, models, output, tau, schema, **extra)


# ---------------------------------------------------------------------------------------------- agreement


def _candidate(f: Fields) -> dict:
    """One precision "auto" weighed (or the one configured): validation top-1 agreement, 1-thread ms, bytes."""
    checks = {"agreement": optional(probability), "ms": seconds_check, "bytes": count}
    return {key: f.take(key, check) for key, check in checks.items() if f.has(key)}


def _head_shift(f: Fields) -> dict:
    """`head_bias_correction`: how many pooled features the INT8 head corrects, and the median shift's size."""
    return {"features": f.take("features", count), "median_shift_over_std": f.take("median_shift_over_std", number)}


def _head_refit(f: Fields) -> dict:
    """`head_refit`: the training images and epochs the INT8 head was refitted on, the validation top-1 agreement
    before it, and whether the refitted head was installed (not when it agreed less; files before this: it was)."""
    return {
        "images": f.take("images", count),
        "epochs": f.take("epochs", count),
        "agreement_before": f.take("agreement_before", optional(probability)),
        "kept": f.take("kept", flag, True),
    }


def _named(read: Callable[[Fields], dict], names: tuple[str, ...], what: str) -> Callable[[Any], dict]:
    """An object whose keys are among `names` (each one `what`), each value a record `read` takes."""

    def check(v: Any) -> dict:
        out = map_of(record(read))(v)
        for name in out:
            if name not in names:
                raise Invalid(f"not {what} (expected {', '.join(names)})", (name,), name)
        return out

    return check


# `candidates`: the quantized modes tried, and "float32" when its latency was the floor
_candidates = _named(_candidate, (*QUANTIZED_MODES, "float32"), "a precision")
# `calibration_candidates` ("auto"): each calibration draw tried and its validation top-1 agreement
_calibration_candidates = _named(
    lambda f: {"agreement": f.take("agreement", optional(probability))}, CALIBRATION_DRAWS, "a calibration draw"
)


def _agreement_entry(f: Fields) -> dict:
    """One model's row of agreement.json (neurocascade.edge.export); every key optional but the count, each one typed."""
    checks = {
        "n_val": count,
        "int8_top1_agreement": optional(probability),
        "tau_decision_agreement": probability,
        "keras_macro_f1": optional(probability),
        "int8_macro_f1": optional(probability),
        "macro_f1_diff": optional(number),
        "float_max_abs_prob_diff": optional(probability),
        "int8_max_abs_prob_diff": optional(probability),
        "subtype_ran": count,
        "keras_bytes": count,
        "float32_bytes": count,
        "int8_bytes": count,
        "float32_to_int8_ratio": number,
        "keras_to_int8_ratio": number,
        "seconds": map_of(seconds_check),
        "qat_quantized_layers": json_value,
        "quantization": one_of(*QUANTIZED_MODES),
        "quantization_reason": nonempty,
        "calibration": one_of(*CALIBRATION_DRAWS),
        "calibration_reason": nonempty,
        "calibration_candidates": _calibration_candidates,
        "representative_samples": count,
        "candidates": _candidates,
        "head_bias_correction": record(_head_shift),
        "head_refit": record(_head_refit),
    }
    entry = {"n_val": f.take("n_val", count)}
    entry.update({key: f.take(key, check) for key, check in checks.items() if key != "n_val" and f.has(key)})
    return entry


@dataclass(frozen=True)
class Agreement(Artifact):
    """`export/agreement.json`: INT8 and float32 TFLite against Keras on the validation split, per model."""

    WHAT: ClassVar[str] = "export agreement report"
    VERSION: ClassVar[int] = 1

    run: str
    kind: str
    tau: float | None
    method: str
    min_agreement: float
    models: Mapping[str, Mapping[str, Any]]
    flagged: tuple[str, ...] = ()
    output: str | None = None  # absent before export.output existed (probabilities)
    float_ops: tuple[str, ...] | None = None
    packages: Mapping[str, Any] | None = None
    schema_version: int = VERSION
    calibration: str | None = None  # absent before export.calibration and export.quantization existed
    quantization: str | None = None
    equalize: bool | None = None  # absent before export.equalize existed (false)
    bias_correction: bool | None = None  # absent before export.bias_correction existed (false)
    float_layers: tuple[str, ...] | None = None  # absent unless export.float_layers names some

    def to_json(self) -> dict:
        obj = {
            "schema_version": self.schema_version,
            "run": self.run,
            "kind": self.kind,
            "tau": self.tau,
            "method": self.method,
            "min_agreement": self.min_agreement,
            "models": {k: dict(v) for k, v in self.models.items()},
            "flagged": list(self.flagged),
            "packages": self.packages,
        }
        if self.output is not None:
            obj["output"] = self.output
        for key in ("float_ops", "float_layers"):
            if getattr(self, key) is not None:
                obj[key] = list(getattr(self, key))
        for key in ("calibration", "quantization", "equalize", "bias_correction"):
            if getattr(self, key) is not None:
                obj[key] = getattr(self, key)
        return obj

    @classmethod
    def from_json(cls, obj: Any, source: str | Path) -> "Agreement":
        f = Fields(obj, source)
        version = artifact_version(f, "schema_version", (cls.VERSION,))
        run, kind = f.take("run", nonempty), f.take("kind", one_of("cascade", "flat"))
        tau = f.take("tau", probability if kind == "cascade" else one_of(None))
        method, min_agreement = f.take("method", one_of("qat", "ptq")), f.take("min_agreement", probability)
        known = (*CASCADE_STAGES, "cascade", ONE_GRAPH) if kind == "cascade" else ("flat",)
        models = f.take("models", map_of(record(_agreement_entry)))
        for name in models:
            if name not in known:
                raise f.error(f"models.{name}", f"not a model of a {kind} export ({', '.join(known)})")
        flagged = f.take("flagged", list_of(one_of(*models)))
        output = f.take("output", one_of(*OUTPUTS), None)
        float_ops = f.take("float_ops", list_of(text), None)
        float_layers = f.take("float_layers", list_of(text), None)
        packages = f.take("packages", optional(json_value), None)
        calibration = f.take("calibration", one_of(*EXPORT_CALIBRATIONS), None)
        quantization = f.take("quantization", one_of(*EXPORT_QUANTIZATIONS), None)
        equalize = f.take("equalize", flag, None)
        bias_correction = f.take("bias_correction", flag, None)
        f.done()
        return cls(
            run,
            kind,
            tau,
            method,
            min_agreement,
            models,
            tuple(flagged),
            output,
            None if float_ops is None else tuple(float_ops),
            packages,
            version,
            calibration,
            quantization,
            equalize,
            bias_correction,
            None if float_layers is None else tuple(float_layers),
        )
