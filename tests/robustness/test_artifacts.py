"""Issue 14, item 2: every file one stage writes and another reads is a typed, versioned artifact.

Per artifact: the files of the results fixture (the format written before artifacts were typed: version 1, no
version field) load and round-trip through `to_json` / `from_json` and `write` / `read`; a missing key, an unknown
key, an out-of-range value and an unknown version are each refused in one line naming the file and the key.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from neurocascade.edge.bench import BenchReport
from neurocascade.edge.manifest import Agreement, Sidecar
from neurocascade.eval.report_file import EvalReport
from neurocascade.hierarchy.artifacts import RunManifest, RunRecord, Tau, TrainingSummary
from neurocascade.artifacts import ArtifactError
from neurocascade.results.chain import Ledger

RUNS = Path(__file__).resolve().parents[1] / "results" / "fixtures" / "runs"
SHA = "ab" * 32


def _sidecar(stage: str = "gate") -> dict:
    labels = {"gate": ["tumor", "no_tumor"], "flat": ["glioma", "meningioma", "pituitary", "no_tumor"]}[stage]
    tensor = {"dtype": "uint8", "quantization": {"scale": 1.0, "zero_point": 0}}
    obj = {
        "schema": "neurocascade-edge/2",
        "stage": stage,
        "kind": "cascade" if stage == "gate" else "flat",
        "labels": labels,
        "classes": ["glioma", "meningioma", "pituitary", "no_tumor"],
        "input": {"size": 32, "clahe": False},
        "output": "logits",
        "models": {"int8": {"file": f"{stage}.int8.tflite", "sha256": SHA, "input": tensor, "output": tensor}},
        "source": None,
        "qat": None,
        "packages": {"numpy": "2"},
    }
    if stage == "gate":
        obj["tau"] = 0.4
    return obj


def _run_record() -> dict:
    return {
        "version": 1,
        "stages": ["gate", "subtype"],
        "config": "[data]\n",
        "dataset": {"root": "data", "fingerprint": "f" * 16, "content": "c" * 16, "split_hashes": {"train": "x"}},
        "started_by": {"pid": 1, "host": "h"},
    }


# (class, file name, a JSON object of the current format)
CASES = {
    "tau": (Tau, "tau.json", json.loads((RUNS / "B/cascade/tau.json").read_text())),
    "run record": (RunRecord, "run.json", _run_record()),
    "run manifest": (RunManifest, "manifest.json", json.loads((RUNS / "B/cascade/manifest.json").read_text())),
    "summary": (TrainingSummary, "summary.json", json.loads((RUNS / "B/cascade/summary.json").read_text())),
    "agreement": (Agreement, "agreement.json", json.loads((RUNS / "B/cascade/export/agreement.json").read_text())),
    "sidecar": (Sidecar, "gate.json", _sidecar()),
    "eval report": (
        EvalReport,
        "report.json",
        json.loads((RUNS / "B/cascade/eval/test-keras/report.json").read_text()),
    ),
    "bench": (BenchReport, "bench.json", json.loads((RUNS / "C-seed0/bench.json").read_text())),
    "ledger": (Ledger, "ledger.json", json.loads((RUNS / "ledger.json").read_text())),
}
VERSION_KEY = {"run record": "version", "sidecar": "schema"}
REQUIRED = {
    "tau": "tau",
    "run record": "config",
    "run manifest": "seed",
    "summary": "protocol",
    "agreement": "method",
    "sidecar": "input",
    "eval report": "meta",
    "bench": "cpu",
    "ledger": "stages",
}


def _refused(cls, obj, path: Path, *fragments: str) -> str:
    path.write_text(json.dumps(obj))
    with pytest.raises(ArtifactError) as err:
        cls.read(path)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{path}: "), text
    for fragment in fragments:
        assert fragment in text, text
    return text


@pytest.mark.parametrize("name", CASES)
def test_round_trip(name, tmp_path):
    cls, file, obj = CASES[name]
    first = cls.from_json(copy.deepcopy(obj), file)
    assert cls.from_json(json.loads(json.dumps(first.to_json())), file) == first
    first.write(tmp_path / file)
    assert cls.read(tmp_path / file) == first
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.schema_version = 2  # type: ignore[misc]


@pytest.mark.parametrize("name", CASES)
def test_a_missing_unknown_or_unversioned_key(name, tmp_path):
    cls, file, obj = CASES[name]
    path = tmp_path / file
    required = REQUIRED[name]
    _refused(cls, {k: v for k, v in obj.items() if k != required}, path, f"{required}: missing")
    _refused(cls, {**obj, "surprise": 1}, path, "surprise: unknown key")
    key = VERSION_KEY.get(name, "schema_version")
    if name != "sidecar":
        _refused(cls, {**obj, key: 99}, path, f"{key}: 99")
        cls.from_json({k: v for k, v in obj.items() if k != key}, file)  # no version field: version 1
    _refused(cls, [obj], path, "not a NeuroCascade sidecar" if name == "sidecar" else "expected a JSON object")


@pytest.mark.parametrize(
    "name,edit,fragment",
    [
        ("tau", lambda o: o.update(tau=float("nan")), "tau: nan, expected a finite number in [0, 1]"),
        ("tau", lambda o: o.update(tau=-5), "tau: -5, expected a finite number in [0, 1]"),
        ("tau", lambda o: o.update(target_sensitivity=True), "target_sensitivity: True"),
        ("run record", lambda o: o.update(stages=["gate", "gate"]), "stages:"),
        ("run record", lambda o: o["started_by"].update(pid=-1), "started_by.pid: -1, expected a count"),
        ("run manifest", lambda o: o["dataset"]["counts"].update(test=-3), "dataset.counts.test: -3, expected a count"),
        ("run manifest", lambda o: o.update(models={"gate": "nope"}), "models.gate: 'nope'"),
        ("run manifest", lambda o: o["seconds"].update(total=float("inf")), "seconds.total: inf"),
        ("run manifest", lambda o: o["dataset"].pop("fingerprint"), "dataset.fingerprint: missing"),
        ("summary", lambda o: o["stages"]["gate"].update(classes=["no_tumor", "tumor"]), "stages.gate.classes:"),
        ("summary", lambda o: o["cascade"].update(tau=1.5), "cascade.tau: 1.5"),
        ("summary", lambda o: o["stages"]["gate"]["phase1"].update(epochs=-1), "stages.gate.phase1.epochs: -1"),
        ("agreement", lambda o: o.update(tau=None), "tau: None, expected a finite number in [0, 1]"),
        ("agreement", lambda o: o.update(flagged=["flat"]), "flagged.0: 'flat'"),
        ("agreement", lambda o: o["models"]["gate"].update(n_val=-1), "models.gate.n_val: -1"),
        (
            "agreement",
            lambda o: o["models"]["gate"].update(int8_top1_agreement=float("nan")),
            "models.gate.int8_top1_agreement: nan",
        ),
        ("sidecar", lambda o: o.update(labels=["no_tumor", "tumor"]), "labels: ['no_tumor', 'tumor']"),
        ("sidecar", lambda o: o.update(tau=float("nan")), "tau: nan, expected a finite number in [0, 1]"),
        ("sidecar", lambda o: o["input"].update(surprise=1), "input.surprise: unknown key"),
        ("sidecar", lambda o: o.update(schema="neurocascade-edge/9"), "not a NeuroCascade sidecar"),
        ("eval report", lambda o: o.update(classes=["glioma", "glioma", "pituitary", "no_tumor"]), "classes:"),
        (
            "eval report",
            lambda o: o["models"]["cascade"]["confusion"].update(counts=[[1, -2]]),
            "models.cascade.confusion.counts.0.1: -2, expected a count",
        ),
        ("eval report", lambda o: o["meta"].pop("split"), "meta.split"),
        (
            "eval report",
            lambda o: o["models"]["cascade"]["metrics"].update(macro_f1=float("nan")),
            "models.cascade.metrics.macro_f1: nan",
        ),
        ("bench", lambda o: o["settings"].update(prevalence=3.0), "settings.prevalence: not in [0, 1]"),
        ("bench", lambda o: o["cpu"].pop("isa"), "cpu.isa: missing"),
        ("ledger", lambda o: o["stages"][0].update(status="great"), "stages.0.status: 'great'"),
        ("ledger", lambda o: o["stages"][0].update(seconds=-1.0), "stages.0.seconds: -1.0"),
        ("ledger", lambda o: o["stages"].append(dict(o["stages"][0])), "listed twice"),
    ],
)
def test_out_of_range_values_are_refused(name, edit, fragment, tmp_path):
    cls, file, obj = CASES[name]
    obj = copy.deepcopy(obj)
    edit(obj)
    _refused(cls, obj, tmp_path / file, fragment)


def test_write_refuses_what_the_reader_would(tmp_path):
    with pytest.raises(ArtifactError, match="tau: 2, expected a finite number"):
        Tau(2, 0.95, "validation").write(tmp_path / "tau.json")
    assert not (tmp_path / "tau.json").exists()


def test_a_missing_or_broken_file_is_one_line(tmp_path):
    with pytest.raises(ArtifactError, match=r"tau.json: gate threshold file \(tau.json\) not found"):
        Tau.read(tmp_path / "tau.json")
    (tmp_path / "tau.json").write_text("{ nope")
    with pytest.raises(ArtifactError, match="tau.json: not a readable gate threshold file"):
        Tau.read(tmp_path / "tau.json")
    assert Tau.read_if_exists(tmp_path / "absent.json") is None


def test_collect_names_the_file_and_key_instead_of_a_blank(tmp_path):
    """results/collect.py no longer shows "n/a" for a report that lacks a key: it says which."""
    import shutil

    from neurocascade.results.collect import collect

    fixtures = RUNS.parent
    root = tmp_path / "results"
    shutil.copytree(fixtures, root)
    summary = root / "runs" / "B" / "cascade" / "summary.json"
    obj = json.loads(summary.read_text())
    del obj["stages"]["gate"]["val_macro_f1"]
    summary.write_text(json.dumps(obj))
    with pytest.raises(ArtifactError, match=f"{summary}: stages.gate.val_macro_f1: missing"):
        collect(root / "plan.toml", root / "runs", root=root)


def test_the_old_gate_label_spelling_still_loads_as_todays(tmp_path):
    """Files written before one spelling per label named the gate's first class "tumour" (issue 17 item 6)."""
    old = _sidecar("gate") | {"labels": ["tumour", "no_tumor"]}
    (tmp_path / "gate.json").write_text(json.dumps(old))
    assert Sidecar.read(tmp_path / "gate.json").labels == ("tumor", "no_tumor")
    summary = TrainingSummary.read(RUNS / "B" / "cascade" / "summary.json")  # written with "tumour"
    assert summary.stages["gate"]["classes"] == ["tumor", "no_tumor"]
    assert set(summary.stages["gate"]["class_weights"]) == {"tumor", "no_tumor"}
