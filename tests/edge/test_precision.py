"""Issue 15: calibration that covers the classes, 16-bit activations, and the export's per-model choice.

The pure parts (which images calibrate, which mode "auto" keeps, what the sidecar and agreement.json accept) are
checked by hand-made cases; the export is checked end to end on the tiny phantom runs: the default export records
int8 and random calibration, an int16x8 export loads and agrees through the runtime, and an "auto" export installs
exactly the model it reports (file, sidecar and manifest agree) with the reason recorded.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from neurocascade.artifacts import ArtifactError
from neurocascade.config import load_config
from neurocascade.edge.calibration import calibration_indices, choose_calibration, first_draw
from neurocascade.edge.export import export_run
from neurocascade.edge.manifest import Agreement, Sidecar, verify_export
from neurocascade.edge.precision import choose_mode, latency_ms, wants_int16x8
from neurocascade.edge.runtime import Cascade, FlatModel
from neurocascade.edge.tflite_metadata import read_metadata
from neurocascade.errors import ConfigError

INT8_ATOL = 0.03  # as test_export.py; the int16x8 model must do at least as well
SHA = "ab" * 32


def test_random_calibration_is_the_old_seeded_draw():
    labels = np.arange(50) % 3
    want = np.sort(np.random.default_rng(7).permutation(50)[:20])  # what exports drew before export.calibration
    np.testing.assert_array_equal(calibration_indices(labels, 20, "random", 7), want)


def test_balanced_calibration_takes_each_class_equally():
    labels = np.array([0] * 80 + [1] * 15 + [2] * 5)
    idx = calibration_indices(labels, 30, "balanced", 0)
    assert len(idx) == 30 and len(set(idx.tolist())) == 30 and np.all(np.diff(idx) > 0)
    counts = np.bincount(labels[idx], minlength=3)
    assert counts[1] == 10 and counts[2] == 5 and counts[0] == 15  # class 2 has only 5: its share goes to the rest
    random_counts = np.bincount(labels[calibration_indices(labels, 30, "random", 0)], minlength=3)
    assert random_counts[2] < 5  # what balancing is for: the seeded draw follows the 80/15/5 mix
    assert len(calibration_indices(labels, 1000, "balanced", 0)) == 100  # never more than there are
    with pytest.raises(ValueError, match="unknown calibration"):
        calibration_indices(labels, 10, "stratified", 0)


def test_auto_calibration_keeps_the_draw_that_agrees_best():
    assert choose_calibration({"random": 0.9425, "balanced": 0.96}) == (
        "balanced",
        "validation agreement random 0.9425, balanced 0.96",
    )
    assert choose_calibration({"random": 0.99, "balanced": 0.98})[0] == "random"
    assert choose_calibration({"balanced": 0.95, "random": 0.95})[0] == "random"  # a tie keeps the training mix
    assert choose_calibration({"random": None, "balanced": None}) == (
        "random",
        "no validation images to measure agreement on",
    )
    with pytest.raises(ValueError, match="no calibration draw"):
        choose_calibration({})
    assert (first_draw("auto"), first_draw("balanced"), first_draw("random")) == ("random", "balanced", "random")
    with pytest.raises(ValueError, match="unknown calibration"):
        calibration_indices(np.arange(9) % 3, 3, "auto", 0)  # "auto" is a choice between draws, not a draw


def test_auto_keeps_int8_unless_int16x8_earns_it():
    fast = {"float32": {"ms": 10.0}}
    assert not wants_int16x8(0.99, 0.98) and wants_int16x8(0.95, 0.98) and not wants_int16x8(None, 0.98)
    assert choose_mode({"int8": {"agreement": 0.99, "ms": 3.0}, **fast}, 0.98)[0] == "int8"
    assert choose_mode({"int8": {"agreement": None}}, 0.98) == ("int8", "no validation images to measure agreement on")
    assert choose_mode({"int8": {"agreement": 0.95, "ms": 3.0}, **fast}, 0.98)[0] == "int8"  # nothing to compare
    better = {"int8": {"agreement": 0.95, "ms": 3.0}, "int16x8": {"agreement": 0.99, "ms": 8.0}, **fast}
    mode, reason = choose_mode(better, 0.98)
    assert mode == "int16x8" and "0.95" in reason and "8.0" in reason
    slow = {**better, "int16x8": {"agreement": 0.99, "ms": 12.0}}
    mode, reason = choose_mode(slow, 0.98)
    assert mode == "int8" and "slower than float32" in reason
    worse = {**better, "int16x8": {"agreement": 0.94, "ms": 1.0}}
    assert choose_mode(worse, 0.98)[0] == "int8"


def test_latency_is_a_median_per_image():
    calls = []
    ms = latency_ms(lambda x: calls.append(len(x)), np.zeros((5, 2, 2, 3), np.uint8))
    assert calls == [1] * 6 and 0 <= ms < 50  # one warm-up, then one image at a time


@pytest.mark.parametrize(
    "setting, message",
    [
        ('export.calibration="stratified"', "calibration"),
        ('export.quantization="int4"', "quantization"),
        ("export.latency_images=0", "latency_images"),
    ],
)
def test_config_refuses_unknown_precision_settings(test_config_path, setting, message):
    with pytest.raises(ConfigError, match=message):
        load_config(test_config_path, [setting])


def test_config_refuses_float_ops_with_int16x8(test_config_path):
    with pytest.raises(ConfigError, match="float_ops"):
        load_config(test_config_path, ['export.quantization="int16x8"', 'export.float_ops=["MEAN"]'])


def _sidecar(mode: str, dtype: str) -> dict:
    tensor = {"dtype": dtype, "quantization": {"scale": 1.0, "zero_point": 0}}
    entry = {"file": "flat.int8.tflite", "sha256": SHA, "input": tensor, "output": dict(tensor)}
    entry.update({"quantization": mode, "calibration": "balanced", "representative_samples": 16, "float_ops": []})
    return {
        "schema": "neurocascade-edge/2",
        "stage": "flat",
        "kind": "flat",
        "labels": ["glioma", "meningioma", "pituitary", "no_tumor"],
        "classes": ["glioma", "meningioma", "pituitary", "no_tumor"],
        "input": {"size": 32},
        "output": "logits",
        "models": {"int8": entry},
    }


def _agreement() -> dict:
    entry = {
        "n_val": 40,
        "int8_top1_agreement": 0.95,
        "quantization": "int8",
        "quantization_reason": "int16x8 agreement 0.9 not above int8's 0.95",
        "calibration": "random",
        "calibration_reason": "validation agreement random 0.95, balanced 0.94",
        "calibration_candidates": {"random": {"agreement": 0.95}, "balanced": {"agreement": 0.94}},
        "representative_samples": 16,
        "candidates": {
            "int8": {"agreement": 0.95, "ms": 1.5, "bytes": 100},
            "int16x8": {"agreement": 0.9, "ms": 9.0, "bytes": 120},
            "float32": {"ms": 2.0},
        },
    }
    return {
        "run": "r",
        "kind": "flat",
        "tau": None,
        "method": "ptq",
        "min_agreement": 0.98,
        "calibration": "auto",
        "quantization": "auto",
        "models": {"flat": entry},
        "flagged": ["flat"],
        "packages": None,
    }


def test_the_artifacts_carry_the_precision(tmp_path):
    for mode, dtype in (("int8", "uint8"), ("int16x8", "int16")):
        sidecar = Sidecar.from_json(_sidecar(mode, dtype), tmp_path / "flat.json")
        assert sidecar.models["int8"]["quantization"] == mode and sidecar.models["int8"]["calibration"] == "balanced"
    float_head = _sidecar("int8", "uint8")  # export.float_ops kept the last op in float: a float32 output
    float_head["models"]["int8"].update(output={"dtype": "float32", "quantization": None}, float_ops=["MEAN"])
    assert Sidecar.from_json(float_head, tmp_path / "flat.json").models["int8"]["output"]["dtype"] == "float32"
    wrong = _sidecar("int8", "int16")
    with pytest.raises(ArtifactError, match="models.int8.input.dtype: 'int16', but an int8 model's is uint8"):
        Sidecar.from_json(wrong, tmp_path / "flat.json")
    report = Agreement.from_json(_agreement(), tmp_path / "agreement.json")
    assert report.to_json() == {**_agreement(), "schema_version": 1}


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda o: o["models"]["int8"].update(quantization="int4"), "models.int8.quantization: 'int4'"),
        (lambda o: o["models"]["int8"].update(calibration="stratified"), "models.int8.calibration: 'stratified'"),
        (lambda o: o["models"]["int8"]["input"].update(dtype="uint8"), "models.int8.input.dtype: 'uint8'"),
        (lambda o: o["models"]["int8"].update(float_ops=["MEAN"]), "only an int8 model keeps ops in float"),
    ],
)
def test_a_sidecar_with_a_wrong_precision_is_refused(edit, fragment, tmp_path):
    obj = _sidecar("int16x8", "int16")
    edit(obj)
    with pytest.raises(ArtifactError) as err:
        Sidecar.from_json(obj, tmp_path / "flat.json")
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda o: o.update(quantization="int4"), "quantization: 'int4'"),
        (lambda o: o["models"]["flat"].update(quantization="auto"), "models.flat.quantization: 'auto'"),
        (lambda o: o["models"]["flat"].update(quantization_reason=""), "models.flat.quantization_reason"),
        (lambda o: o["models"]["flat"]["candidates"].update(fp16={"ms": 1.0}), "candidates.fp16: 'fp16'"),
        (lambda o: o["models"]["flat"]["candidates"]["int8"].update(ms=-1), "candidates.int8.ms: -1"),
        (lambda o: o["models"]["flat"]["candidates"]["int8"].update(cores=2), "candidates.int8.cores: unknown"),
        (lambda o: o["models"]["flat"].update(calibration="auto"), "models.flat.calibration: 'auto'"),
        (
            lambda o: o["models"]["flat"].update(calibration_candidates={"stratified": {"agreement": 0.9}}),
            "calibration_candidates.stratified: 'stratified'",
        ),
        (
            lambda o: o["models"]["flat"].update(calibration_candidates={"random": {"agreement": 1.5}}),
            "calibration_candidates.random.agreement: 1.5",
        ),
    ],
)
def test_an_agreement_with_a_wrong_precision_is_refused(edit, fragment, tmp_path):
    obj = copy.deepcopy(_agreement())
    edit(obj)
    with pytest.raises(ArtifactError) as err:
        Agreement.from_json(obj, tmp_path / "agreement.json")
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_the_default_export_records_int8_and_random_calibration(exported):
    for kind in ("cascade", "flat"):
        run, report = exported[kind]
        assert (report["calibration"], report["quantization"]) == ("random", "int8")
        for stage in ("gate", "subtype") if kind == "cascade" else ("flat",):
            m = report["models"][stage]
            assert (m["quantization"], m["calibration"], m["representative_samples"]) == ("int8", "random", 16)
            assert m["quantization_reason"] == "export.quantization = 'int8'"
            assert m["candidates"] == {"int8": {"agreement": m["int8_top1_agreement"], "bytes": m["int8_bytes"]}}
            entry = json.loads((run / "export" / f"{stage}.json").read_text())["models"]["int8"]
            assert (entry["quantization"], entry["calibration"], entry["input"]["dtype"]) == ("int8", "random", "uint8")


def _copy_run(run: Path, tmp_path: Path) -> Path:
    copy_ = tmp_path / run.name
    shutil.copytree(run, copy_, ignore=shutil.ignore_patterns("export*", "quant-debug"))
    return copy_


def test_int16x8_export_loads_and_agrees(trained_runs, tmp_path):
    run = _copy_run(trained_runs["flat"], tmp_path)
    report = export_run(
        run,
        overrides=[
            "export.qat=false",
            'export.output="logits"',
            'export.quantization="int16x8"',
            'export.calibration="balanced"',
        ],
    )
    m = report["models"]["flat"]
    assert m["quantization"] == "int16x8" and list(m["candidates"]) == ["int16x8"]
    assert m["int8_max_abs_prob_diff"] <= INT8_ATOL and m["calibration"] == "balanced"
    sidecar = json.loads((run / "export" / "flat.json").read_text())["models"]["int8"]
    assert sidecar["quantization"] == "int16x8" and sidecar["input"]["dtype"] == "int16"
    assert sidecar["output"]["dtype"] == "int16"
    flat = FlatModel.load(run / "export")
    assert flat.model.input_dtype == np.int16
    dtypes = {np.dtype(t["dtype"]).name for t in flat.model.interpreter.get_tensor_details()}
    assert {"int8", "int16"} <= dtypes and "float32" not in dtypes  # 8-bit weights, 16-bit activations
    # TFLite Metadata describes uint8 and float32 ends only: the int16x8 model has none, its float32 sibling has it
    assert read_metadata(run / "export" / "flat.int8.tflite") is None
    assert read_metadata(run / "export" / "flat.float32.tflite").labels == flat.model.labels
    assert "flat (int16x8, balanced calibration)" in (run / "export" / "MODEL_CARD.md").read_text()


def test_auto_installs_the_model_it_reports(trained_runs, tmp_path, monkeypatch):
    """Both modes converted (the int8 one made to 'miss'); whichever wins is the file the sidecar and manifest
    describe, with both candidates' agreement and 1-thread latency and the reason in agreement.json."""
    import neurocascade.edge.export as export

    monkeypatch.setattr(export, "wants_int16x8", lambda agreement, minimum: True)
    run = _copy_run(trained_runs["cascade"], tmp_path)
    report = export_run(run, overrides=["export.qat=false", 'export.quantization="auto"', "export.latency_images=3"])
    verify_export(run / "export")
    cascade = Cascade.load(run / "export")
    for stage, model in (("gate", cascade.gate), ("subtype", cascade.subtype)):
        m = report["models"][stage]
        assert set(m["candidates"]) == {"int8", "int16x8", "float32"}
        assert all(c["ms"] > 0 for c in m["candidates"].values())
        assert (m["quantization"], m["quantization_reason"]) == choose_mode(m["candidates"], report["min_agreement"])
        assert m["int8_top1_agreement"] == m["candidates"][m["quantization"]]["agreement"]
        assert m["int8_bytes"] == m["candidates"][m["quantization"]]["bytes"]
        assert model.input_dtype == (np.int16 if m["quantization"] == "int16x8" else np.uint8)
        assert model.sidecar.models["int8"]["quantization"] == m["quantization"]


