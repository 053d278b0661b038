"""Where NeuroCascade reads and writes when no path is given: never inside the installed package.

- built-in configs: the `configs/` folder shipped as package data (in a clone, the repository's configs/);
  `--config lite2` names one, `--config my.toml` is a file; `configs/lite2.toml` that is not a file in the
  working directory means the built-in one too, so the README's commands work from any folder;
- runs: `./runs` in the working directory, or $NEUROCASCADE_RUNS;
- the backbone-activation cache and the decoded-image cache (`scans/`): `<runs>/.cache`, or $NEUROCASCADE_CACHE;
- ImageNet weight files: model.weights_dir, $NEUROCASCADE_WEIGHTS, ../shared/weights (from the working
  directory, as data.root's default), then ~/.keras/models.
"""

from __future__ import annotations

import os
from pathlib import Path

import neurocascade
from neurocascade.errors import ConfigError

RUNS_ENV, CACHE_ENV, WEIGHTS_ENV = "NEUROCASCADE_RUNS", "NEUROCASCADE_CACHE", "NEUROCASCADE_WEIGHTS"
CONFIGS = "configs"
NOT_RUN_CONFIGS = {"licences"}  # shipped beside the configs, read by the model card; not something to run


def builtin_configs_dir() -> Path:
    """The shipped configs: <package>/configs when installed, <repository>/configs in a clone."""
    for entry in neurocascade.__path__:
        folder = Path(entry) / CONFIGS
        if folder.is_dir():
            return folder
    raise ConfigError("the built-in configs are missing from this installation; reinstall neurocascade")


def builtin_configs() -> list[str]:
    """Names of the built-in configs, e.g. ["default", "demo", "lite2", ...]."""
    return sorted(p.stem for p in builtin_configs_dir().glob("*.toml") if p.stem not in NOT_RUN_CONFIGS)


def resolve_config(value: str | Path) -> Path:
    """A config file: `value` if it is one, else the built-in config it names ("lite2", "configs/lite2.toml")."""
    path = Path(value)
    if path.is_file():
        return path
    if path.parent in (Path("."), Path(CONFIGS)) and path.suffix in ("", ".toml"):
        candidate = builtin_configs_dir() / f"{path.stem}.toml"
        if candidate.is_file():
            return candidate
        raise ConfigError(
            f"{value}: config file not found; give a TOML file or a built-in name ({', '.join(builtin_configs())})"
        )
    raise ConfigError(f"{value}: config file not found")


def runs_root() -> Path:
    """Where runs go by default: ./runs, or $NEUROCASCADE_RUNS."""
    return Path(os.environ.get(RUNS_ENV) or "runs")


def cache_root() -> Path:
    """The caches (activations, decoded images, the export's head shifts): <runs>/.cache, or $NEUROCASCADE_CACHE."""
    return Path(os.environ[CACHE_ENV]) if os.environ.get(CACHE_ENV) else runs_root() / ".cache"


def weight_dirs(weights_dir: str = "") -> list[Path]:
    """Folders searched for ImageNet weight files, first match wins (module doc)."""
    search = [Path(weights_dir)] if weights_dir else []
    if os.environ.get(WEIGHTS_ENV):
        search.append(Path(os.environ[WEIGHTS_ENV]))
    return search + [Path("..") / "shared" / "weights", Path.home() / ".keras" / "models"]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a `python -m neurocascade...` child: in a clone (no install) its root is on the path."""
    env = {**os.environ, **extra}
    if neurocascade.SOURCE_ROOT is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(neurocascade.SOURCE_ROOT), env.get("PYTHONPATH")]))
    return env
