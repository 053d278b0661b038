"""`eval --compare-flat` end to end on tiny trained runs: every file written; other data refused."""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

import cli
from eval.run import evaluate
from neurocascade.errors import UserError


def test_eval_compare_flat_keras_writes_every_file(tiny_runs):
    result = CliRunner().invoke(cli.main, ["eval", "--run", str(tiny_runs["cascade"]), "--flat", str(tiny_runs["flat"]),
                                           "--compare-flat"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = tiny_runs["cascade"] / "eval" / "test-keras"
    for name in ("report.json", "report.md", "confusion.png", "reliability.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert set(report["models"]) == {"cascade", "flat"}
    assert report["meta"]["protocol"] == "B" and report["meta"]["backend"] == "keras"
    assert report["models"]["cascade"]["n"] == report["models"]["flat"]["n"] == report["meta"]["images"]
    assert report["comparison"]["mcnemar"]["p_value"] is not None
    assert "cascade − flat macro-F1" in result.output
    errors = [n for n in ("cascade", "flat") if report["models"][n]["most_confident_errors"]]
    for name in errors:
        assert (out / f"errors-{name}.png").is_file()


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