def test_auto_calibration_installs_the_draw_it_reports(trained_runs, tmp_path, monkeypatch):
    """Both draws quantized; the one chosen (here the first, "random", so it must be put back after "balanced" was
    installed) is the file the sidecar, manifest and agreement.json describe. The float32 file, the same for both
    draws, is run on validation once."""
    import neurocascade.edge.export as export

    made: dict[str, bytes] = {}
    validated: list[str] = []
    quantize, probs = export._quantize, export._probs

    def spy(job, stage, converted, mode, source_sha):
        made[converted.calibration] = quantize(job, stage, converted, mode, source_sha)
        return made[converted.calibration]

    def spy_probs(path, xv):
        validated.append(path.name)
        return probs(path, xv)

    monkeypatch.setattr(export, "_quantize", spy)
    monkeypatch.setattr(export, "_probs", spy_probs)
    monkeypatch.setattr(export, "choose_calibration", lambda agreements: ("random", "chosen by the test"))
    run = _copy_run(trained_runs["flat"], tmp_path)
    report = export_run(run, overrides=["export.qat=false", 'export.calibration="auto"'])
    verify_export(run / "export")
    m = report["models"]["flat"]
    assert (report["calibration"], m["calibration"]) == ("auto", "random")
    assert m["calibration_reason"] == "chosen by the test"
    assert list(made) == ["random", "balanced"] and made["random"] != made["balanced"]
    assert validated == ["flat.int8.tflite", "flat.float32.tflite", "flat.int8.tflite"]
    assert set(m["calibration_candidates"]) == {"random", "balanced"}
    assert (run / "export" / "flat.int8.tflite").read_bytes() == made["random"]
    assert m["int8_bytes"] == len(made["random"])
    sidecar = json.loads((run / "export" / "flat.json").read_text())["models"]["int8"]
    assert sidecar["calibration"] == "random"
    written = Agreement.read(run / "export" / "agreement.json").models["flat"]
    assert written["calibration_candidates"] == m["calibration_candidates"]


def test_calibration_and_precision_keep_the_qat_checkpoints(test_config_path):
    """They act after QAT: changing them (or exporting a run QAT'd before they existed) resumes QAT, not redoes it."""
    from neurocascade.edge.export import qat_key

    base = qat_key(load_config(test_config_path), SHA)
    after = ['export.calibration="balanced"', 'export.quantization="auto"', "export.latency_images=3"]
    assert qat_key(load_config(test_config_path, [*after, "export.metadata=false"]), SHA) == base
    assert {"metadata", "calibration", "quantization", "latency_images"}.isdisjoint(base["export"])
    assert qat_key(load_config(test_config_path, ["export.qat_epochs=7"]), SHA) != base
