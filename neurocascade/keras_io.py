"""The one way to load a Keras model file from a run folder: nothing in the file gets to run Python.

`keras.models.load_model` alone is not safe on a file someone else may have written:
- a file named `.keras` that is not a zip archive (an HDF5 file, say) goes down Keras' legacy loader, which
  ignores `safe_mode`, so a `Lambda` layer stored in it runs its Python code while the model is rebuilt;
- even in a zip `.keras` under `safe_mode=True`, tf_keras imports any module a config entry's `"module"`
  names (importing runs that module's top-level code) before it looks for the class.
So the file is copied once into a private folder and every check and the load run on that copy (the file
cannot be swapped between check and load): it must be a zip archive, match the sha256 the run recorded,
and name only Keras' own modules and no Lambda in its `config.json`; then Keras loads it with
`safe_mode=True`. Any refusal or load failure is one `UserError` line naming the file.

    model = load_keras_model(run / "models" / "gate.keras", recorded_sha256(manifest, "gate"))
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from neurocascade.errors import UserError
from neurocascade.io import sha256_file
from neurocascade.tf import keras

ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
KERAS_MODULES = ("keras", "tf_keras")  # the only packages a config entry may name (and their submodules)
CODE_CLASSES = {"Lambda", "__lambda__"}  # objects whose config carries Python code
LAMBDA_REFUSED = "refusing to deserialize a Lambda layer (it would run Python code stored in the file)"
_KERAS_LAMBDA = re.compile(r"deserialization of a [^.]*lambda", re.IGNORECASE)  # Keras' own safe_mode refusals
_SHA256 = re.compile(r"[0-9a-f]{64}")


def recorded_sha256(manifest: dict, stage: str) -> str | None:
    """The sha256 of `models/<stage>.keras` as the run's manifest.json records it; None for runs made before
    the manifest recorded model hashes (those load without the check)."""
    models = manifest.get("models", {})
    if not isinstance(models, dict):
        raise UserError(f"manifest.json: models is {models!r}, not a table of sha256 per model")
    value = models.get(stage)
    if value is not None and not (isinstance(value, str) and _SHA256.fullmatch(value)):
        raise UserError(f"manifest.json: models.{stage} is {value!r}, not a sha256 hex digest")
    return value


def _refuse(path: Path, reason: str) -> UserError:
    return UserError(f"{path}: {reason}")


def _check_format(path: Path, copy: Path) -> None:
    with open(copy, "rb") as fh:
        head = fh.read(8)
    if head.startswith(HDF5_MAGIC):
        raise _refuse(
            path,
            "is an HDF5 file, not a .keras zip archive; refusing to load it (Keras' legacy HDF5 "
            "loader would run any Python code stored in it)",
        )
    if not head.startswith(ZIP_MAGIC) or not zipfile.is_zipfile(copy):
        raise _refuse(path, "is not a Keras model (a .keras file is a zip archive); refusing to load it")


def _code_in_config(node: object) -> str | None:
    """Why the model config would run code on loading (a Lambda, a module outside Keras), or None."""
    if isinstance(node, dict):
        if node.get("class_name") in CODE_CLASSES:
            return LAMBDA_REFUSED
        module = node.get("module")
        if module is not None and not (isinstance(module, str) and module.split(".")[0] in KERAS_MODULES):
            return f"refusing to import module {module!r} named in the model config (only Keras' own are allowed)"
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        reason = _code_in_config(child)
        if reason:
            return reason
    return None


def _check_config(path: Path, copy: Path) -> None:
    try:
        with zipfile.ZipFile(copy) as archive:
            config = json.loads(archive.read("config.json"))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise _refuse(path, f"not a readable Keras model archive (config.json: {_one_line(exc)})") from None
    reason = _code_in_config(config)
    if reason:
        raise _refuse(path, reason)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + " …"


def load_keras_model(path: Path, expected_sha256: str | None = None) -> keras.Model:
    """Load `path` (uncompiled) so that nothing stored in the file can execute (see the module doc).

    Refuses, with one `UserError` line naming the file: a missing file, anything but a zip `.keras` archive
    (HDF5 included), a sha256 other than `expected_sha256` (when given), a Lambda layer or a non-Keras module
    in the model config, and any error Keras raises while loading.
    """
    path = Path(path)
    if not path.is_file():
        raise _refuse(path, "model file missing")
    with tempfile.TemporaryDirectory(prefix="neurocascade-model-") as tmp:
        copy = Path(tmp) / "model.keras"  # Keras takes its zip (safe_mode) path only for a name ending in .keras
        try:
            shutil.copyfile(path, copy)
        except OSError as exc:
            raise _refuse(path, f"cannot read the model file ({_one_line(exc)})") from None
        _check_format(path, copy)
        if expected_sha256 is not None:
            actual = sha256_file(copy)
            if actual != expected_sha256:
                raise _refuse(
                    path,
                    f"sha256 {actual} does not match the sha256 the run recorded in manifest.json "
                    f"({expected_sha256}); the file changed after training",
                )
        _check_config(path, copy)
        try:
            return keras.models.load_model(str(copy), compile=False, safe_mode=True)
        except Exception as exc:  # a bad file is the user's to fix; show why in one line, no traceback
            reason = _one_line(exc)
            if _KERAS_LAMBDA.search(reason):
                reason = LAMBDA_REFUSED
            raise _refuse(path, f"cannot be loaded as a Keras model: {reason}") from exc
