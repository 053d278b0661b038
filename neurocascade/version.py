"""The version `cli.py --version` prints: the installed package's, else the one in pyproject.toml.

A checkout used without `pip install` (a copied folder, `python cli.py` from a fresh clone) has no package
metadata; pyproject.toml beside the code still says which version it is.

    print(version())   # "0.1.0"
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from neurocascade import SOURCE_ROOT

PACKAGE = "neurocascade"
# Only a clone's own pyproject.toml: an installed copy has its metadata, and never reads site-packages' files.
PYPROJECT = SOURCE_ROOT / "pyproject.toml" if SOURCE_ROOT else None


def version(pyproject: Path | None = PYPROJECT) -> str:
    """The installed distribution's version, falling back to `pyproject`'s, else "unknown"."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        pass
    if pyproject is None:
        return "unknown"
    try:
        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError):
        return "unknown"
