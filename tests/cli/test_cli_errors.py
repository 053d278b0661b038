"""A user's mistake gives one clear line and exit status 2, never a traceback (golden text)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from neurocascade import cli

REPO = Path(__file__).resolve().parents[2]


def run(*args: str):
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    "args, golden",
    [
        (["audit-data", "{tmp}/nope"], "error: {tmp}/nope: dataset path does not exist\n"),
        (
            ["audit-data", "{tmp}", "--config", "{tmp}/missing.toml"],
            "error: {tmp}/missing.toml: config file not found\n",
        ),
        (
            ["audit-data", "{tmp}", "--set", "data.image_sise=3"],
            "error: {repo}/configs/default.toml with --set data.image_sise=3: unknown key data.image_sise; allowed: root, "
            "manifest, image_size, protocol, dedupe, val_fraction, test_fraction, split_seed, clahe, clahe_clip, min_side, "
            "workers, scan_cache\n",
        ),
        (
            ["audit-data", "{tmp}", "--set", "data.protocol=random"],
            "error: {repo}/configs/default.toml with --set data.protocol=random: data.protocol = 'random': allowed values "
            "are 'official', 'grouped'\n",
        ),
        (
            ["audit-data", "{tmp}"],
            "error: {tmp}: no Training/ folder (expected <root>/Training/<class>/*.jpg and "
            "<root>/Testing/<class>/*.jpg)\n",
        ),
        (
            ["make-phantoms", "--out", "{tmp}", "--n-per-class", "1"],
            "error: {repo}/configs/default.toml with --set phantoms.n_per_class=1: phantoms.n_per_class: must be >= 2\n",
        ),
        (
            ["train-cascade", "--out", "{tmp}/run", "--resume"],
            "error: {tmp}/run: nothing to resume (no config.toml); start the run without --resume\n",
        ),
    ],
)
def test_user_errors_are_one_line(tmp_path, args, golden):
    (tmp_path / "stuff.txt").write_text("x")

    def fill(text: str) -> str:
        return text.format(tmp=tmp_path, repo=REPO)

    result = run(*map(fill, args))
    assert result.exit_code == 2
    assert result.output == fill(golden)


def test_make_phantoms_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "x").write_text("x")
    result = run("make-phantoms", "--out", str(tmp_path), "--config", str(REPO / "configs" / "test.toml"))
    assert result.exit_code == 2
    assert result.output == f"error: {tmp_path}: output directory exists and is not empty; choose another --out\n"


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="dataset path does not exist"):
        run("--debug", "audit-data", str(tmp_path / "nope"))


def test_help_lists_the_commands():
    result = run("--help")
    for command in ("make-phantoms", "audit-data", "train-cascade", "train-flat"):
        assert command in result.output
