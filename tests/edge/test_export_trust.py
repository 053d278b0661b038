"""Issue 14, items 4 and 5: the edge loader trusts nothing in `export/`, and an export is all or nothing.

Hostile and careless exports, each refused in one line naming the file before anything is loaded: a model with
bytes flipped, a model (or model + sidecar) copied from another export of the same run, τ NaN / −5 / 1.5, permuted
labels, a sidecar without `input` or `labels`, a missing or invalid manifest, a file the manifest does not list,
a mixed folder (new gate, old subtype, stale agreement.json). Sidecar edits are resealed (conftest.py `reseal`:
the manifest rewritten to match, as a deliberate forger would) so the sidecar checks are tested on their own;
unsealed, the manifest refuses them first. A re-export killed after its first model leaves the previous export
intact and usable; the next export removes what a killed one left.

"Another export" is `ptq_cascade`: the session's cascade run copied and re-exported post-training (its gate differs
from the session's QAT gate), with a killed export's leftovers planted first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from neurocascade import cli
from neurocascade.data.layout import CLASSES
from neurocascade.data.phantoms import make_phantom
from neurocascade.edge.export import _fresh_folder, _swap_in, export_run
from neurocascade.edge.manifest import (
    MANIFEST_FILE,
    MANIFEST_SCHEMA,
    MODEL_CARD_FILE,
    ExportManifest,
    export_files,
    read_manifest,
    verify_export,
)
from neurocascade.edge.predict import load_predictor, predict_paths
from neurocascade.edge.runtime import Cascade, FlatModel, load_model, read_sidecar
from neurocascade.errors import UserError
from neurocascade.io import sha256_file

STAGE_FILES = {"cascade": ("gate", "subtype"), "flat": ("flat",)}


def _one_line(call, *fragments: str) -> str:
    with pytest.raises(UserError) as err:
        call()
    text = str(err.value)
    assert "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, text
    return text


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir())}


def _images(n: int = 6) -> np.ndarray:
    from neurocascade.edge.preprocess import to_model_input

    return np.stack(
        [to_model_input(make_phantom(CLASSES[k % 4], np.random.default_rng(200 + k), 64), 32) for k in range(n)]
    )


def _copy_export(exported, kind: str, tmp_path: Path, name: str = "export") -> Path:
    out = tmp_path / name
    shutil.copytree(exported[kind][0] / "export", out)
    return out


def _edit_sidecar(folder: Path, stage: str, edit) -> None:
    path = folder / f"{stage}.json"
    sidecar = json.loads(path.read_text())
    edit(sidecar)
    path.write_text(json.dumps(sidecar))  # json.dumps writes NaN for float("nan"), as a careless edit would


@pytest.fixture(scope="module")
def ptq_cascade(trained_runs, exported, tmp_path_factory) -> dict:
    """The cascade run copied and re-exported with export.qat=false, over a killed export's leftovers."""
    run = tmp_path_factory.mktemp("trust") / "cascade-ptq"
    shutil.copytree(trained_runs["cascade"], run)
    dead = _dead_pid()
    leftover = run / f"export.tmp-{dead}"
    leftover.mkdir()
    (leftover / "gate.int8.tflite").write_bytes(b"half a model")  # what a kill -9 mid-export leaves
    before = _snapshot(run / "export")
    export_run(run, overrides=["export.qat=false"])
    return {"run": run, "leftover": leftover, "before": before}


# ---------------------------------------------------------------------------------------------- the manifest


def test_export_writes_a_manifest_of_every_file(exported):
    for kind, stages in STAGE_FILES.items():
        folder = exported[kind][0] / "export"
        raw = json.loads((folder / MANIFEST_FILE).read_text())
        assert raw["schema"] == MANIFEST_SCHEMA and raw["kind"] == kind and raw["stages"] == list(stages)
        assert raw["run"] == exported[kind][0].name
        on_disk = {p.name for p in folder.iterdir()} - {MANIFEST_FILE, "bench.json"}
        assert set(raw["files"]) == export_files(stages) | {MODEL_CARD_FILE} == on_disk
        for name, record in raw["files"].items():
            assert record == {"sha256": sha256_file(folder / name), "bytes": (folder / name).stat().st_size}
        manifest = verify_export(folder)
        assert ExportManifest.from_json(manifest.to_json()) == manifest == read_manifest(folder)


