"""NeuroCascade, one namespace: `neurocascade.config`, `neurocascade.data`, `neurocascade.edge`, `neurocascade.cli`, ...

Installed from a wheel, every subpackage sits inside this folder (site-packages/neurocascade/edge/...), and
nothing else of the project is importable. In a clone, or in an unpacked edge bundle, they stay where the
design card puts them, at the repository root (data/, models/, hierarchy/, edge/, eval/, results/, cli.py
beside neurocascade/), and this package's search path is extended by that root, so `python cli.py`, pytest and
`python -m neurocascade` work with no install. An installed copy never extends it: its subpackages are inside
this folder, which is exactly what `_source_root` checks first (README, "Install").
"""

from __future__ import annotations

from pathlib import Path

SUBPACKAGES = ("data", "models", "hierarchy", "edge", "eval", "results")
_HERE = Path(__file__).resolve().parent


def _source_root() -> Path | None:
    """The clone's (or bundle's) root when the subpackages live there rather than in this folder, else None."""
    if any((_HERE / name).is_dir() for name in SUBPACKAGES):
        return None  # an installed copy: the wheel put its subpackages here
    root = _HERE.parent
    if (root / "cli.py").is_file() and (root / "edge" / "__init__.py").is_file():
        return root
    return None


SOURCE_ROOT = _source_root()
if SOURCE_ROOT is not None:
    __path__.append(str(SOURCE_ROOT))  # noqa: F821  (a package's __path__)
