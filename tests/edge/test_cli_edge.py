"""The CLI over exported runs: eval with the INT8 backend, predict with a table and with --json."""

from __future__ import annotations

import json

from click.testing import CliRunner

from neurocascade import cli


def test_eval_int8_backend_compare_flat(exported):
    cascade, flat = exported["cascade"][0], exported["flat"][0]
    result = CliRunner().invoke(
        cli.main,
        ["eval", "--run", str(cascade), "--flat", str(flat), "--compare-flat", "--backend", "tflite-int8"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    out = cascade / "eval" / "test-tflite-int8"
    for name in ("report.json", "report.md", "confusion.png", "reliability.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["backend"] == "tflite-int8" and set(report["models"]) == {"cascade", "flat"}


def test_predict_json_and_table(exported, phantom_root):
    export_dir = exported["cascade"][0] / "export"
    images = sorted((phantom_root / "Testing" / "glioma").iterdir())[:2]
    runner = CliRunner()
    result = runner.invoke(
        cli.main, ["predict", "--models", str(export_dir), *map(str, images), "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["path"] for r in rows] == [str(p) for p in images]
    assert all(r["stages"][0] == "gate" for r in rows)
    table = runner.invoke(cli.main, ["predict", "--models", str(export_dir), str(images[0])], catch_exceptions=False)
    assert table.exit_code == 0 and "Predictions" in table.output and "gate" in table.output


def test_predict_bad_path_is_one_line(exported, tmp_path):
    result = CliRunner().invoke(
        cli.main, ["predict", "--models", str(exported["cascade"][0] / "export"), str(tmp_path / "missing.png")]
    )
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("error: ")
