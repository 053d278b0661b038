"""Hostile model files (issue 14, item 1): no Keras load runs code stored in a run folder.

The payload of every hostile file is a marker file that Keras would create while rebuilding the model (a
`Lambda` whose function writes it, or a module whose import writes it); each refusal test checks both the
one-line `UserError` and that the marker was never written. The `*_payload_is_live` tests load the same
files with plain `keras.models.load_model` and see the marker appear: the hole the loader closes is real.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from neurocascade.errors import UserError
from neurocascade.io import sha256_file
from neurocascade.keras_io import load_keras_model, recorded_sha256
from neurocascade.tf import keras

pytestmark = pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")


def _payload(marker: Path):
    """A Python function that leaves `marker` behind when called: the stand-in for arbitrary code."""
    return eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), x)[1]")


def _tiny(marker: Path | None = None) -> keras.Model:
    """Input(4) → [Lambda writing `marker`] → Dense(3, softmax)."""
    inputs = keras.Input((4,), name="x")
    x = keras.layers.Lambda(_payload(marker), name="payload")(inputs) if marker else inputs
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(x))


def _save_hostile(marker: Path, target) -> None:
    """Save the Lambda model to `target` (a path or an open h5py file); building and saving it call the Lambda,
    so the marker is removed afterwards: from here on it appears only if a load runs the payload."""
    _tiny(marker).save(target if not isinstance(target, Path) else str(target))
    marker.unlink(missing_ok=True)


def _refused(path: Path, match: str, expected_sha256: str | None = None) -> UserError:
    with pytest.raises(UserError, match=match) as err:
        load_keras_model(path, expected_sha256)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    return err.value


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "PAYLOAD-RAN"


@pytest.fixture
def hdf5_gate(tmp_path, marker) -> Path:
    """An HDF5 model with a marker-writing Lambda, saved under the name a run's gate has."""
    path = tmp_path / "models" / "gate.keras"
    path.parent.mkdir()
    _save_hostile(marker, tmp_path / "gate.h5")  # the legacy format, by its suffix
    (tmp_path / "gate.h5").replace(path)
    return path


def test_hdf5_payload_is_live(hdf5_gate, marker):
    keras.models.load_model(str(hdf5_gate), compile=False, safe_mode=True)
    assert marker.exists()  # safe_mode=True does not protect the legacy HDF5 path


def test_hdf5_named_keras_is_refused_and_runs_nothing(hdf5_gate, marker):
    _refused(hdf5_gate, "is an HDF5 file, not a .keras zip archive")
    assert not marker.exists()


def test_hdf5_behind_a_zip_signature_is_refused_and_runs_nothing(tmp_path, marker):
    """An HDF5 file whose user block starts with the zip signature: a check of the first bytes alone would
    let it through, and Keras (which asks `zipfile.is_zipfile`) would take the legacy path and run it."""
    import h5py

    path = tmp_path / "gate.keras"
    with h5py.File(path, "w", userblock_size=512) as fh:
        _save_hostile(marker, fh)
    with open(path, "r+b") as fh:
        fh.write(b"PK\x03\x04")
    assert h5py.is_hdf5(path) and not marker.exists()
    _refused(path, "is not a Keras model")
    assert not marker.exists()
    keras.models.load_model(str(path), compile=False, safe_mode=True)
    assert marker.exists()  # the polyglot is live


def test_zip_keras_with_lambda_is_a_user_error(tmp_path, marker):
    path = tmp_path / "gate.keras"
    _save_hostile(marker, path)
    assert zipfile.is_zipfile(path)
    _refused(path, "refusing to deserialize a Lambda layer")
    assert not marker.exists()


