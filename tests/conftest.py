"""Shared fixtures: the test config, tiny trained runs and golden files; nothing here needs ../shared.

Goldens (tests/<package>/golden/*) are rewritten only on request: `pytest --update-goldens`, or
`UPDATE_GOLDENS=1 pytest`. Without either, a missing or different golden fails the test.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "sartaj-brain-mri"


@pytest.fixture(scope="session")
def test_config_path() -> Path:
    return REPO / "configs" / "test.toml"


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, test_config_path):
    """Phantoms plus a trained cascade run and flat run on them (configs/test.toml), shared by the session."""
    from neurocascade.data.phantoms import write_phantom_dataset
    from neurocascade.hierarchy.run import train_models
    from neurocascade.config import load_config

    cfg = load_config(test_config_path)
    base = tmp_path_factory.mktemp("tiny")
    p = cfg.phantoms
    write_phantom_dataset(base / "phantoms", p.n_per_class, p.size, p.seed, p.test_fraction, p.copies_fraction)
    for stages, name in ((("gate", "subtype"), "cascade"), (("flat",), "flat")):
        train_models(cfg, stages, base / name, data=str(base / "phantoms"), cache_root=base / "cache")
    return {"data": base / "phantoms", "cascade": base / "cascade", "flat": base / "flat", "cache": base / "cache"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite the tests' golden/* files from the current output instead of comparing",
    )


def _updating(config: pytest.Config) -> bool:
    return bool(config.getoption("--update-goldens", default=False)) or os.environ.get("UPDATE_GOLDENS") == "1"


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """`golden(name, text)`: compare text exactly with <the test's folder>/golden/<name> (or rewrite it)."""
    updating = _updating(request.config)
    golden_dir = Path(request.path).parent / "golden"

    def check(name: str, text: str) -> None:
        path = golden_dir / name
        if updating:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        if not path.is_file():
            pytest.fail(
                f"golden {path} is missing; create it with `pytest --update-goldens` "
                "(or UPDATE_GOLDENS=1) and review the diff before committing"
            )
        expected = path.read_text(encoding="utf-8")
        if text != expected:
            diff = "".join(
                difflib.unified_diff(expected.splitlines(True), text.splitlines(True), f"golden/{name}", "now")
            )
            pytest.fail(f"output differs from golden {path} (if intended: --update-goldens):\n{diff[:6000]}")

    return check
