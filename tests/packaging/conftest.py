"""The repository's source as a user hands it to pip: a copy, so that building never writes into the clone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOT_SOURCE = (".git", ".venv", "runs", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache")


@pytest.fixture(scope="session")
def source_tree(tmp_path_factory) -> Path:
    """A copy of the repository minus its virtualenv, runs and build products."""
    dest = tmp_path_factory.mktemp("source") / "neurocascade-src"
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*NOT_SOURCE), symlinks=True)
    return dest


@pytest.fixture(scope="session")
def wheel(source_tree, tmp_path_factory) -> Path:
    """The wheel pip builds from the source with this interpreter's setuptools (no download, no dependencies)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(source_tree),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (built,) = out.glob("neurocascade-*.whl")
    return built
