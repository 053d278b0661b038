"""make-phantoms → audit-data --sheet through the CLI, as `make demo` runs them."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from neurocascade import cli

REPO = Path(__file__).resolve().parents[2]
TEST_CONFIG = str(REPO / "configs" / "test.toml")


def test_phantoms_then_audit(tmp_path):
    runner = CliRunner()
    data = tmp_path / "phantoms"
    result = runner.invoke(
        cli.main, ["make-phantoms", "--out", str(data), "--config", TEST_CONFIG], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "wrote 48 phantom images" in result.output
    report = tmp_path / "audit"
    result = runner.invoke(
        cli.main,
        ["audit-data", str(data), "--config", TEST_CONFIG, "--sheet", "--out", str(report)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    audit = json.loads((report / "audit.json").read_text())
    planted = json.loads((data / "phantoms.json").read_text())["copies"]
    assert audit["audit"]["images"] == 48
    leak = audit["audit"]["test_with_copy_in_train"]["all"]
    assert leak["exact"] + leak["near"] + leak["mirror"] >= len(planted)
    assert audit["split"]["dropped_total"] >= len(planted)
    assert audit["split"]["copy_pairs_by_split_after"].get("test-train") is None  # protocol B: no leak left
    assert (report / "sheet.png").stat().st_size > 1000
    assert (report / "config.toml").is_file()
    assert "Test images with a copy in training" in result.output
    # a second audit into the same folder is refused without --force
    again = runner.invoke(cli.main, ["audit-data", str(data), "--config", TEST_CONFIG, "--out", str(report)])
    assert again.exit_code == 2 and "output directory exists" in again.output