@pytest.mark.parametrize(
    "edit,fragment",
    [
        (lambda m: m.update(schema="neurocascade-export/0"), "schema: 'neurocascade-export/0'"),
        (lambda m: m.pop("files"), "files: missing"),
        (lambda m: m.update(extra=1), "extra: unknown key"),
        (lambda m: m.update(kind="ensemble"), "kind: 'ensemble'"),
        (lambda m: m.update(stages=["subtype", "gate"]), "stages:"),
        (lambda m: m["files"].pop("subtype.int8.tflite"), "files.subtype.int8.tflite: not listed"),
        (
            lambda m: m["files"].update({"flat.json": m["files"]["gate.json"]}),
            "files.flat.json: not a file this export",
        ),
        (lambda m: m["files"]["gate.json"].update(sha256="0" * 63), "files.gate.json: expected"),
        (lambda m: m["files"]["gate.json"].update(bytes=-1), "files.gate.json: expected"),
    ],
)
def test_an_invalid_manifest_is_refused_in_one_line(exported, tmp_path, edit, fragment):
    folder = _copy_export(exported, "cascade", tmp_path)
    raw = json.loads((folder / MANIFEST_FILE).read_text())
    edit(raw)
    (folder / MANIFEST_FILE).write_text(json.dumps(raw))
    _one_line(lambda: Cascade.load(folder), MANIFEST_FILE, fragment)
    _one_line(lambda: load_model(folder / "gate.int8.tflite"), MANIFEST_FILE, fragment)


def test_a_missing_or_unreadable_manifest_is_refused(exported, tmp_path):
    from neurocascade.edge.bench import run_bench

    cascade, flat = _copy_export(exported, "cascade", tmp_path), _copy_export(exported, "flat", tmp_path, "flat")
    (cascade / MANIFEST_FILE).unlink()
    (flat / MANIFEST_FILE).write_text("{ not json")
    _one_line(lambda: Cascade.load(cascade), MANIFEST_FILE, "export manifest not found")
    _one_line(lambda: load_predictor(cascade), "export manifest not found")
    _one_line(lambda: run_bench(cascade, None, [1], runs=1, warmup=0), "export manifest not found")
    _one_line(lambda: FlatModel.load(flat), "not a readable export manifest")
    # A single model without a manifest beside it is still checked against its sidecar's sha256 (next tests).
    assert load_model(cascade / "gate.int8.tflite").labels == ("tumor", "no_tumor")


# ---------------------------------------------------------------------------------------------- tampered files


def test_a_model_with_flipped_bytes_is_refused(exported, tmp_path):
    folder = _copy_export(exported, "cascade", tmp_path)
    path = folder / "gate.int8.tflite"
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2048] = bytes(b ^ 0xFF for b in data[middle : middle + 2048])
    path.write_bytes(bytes(data))
    for call in (
        lambda: load_predictor(folder),
        lambda: Cascade.load(folder),
        lambda: load_model(path),
        lambda: predict_paths(folder, ["unused.png"]),
    ):
        _one_line(call, "gate.int8.tflite", f"sha256 differs from {MANIFEST_FILE}")
    # Without the manifest, the sha256 the sidecar records still refuses it (load_model on a single file).
    (folder / MANIFEST_FILE).unlink()
    _one_line(lambda: load_model(path), "gate.int8.tflite", "sha256 differs from the one gate.json records")


