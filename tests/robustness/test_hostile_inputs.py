"""The lower cases of issue 14 (item 7): each a one-line error or a warning, with nothing left half-made.

Before: a read-only output folder was a PermissionError traceback (edge-bench's only after the whole
benchmark); `audit-data --force --out <a run>` overwrote the run's config; a 160 KB PNG of 13000² px cost
1.75 GB in predict; `data.clahe_clip=nan` was accepted; `batch_size=99999999999999999999` overflowed after
the run folder was made; a bad weights file left a half-made run folder that blocked the re-run; `--threads
999` on 2 cores ran 30× slower without a word; `predict --threads 0` blamed the model file; `make-phantoms
--seed -1` and `edge-bench --max-images 0` were tracebacks; dropped images were only a count in manifest.json.
"""
from __future__ import annotations

import os
import shutil
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import cli
from neurocascade.errors import UserError

REPO = Path(__file__).resolve().parents[2]
TEST_CONFIG = str(REPO / "configs" / "test.toml")


class Reached(Exception):
    """Raised by a stand-in for the long step a check must come before."""


def _reached(*args, **kwargs):
    raise Reached


def invoke(*args: str):
    return CliRunner().invoke(cli.main, list(args))


def assert_one_line_error(result, *fragments: str) -> str:
    """Exit status 2, exactly one line on the output, no traceback, and every fragment in it."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
    return result.output


# ------------------------------------------------------------------------------------------------ config

@pytest.mark.parametrize("setting, fragment", [
    ("data.clahe_clip=nan", "data.clahe_clip = nan: expected a finite number"),
    ("train.phase1_lr=inf", "train.phase1_lr = inf: expected a finite number"),
    ("data.clahe_clip=-inf", "expected a finite number"),
    ("train.batch_size=99999999999999999999", "train.batch_size = 99999999999999999999: too large"),
    ("train.batch_size=100000", "train.batch_size: must be in [1, 4096]"),
    ("train.seed=-1", "train.seed: must be in [0, 4294967295]"),
    ("data.split_seed=-2", "data.split_seed: must be in [0, 4294967295]"),
    ("eval.seed=4294967296", "eval.seed = 4294967296: too large"),
])
def test_a_bad_number_in_the_config_is_refused_before_the_run_folder_exists(tmp_path, setting, fragment):
    run = tmp_path / "run"
    result = invoke("train-flat", "--config", TEST_CONFIG, "--data", str(tmp_path), "--out", str(run),
                    "--set", setting)
    assert_one_line_error(result, fragment)
    assert not run.exists()


def test_make_phantoms_with_a_negative_seed_is_one_line(tmp_path):
    out = tmp_path / "phantoms"
    result = invoke("make-phantoms", "--out", str(out), "--seed", "-1", "--config", TEST_CONFIG)
    assert_one_line_error(result, "phantoms.seed: must be in [0, 4294967295]")
    assert not out.exists()
