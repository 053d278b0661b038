"""`eval --compare-flat` end to end on tiny trained runs: every file written; other data refused."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from click.testing import CliRunner

from neurocascade import cli
from neurocascade.eval.run import evaluate
from neurocascade.errors import UserError


def test_eval_compare_flat_keras_writes_every_file(tiny_runs):
    result = CliRunner().invoke(
        cli.main,
        ["eval", "--run", str(tiny_runs["cascade"]), "--flat", str(tiny_runs["flat"]), "--compare-flat"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    out = tiny_runs["cascade"] / "eval" / "test-keras"
    for name in ("report.json", "report.md", "report.html", "confusion.png", "reliability.png"):
        assert (out / name).is_file(), name
    assert "open in a browser:" in result.output and str(out / "report.html") in result.output.replace("\n", "")
    report = json.loads((out / "report.json").read_text())
    assert set(report["models"]) == {"cascade", "flat"}
    audit = report["audit"]  # the data audit of the images scored, in the report and on the page
    assert audit["split_counts"]["test"] == report["meta"]["images"] and audit["images"] >= audit["readable"]
    assert "## Data audit" in (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert "Data audit" in page and page.count("data:image/png;base64,") == 2 + len(
        [n for n in report["models"] if report["models"][n]["most_confident_errors"]]
    )
    if report["models"]["cascade"]["most_confident_errors"]:
        assert "Most confident errors: cascade — Grad-CAM overlay" in page
    assert report["meta"]["protocol"] == "B" and report["meta"]["backend"] == "keras"
    assert report["models"]["cascade"]["n"] == report["models"]["flat"]["n"] == report["meta"]["images"]
    assert report["comparison"]["mcnemar"]["p_value"] is not None
    assert "cascade − flat macro-F1" in result.output
    errors = [n for n in ("cascade", "flat") if report["models"][n]["most_confident_errors"]]
    for name in errors:
        assert (out / f"errors-{name}.png").is_file()
    with (out / "predictions.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows, columns = list(reader), reader.fieldnames
    assert len(rows) == report["meta"]["images"]
    probs = [f"p_{c}" for c in report["classes"]]
    assert columns == (
        ["path", "true_label", "cascade_label"]
        + [f"cascade_{p}" for p in probs]
        + ["cascade_gate_p_tumour", "cascade_tau", "flat_label"]
        + [f"flat_{p}" for p in probs]
    )
    tau = json.loads((tiny_runs["cascade"] / "tau.json").read_text())["tau"]
    assert {float(r["cascade_tau"]) for r in rows} == {round(tau, 6)}
    for row in rows:  # the cascade's label is the gate's decision at τ (taken before rounding: skip near-ties)
        p, tau = float(row["cascade_gate_p_tumour"]), float(row["cascade_tau"])
        if abs(p - tau) > 1e-6:
            assert (row["cascade_label"] != "no_tumor") == (p >= tau)
    classes = report["classes"]
    for name in ("cascade", "flat"):  # the CSV's labels are the report's confusion matrix, cell by cell
        counts = report["models"][name]["confusion"]["counts"]
        for t, true in enumerate(classes):
            for p, predicted in enumerate(classes):
                n = sum(1 for r in rows if r["true_label"] == true and r[f"{name}_label"] == predicted)
                assert n == counts[t][p], (name, true, predicted)


def test_ensemble_is_scored_like_a_model(tiny_runs):
    report, _ = evaluate(tiny_runs["cascade"], split="val", ensemble=[tiny_runs["cascade"], tiny_runs["flat"]])
    assert set(report["models"]) == {"cascade", "ensemble"}
    assert 0 <= report["models"]["ensemble"]["metrics"]["macro_f1"] <= 1


def test_other_data_is_refused(tiny_runs, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_runs["data"], other)
    extra = next((other / "Testing" / "glioma").iterdir())
    shutil.copy(extra, other / "Testing" / "notumor" / "relabelled.png")
    with pytest.raises(UserError, match=r"not the data the run was trained on \(.*1 image not in the run\)"):
        evaluate(tiny_runs["cascade"], data=str(other))


def test_a_model_is_loaded_and_verified_once_per_process(tiny_runs, tmp_path):
    from neurocascade.eval.run import load_stage_model, read_run
    from neurocascade.keras_io import load_keras_model

    run = tmp_path / "cascade"
    shutil.copytree(tiny_runs["cascade"], run, ignore=shutil.ignore_patterns("eval"))
    first = load_stage_model(run, "gate")
    assert load_stage_model(run, "gate") is first  # predictions and Grad-CAM share one load
    assert load_stage_model(tiny_runs["cascade"], "gate") is not first  # another file, its own load
    path = run / "models" / "gate.keras"
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # changed after it was verified:
    assert load_stage_model(run, "gate") is first  # this process keeps the verified model, never the new bytes
    with pytest.raises(UserError, match="sha256"):  # which a new load refuses
        load_keras_model(path, read_run(run)[1].model_sha256("gate"))