def test_the_cli_predict_on_a_tampered_export_exits_2_in_one_line(exported, tmp_path, phantom_root):
    folder = _copy_export(exported, "cascade", tmp_path)
    path = folder / "subtype.int8.tflite"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01  # one bit
    path.write_bytes(bytes(data))
    image = sorted((phantom_root / "Testing" / "glioma").iterdir())[0]
    result = CliRunner().invoke(cli.main, ["predict", "--models", str(folder), str(image)])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("error: ")
    assert "subtype.int8.tflite" in result.output and "sha256 differs" in result.output


def test_a_model_from_another_export_is_refused(exported, ptq_cascade, tmp_path):
    other = ptq_cascade["run"] / "export"
    assert sha256_file(other / "gate.int8.tflite") != sha256_file(exported["cascade"][0] / "export/gate.int8.tflite")
    folder = _copy_export(exported, "cascade", tmp_path)
    shutil.copy(other / "gate.int8.tflite", folder)
    _one_line(lambda: load_predictor(folder), "gate.int8.tflite", f"sha256 differs from {MANIFEST_FILE}")
    (folder / MANIFEST_FILE).unlink()
    _one_line(lambda: load_model(folder / "gate.int8.tflite"), "gate.int8.tflite", "the one gate.json records")
    # The model with its own sidecar: a consistent pair, but not this export's.
    folder = _copy_export(exported, "cascade", tmp_path, "pair")
    for name in ("gate.int8.tflite", "gate.float32.tflite", "gate.json"):
        shutil.copy(other / name, folder)
    _one_line(lambda: load_predictor(folder), "gate.", f"sha256 differs from {MANIFEST_FILE}")
    _one_line(lambda: load_model(folder / "gate.int8.tflite"), "sha256 differs from")


def test_a_mixed_folder_is_refused(exported, ptq_cascade, tmp_path):
    """What a kill during a re-export used to leave: new gate, old subtype, stale agreement.json (and variants)."""
    other = ptq_cascade["run"] / "export"
    folder = _copy_export(exported, "cascade", tmp_path)
    for name in ("gate.int8.tflite", "gate.float32.tflite", "gate.json", MANIFEST_FILE):
        shutil.copy(other / name, folder)  # even with the new export's manifest
    _one_line(lambda: load_predictor(folder), f"sha256 differs from {MANIFEST_FILE}")
    folder = _copy_export(exported, "cascade", tmp_path, "stale-agreement")
    shutil.copy(other / "agreement.json", folder)
    _one_line(lambda: load_predictor(folder), "agreement.json", f"sha256 differs from {MANIFEST_FILE}")


def test_files_the_manifest_does_not_list(exported, tmp_path):
    folder = _copy_export(exported, "cascade", tmp_path)
    (folder / "bench.json").write_text("{}")  # edge-bench's default report: never read, ignored
    (folder / "notes.txt").write_text("deployed to the Pi on Monday")
    assert isinstance(load_predictor(folder), Cascade)
    shutil.copy(exported["flat"][0] / "export" / "flat.json", folder)
    _one_line(lambda: load_predictor(folder), "flat.json", f"not listed in {MANIFEST_FILE}")
    (folder / "flat.json").unlink()
    (folder / "gate.int8.tflite").rename(folder / "gate.int8.old.tflite")
    _one_line(lambda: load_predictor(folder), "gate.int8.old.tflite", "not listed")
    (folder / "gate.int8.old.tflite").rename(folder / "gate.int8.tflite")
    (folder / "subtype.float32.tflite").unlink()
    _one_line(lambda: load_predictor(folder), "subtype.float32.tflite", f"listed in {MANIFEST_FILE} but missing")


def test_eval_and_bench_verify_the_export_first(trained_runs, exported, tmp_path):
    from neurocascade.edge.bench import run_bench
    from neurocascade.eval.run import stage_probabilities

    run = tmp_path / "run"
    shutil.copytree(trained_runs["cascade"], run)
    (run / "export" / "agreement.json").write_text("{}")
    _one_line(lambda: stage_probabilities(run, "gate", _images(2), "tflite-int8"), "agreement.json", "sha256 differs")
    _one_line(lambda: run_bench(run / "export", None, [1], runs=1, warmup=0), "agreement.json", "sha256 differs")


