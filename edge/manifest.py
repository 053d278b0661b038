"""What the edge runtime checks before it loads anything: the export manifest and the sidecars' values.

No TensorFlow and no LiteRT here (numpy and the class names only), so `predict` stays small.

An export folder (`runs/NAME/export/`) is written whole by `neurocascade.edge.export` into a temporary sibling and swapped in
at the end. Its last file is `export-manifest.json`, one `ExportManifest`:

    {"schema": "neurocascade-export/1", "run": "NAME", "kind": "cascade", "stages": ["gate", "subtype"],
     "created": "2026-12-01T10:00:00Z",
     "files": {"agreement.json": {"bytes": 2311, "sha256": "…"}, "gate.float32.tflite": {…}, …}}

It lists exactly the files the export wrote (per stage `<stage>.json`, `<stage>.float32.tflite`,
`<stage>.int8.tflite`, plus `agreement.json`) with their size and sha256. `verify_export(folder)` refuses, in one
line naming the file: a missing or invalid manifest, a listed file that is missing or whose size or sha256
differs (changed after the export, or copied from another export), and a file the runtime could read
(`*.tflite`, a stage sidecar, `agreement.json`) that the manifest does not list. Other files — edge-bench's
`bench.json`, which it writes into the folder by default, notes, dotfiles — are never read and are ignored.

`check_sidecar(path, sidecar)` checks the values of a sidecar (`<stage>.json`): the keys the runtime reads are
present and typed, the stage is a known one and the file's, `labels` are exactly that stage's classes in the order
of `neurocascade.hierarchy.stages.STAGES`, `classes` are `neurocascade.data.layout.CLASSES`, τ (gate and subtype sidecars) is a finite
number in [0, 1], the input size a positive integer, each model entry has a sha256 and tensor dtypes, and (schema
/2) `output` says whether the models output probabilities or logits.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from neurocascade.data.layout import CLASSES
from neurocascade.edge.outputs import OUTPUTS
from neurocascade.hierarchy.stages import CASCADE_STAGES, STAGES
from neurocascade.errors import UserError
from neurocascade.io import sha256_file, write_json

MANIFEST_FILE = "export-manifest.json"
MANIFEST_SCHEMA = "neurocascade-export/1"
AGREEMENT_FILE = "agreement.json"
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
    """Whether the runtime (or results) could read a file of this name from an export folder."""
    return name.endswith(".tflite") or name == AGREEMENT_FILE or name in {f"{s}.json" for s in STAGES}


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
        if stages != expected[kind]:
            raise bad("stages", f"{stages!r}, a {kind} export has {expected[kind]}")
        files = obj["files"]
        if not isinstance(files, dict):
            raise bad("files", "expected an object of file name → sha256 and bytes")
        want = export_files(stages)
        for name in sorted(want ^ files.keys()):
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
    """Hash the export's files in `folder` and write the manifest there (atomically; call it last)."""
    folder = Path(folder)
    files = {
        name: FileRecord(sha256_file(folder / name), (folder / name).stat().st_size)
        for name in sorted(export_files(stages))
    }
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


def _tensor_entry(path: Path, key: str, value: Any) -> None:
    if not isinstance(value, dict) or not isinstance(value.get("dtype"), str):
        raise UserError(f'{path}: {key}: expected {{"dtype": …, "quantization": …}}; {_REEXPORT}')
    q = value.get("quantization")
    if q is None:
        return
    if (
        not isinstance(q, dict)
        or not _is_number(q.get("scale"))
        or not math.isfinite(q["scale"])
        or q["scale"] <= 0
        or not isinstance(q.get("zero_point"), int)
        or isinstance(q["zero_point"], bool)
    ):
        raise UserError(
            f"{path}: {key}.quantization: expected null or a finite scale > 0 and an integer zero_point; {_REEXPORT}"
        )


def output_kind(sidecar: dict) -> str:
    """What the sidecar's models output: its "output" in schema /2, "probabilities" before (module doc)."""
    return sidecar.get("output") if sidecar.get("schema") != SIDECAR_SCHEMAS[0] else "probabilities"


def check_sidecar(path: str | Path, sidecar: dict, stage: str | None = None) -> dict:
    """Check a sidecar's keys and values (module doc); `stage`: the file's (default: its name's). Returns it."""
    path = Path(path)
    stage = stage or path.name.split(".")[0]

    def bad(key: str, why: str) -> UserError:
        return UserError(f"{path}: {key}: {why}; {_REEXPORT}")

    for key in ("stage", "kind", "labels", "classes", "input", "models"):
        if key not in sidecar:
            raise bad(key, "missing (required)")
    if sidecar["stage"] not in STAGES or sidecar["stage"] != stage:
        raise bad("stage", f"{sidecar['stage']!r}, but this is the {stage!r} sidecar")
    kind = "cascade" if stage in CASCADE_STAGES else "flat"
    if sidecar["kind"] != kind:
        raise bad("kind", f"{sidecar['kind']!r}, a {stage} model belongs to a {kind} export")
    labels = list(STAGES[stage].classes)
    if sidecar["labels"] != labels:
        raise bad("labels", f"{sidecar['labels']!r}, the {stage} model's classes are exactly {labels} in this order")
    if sidecar["classes"] != list(CLASSES):
        raise bad("classes", f"{sidecar['classes']!r}, expected exactly {list(CLASSES)} in this order")
    inp = sidecar["input"]
    if not isinstance(inp, dict) or "size" not in inp:
        raise bad("input.size", "missing (required)")
    if not isinstance(inp["size"], int) or isinstance(inp["size"], bool) or inp["size"] < 1:
        raise bad("input.size", f"{inp['size']!r}, expected a positive integer")
    if "clahe" in inp and not isinstance(inp["clahe"], bool):
        raise bad("input.clahe", f"{inp['clahe']!r}, expected true or false")
    if "clahe_clip" in inp and not (
        _is_number(inp["clahe_clip"]) and math.isfinite(inp["clahe_clip"]) and inp["clahe_clip"] > 0
    ):
        raise bad("input.clahe_clip", f"{inp['clahe_clip']!r}, expected a finite number > 0")
    if "min_side" in inp and not (
        isinstance(inp["min_side"], int) and not isinstance(inp["min_side"], bool) and inp["min_side"] >= 1
    ):
        raise bad("input.min_side", f"{inp['min_side']!r}, expected an integer ≥ 1")
    models = sidecar["models"]
    if not isinstance(models, dict) or not models:
        raise bad("models", "expected an object of model variant → file entry")
    for variant, entry in models.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise bad(f"models.{variant}.file", "missing (required)")
        if not isinstance(entry.get("sha256"), str) or not _SHA256.fullmatch(entry["sha256"]):
            raise bad(f"models.{variant}.sha256", "missing or not 64 lowercase hex digits")
        for tensor in ("input", "output"):
            _tensor_entry(path, f"models.{variant}.{tensor}", entry.get(tensor))
    if output_kind(sidecar) not in OUTPUTS:
        raise bad("output", f"{sidecar.get('output')!r}, expected one of {', '.join(OUTPUTS)}")
    tau = sidecar.get("tau")
    if kind == "cascade":
        if "tau" not in sidecar:
            raise bad("tau", "missing (required in a cascade sidecar)")
        if not _is_number(tau) or not math.isfinite(tau) or not 0.0 <= tau <= 1.0:
            raise bad("tau", f"{tau!r}, expected a finite number in [0, 1]")
    elif tau is not None:
        raise bad("tau", f"{tau!r}, but a flat model has no gate threshold")
    return sidecar