def _with_config(src: Path, dst: Path, edit) -> Path:
    """A copy of the .keras archive `src` whose config.json went through `edit(config)`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            zout.writestr(name, data)
    return dst


def test_zip_keras_naming_a_foreign_module_is_refused_and_imports_nothing(tmp_path, marker, monkeypatch):
    """tf_keras imports whatever module a config entry names, safe_mode or not; the loader allows Keras' own."""
    module = f"nc_payload_{os.getpid()}"
    (tmp_path / f"{module}.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _tiny().save(str(tmp_path / "ok.keras"))
    path = _with_config(
        tmp_path / "ok.keras",
        tmp_path / "gate.keras",
        lambda config: config.update(module=module, class_name="Functional"),
    )
    _refused(path, f"refusing to import module '{module}'")
    assert not marker.exists() and module not in sys.modules
    with pytest.raises(Exception):
        keras.models.load_model(str(path), compile=False, safe_mode=True)
    assert marker.exists()  # plain Keras imported it (and ran it) before failing
    sys.modules.pop(module, None)


def test_keras_load_failures_are_one_line(tmp_path):
    _tiny().save(str(tmp_path / "ok.keras"))
    path = _with_config(
        tmp_path / "ok.keras",
        tmp_path / "gate.keras",
        lambda config: config["config"]["layers"][1].update(class_name="NoSuchLayer"),
    )
    _refused(path, "cannot be loaded as a Keras model: ")
    no_config = tmp_path / "empty.keras"
    with zipfile.ZipFile(no_config, "w") as zf:
        zf.writestr("metadata.json", "{}")
    _refused(no_config, "not a readable Keras model archive")


def test_genuine_model_round_trips(tmp_path):
    model, path = _tiny(), tmp_path / "gate.keras"
    model.save(str(path))
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    loaded = load_keras_model(path, sha256_file(path))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert load_keras_model(path).count_params() == model.count_params()  # no recorded sha256: no check


def test_sha256_mismatch_is_refused(tmp_path):
    path = tmp_path / "gate.keras"
    _tiny().save(str(path))
    _refused(path, "does not match the sha256 the run recorded", expected_sha256="0" * 64)


def test_non_model_files_are_refused(tmp_path):
    junk = tmp_path / "gate.keras"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    _refused(junk, "is not a Keras model")
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    _refused(empty, "is not a Keras model")
    _refused(tmp_path / "missing.keras", "model file missing")
    _refused(tmp_path, "model file missing")  # a folder (a SavedModel, say) is not a model file either


def test_recorded_sha256():
    digest = "ab" * 32
    assert recorded_sha256({"models": {"gate": digest}}, "gate") == digest
    assert recorded_sha256({"models": {"gate": digest}}, "flat") is None
    assert recorded_sha256({"stages": ["gate"]}, "gate") is None  # a run from before the manifest kept hashes
    with pytest.raises(UserError, match="models.gate"):
        recorded_sha256({"models": {"gate": "not-a-hash"}}, "gate")


# The callers: eval's model loading, and `eval` / `export` from the command line.


def test_eval_stage_probabilities_refuses_hdf5_and_checks_the_recorded_sha256(tmp_path, hdf5_gate, marker):
    from neurocascade.eval.run import stage_probabilities

    run, images = hdf5_gate.parents[1], np.zeros((2, 4), np.float32)
    with pytest.raises(UserError, match="HDF5"):
        stage_probabilities(run, "gate", images, "keras", manifest={"stages": ["gate"]})
    assert not marker.exists()
    _tiny().save(str(run / "models" / "flat.keras"))
    probs = stage_probabilities(
        run, "flat", images, "keras", manifest={"models": {"flat": sha256_file(run / "models" / "flat.keras")}}
    )
    assert probs.shape == (2, 3)
    with pytest.raises(UserError, match="does not match the sha256 the run recorded"):
        stage_probabilities(run, "flat", images, "keras", manifest={"models": {"flat": "0" * 64}})


@pytest.fixture(scope="module")
def phantom_run(tmp_path_factory, test_config_path) -> Path:
    """A finished cascade run folder as eval and export read it (config, manifest, τ, models) on a few
    phantoms, without training: the models are tiny stand-ins, enough to reach the model loads."""
    from neurocascade.data.dataset import load_dataset
    from neurocascade.data.phantoms import write_phantom_dataset
    from neurocascade.config import load_config, to_toml

    base = tmp_path_factory.mktemp("hostile-run")
    write_phantom_dataset(base / "phantoms", 12, 64, 0, 0.25, 0.2)
    cfg = load_config(test_config_path)
    ds = load_dataset(cfg, str(base / "phantoms"), pixels=False)
    run = base / "cascade"
    (run / "models").mkdir(parents=True)
    (run / "config.toml").write_text(to_toml(cfg))
    (run / "manifest.json").write_text(
        json.dumps(
            {
                "stages": ["gate", "subtype"],
                "dataset": {"root": ds.root, "fingerprint": ds.fingerprint, "split_hashes": ds.split_hashes()},
            }
        )
    )
    (run / "tau.json").write_text(json.dumps({"tau": 0.5}))
    for stage in ("gate", "subtype"):
        _tiny().save(str(run / "models" / f"{stage}.keras"))
    return run


@pytest.mark.parametrize("command", ["eval", "export"])
def test_cli_refuses_hdf5_gate_in_one_line(command, phantom_run, tmp_path, marker):
    from neurocascade import cli

    run = tmp_path / "cascade"
    shutil.copytree(phantom_run, run)
    _save_hostile(marker, tmp_path / "gate.h5")
    (tmp_path / "gate.h5").replace(run / "models" / "gate.keras")
    result = CliRunner().invoke(cli.main, [command, "--run", str(run)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "gate.keras: is an HDF5 file, not a .keras zip archive" in errors[0], result.output
    assert "Traceback" not in result.output
    assert not marker.exists()