# ---------------------------------------------------------------------------------------------- sidecar values


@pytest.mark.parametrize(
    "tau,shown", [(float("nan"), "nan"), (-5, "-5"), (1.5, "1.5"), ("0.5", "'0.5'"), (None, "None"), (True, "True")]
)
def test_tau_must_be_finite_and_in_0_1(exported, tmp_path, reseal, tau, shown):
    folder = _copy_export(exported, "cascade", tmp_path)
    for stage in ("gate", "subtype"):
        _edit_sidecar(folder, stage, lambda s: s.update(tau=tau))
    _one_line(lambda: load_predictor(folder), "gate.json", f"sha256 differs from {MANIFEST_FILE}")  # unsealed
    reseal(folder)
    for call in (
        lambda: load_predictor(folder),
        lambda: load_model(folder / "gate.int8.tflite"),
        lambda: read_sidecar(folder / "gate.json"),
    ):
        _one_line(call, "gate.json", f"tau: {shown}, expected a finite number in [0, 1]")


def test_tau_missing_from_a_cascade_sidecar_or_present_in_a_flat_one(exported, tmp_path, reseal):
    cascade, flat = _copy_export(exported, "cascade", tmp_path), _copy_export(exported, "flat", tmp_path, "flat")
    _edit_sidecar(cascade, "subtype", lambda s: s.pop("tau"))
    _edit_sidecar(flat, "flat", lambda s: s.update(tau=0.5))
    reseal(cascade)
    reseal(flat)
    _one_line(lambda: load_predictor(cascade), "subtype.json", "tau: missing")
    _one_line(lambda: load_predictor(flat), "flat.json", "tau: 0.5, but a flat model has no gate threshold")


@pytest.mark.parametrize(
    "kind,stage,labels",
    [
        ("cascade", "subtype", ["meningioma", "glioma", "pituitary"]),
        ("cascade", "gate", ["no_tumor", "tumor"]),
        ("flat", "flat", ["glioma", "meningioma", "no_tumor", "pituitary"]),
        ("flat", "flat", ["glioma", "meningioma", "pituitary"]),
    ],
)
def test_permuted_or_other_labels_are_refused(exported, tmp_path, reseal, kind, stage, labels):
    folder = _copy_export(exported, kind, tmp_path)
    _edit_sidecar(folder, stage, lambda s: s.update(labels=labels))
    reseal(folder)
    _one_line(lambda: load_predictor(folder), f"{stage}.json", f"labels: {labels!r}", "in this order")
    _one_line(lambda: load_model(folder / f"{stage}.int8.tflite"), "labels:")


@pytest.mark.parametrize("key", ["input", "labels", "models", "stage", "classes", "kind"])
def test_a_sidecar_missing_a_required_key_is_one_line(exported, tmp_path, reseal, key):
    folder = _copy_export(exported, "flat", tmp_path)
    _edit_sidecar(folder, "flat", lambda s: s.pop(key))
    reseal(folder)
    _one_line(lambda: load_predictor(folder), "flat.json", f"{key}: missing (required)")


@pytest.mark.parametrize(
    "edit,fragment",
    [
        (lambda s: s["input"].pop("size"), "input.size: missing"),
        (lambda s: s["input"].update(size="32"), "input.size: '32', expected a positive integer"),
        (lambda s: s["input"].update(clahe_clip=float("nan")), "input.clahe_clip: nan"),
        (lambda s: s.update(stage="gate"), "stage: 'gate', but this is the 'flat' sidecar"),
        (lambda s: s.update(kind="cascade"), "kind: 'cascade'"),
        (lambda s: s.update(classes=list(reversed(CLASSES))), "classes:"),
        (lambda s: s["models"]["int8"].pop("sha256"), "models.int8.sha256: missing"),
        (
            lambda s: s["models"]["int8"]["output"].update(quantization={"scale": 0, "zero_point": 0}),
            "models.int8.output.quantization",
        ),
    ],
)
def test_other_sidecar_values_are_checked(exported, tmp_path, reseal, edit, fragment):
    folder = _copy_export(exported, "flat", tmp_path)
    _edit_sidecar(folder, "flat", edit)
    reseal(folder)
    _one_line(lambda: load_predictor(folder), "flat.json", fragment)


