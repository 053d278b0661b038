"""`--version` and the LICENSE file: what a user or a packager checks first."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from click.testing import CliRunner

from neurocascade import cli
from neurocascade import version as version_module

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_version_flag_prints_the_package_version():
    result = CliRunner().invoke(cli.main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"neurocascade {version_module.version()}\n"


def test_version_falls_back_to_pyproject_without_package_metadata(monkeypatch, tmp_path):
    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(version_module.metadata, "version", missing)
    assert version_module.version() == PYPROJECT["version"]
    assert version_module.version(tmp_path / "pyproject.toml") == "unknown"


def test_license_file_is_the_apache_2_text_pyproject_names():
    assert PYPROJECT["license"] == {"text": "Apache-2.0"}
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
