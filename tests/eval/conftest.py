"""Golden-file checking for the eval tests.

Goldens are rewritten only on request: `pytest tests/eval --update-goldens`, or `UPDATE_GOLDENS=1 pytest`
(pytest accepts this conftest's option only when tests/eval is named on the command line; the variable
works from anywhere). Without either, a missing or different golden fails the test.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Callable

import pytest

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", default=False,
                     help="rewrite tests/eval/golden/* from the current output instead of comparing")


def _updating(config: pytest.Config) -> bool:
    return bool(config.getoption("--update-goldens", default=False)) or os.environ.get("UPDATE_GOLDENS") == "1"


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """`golden(name, text)`: compare text exactly with tests/eval/golden/<name> (or rewrite it on request)."""
    updating = _updating(request.config)

    def check(name: str, text: str) -> None:
        path = GOLDEN_DIR / name
        if updating:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        if not path.is_file():
            pytest.fail(f"golden {path} is missing; create it with `pytest tests/eval --update-goldens` "
                        "(or UPDATE_GOLDENS=1) and review the diff before committing")
        expected = path.read_text(encoding="utf-8")
        if text != expected:
            diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                                f"golden/{name}", "now"))
            pytest.fail(f"output differs from golden {path} (if intended: --update-goldens):\n{diff[:6000]}")

    return check
