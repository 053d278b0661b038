"""Shared fixtures: the test config; nothing here downloads or needs ../shared."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "sartaj-brain-mri"


@pytest.fixture(scope="session")
def test_config_path() -> Path:
    return REPO / "configs" / "test.toml"