# ---------------------------------------------------------------------------------------------- all or nothing


def test_the_next_export_removes_a_killed_exports_leftovers(ptq_cascade):
    run = ptq_cascade["run"]
    assert not ptq_cascade["leftover"].exists()
    assert [p.name for p in sorted(run.iterdir()) if p.name.startswith("export")] == ["export"]
    after = _snapshot(run / "export")
    assert after.keys() == ptq_cascade["before"].keys() and after != ptq_cascade["before"]  # replaced as a whole
    assert json.loads((run / "export" / "agreement.json").read_text())["method"] == "ptq"
    verify_export(run / "export")


def test_a_kill_mid_export_leaves_the_previous_export_intact(ptq_cascade, tmp_path, monkeypatch):
    import neurocascade.edge.export

    run = tmp_path / "run"
    shutil.copytree(ptq_cascade["run"], run)
    before = _snapshot(run / "export")
    images = _images()
    expected = load_predictor(run / "export").predict(images)
    written = []
    real_write = neurocascade.edge.export.atomic_write_bytes

    def write_then_die(path, data):
        real_write(path, data)
        written.append(Path(path))
        raise KeyboardInterrupt("killed after the first model")  # a BaseException, like the signal a kill sends

    monkeypatch.setattr(neurocascade.edge.export, "atomic_write_bytes", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        export_run(run, overrides=["export.qat=false"])
    assert [p.name for p in written] == ["gate.float32.tflite"] and written[0].parent.name.startswith("export.tmp-")
    assert [p.name for p in sorted(run.iterdir()) if p.name.startswith("export")] == ["export"]
    assert _snapshot(run / "export") == before
    got = load_predictor(run / "export").predict(images)
    np.testing.assert_array_equal(got.labels, expected.labels)
    np.testing.assert_array_equal(got.probs, expected.probs)


def test_folder_swap_and_leftovers(tmp_path):
    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    (run / "export" / "old.txt").write_text("old")
    tmp = _fresh_folder(run)
    assert tmp.name == f"export.tmp-{os.getpid()}" and tmp.is_dir() and not any(tmp.iterdir())
    (tmp / "new.txt").write_text("new")
    _swap_in(tmp, run / "export")
    assert [p.name for p in run.iterdir()] == ["export"] and [p.name for p in (run / "export").iterdir()] == ["new.txt"]

    # Killed between the two renames: the old export is aside, no export/. The next export puts it back first.
    (run / "export").rename(run / f"export.old-{_dead_pid()}")
    (run / f"export.tmp-{_dead_pid()}").mkdir()
    tmp = _fresh_folder(run)
    assert sorted(p.name for p in run.iterdir()) == ["export", tmp.name]
    assert [p.name for p in (run / "export").iterdir()] == ["new.txt"]
    tmp.rmdir()

    # A leftover whose process still runs is another export of this run: refused, nothing removed.
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as live:
        try:
            (run / f"export.tmp-{live.pid}").mkdir()
            _one_line(lambda: _fresh_folder(run), f"export.tmp-{live.pid}", f"another export (process {live.pid})")
            assert (run / f"export.tmp-{live.pid}").is_dir() and (run / "export").is_dir()
        finally:
            live.kill()


def test_export_refuses_a_bad_tau_before_writing_anything(trained_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_runs["cascade"], run)
    before = _snapshot(run / "export")
    record = json.loads((run / "tau.json").read_text())
    (run / "tau.json").write_text(json.dumps({**record, "tau": float("nan")}))
    _one_line(lambda: export_run(run), "tau.json: tau: nan, expected a finite number in [0, 1]")
    assert [p.name for p in sorted(run.iterdir()) if p.name.startswith("export")] == ["export"]
    assert _snapshot(run / "export") == before
