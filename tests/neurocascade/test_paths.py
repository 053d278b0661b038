"""Default locations: built-in configs by name, runs/cache/weights from the working directory or NEUROCASCADE_*."""

from __future__ import annotations

from pathlib import Path

import pytest

import neurocascade
from neurocascade.config import load_config
from neurocascade.errors import ConfigError
from neurocascade.paths import cache_root, child_env, resolve_config, runs_root, weight_dirs

REPO = Path(__file__).resolve().parents[2]


def test_a_clone_extends_the_namespace_with_its_root():
    assert neurocascade.SOURCE_ROOT == REPO and neurocascade.__path__[-1] == str(REPO)
    import neurocascade.edge.runtime as runtime

    assert Path(runtime.__file__) == REPO / "edge" / "runtime.py"


def test_configs_by_name_path_or_configs_prefix_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_config("lite2") == resolve_config("configs/lite2.toml") == REPO / "configs" / "lite2.toml"
    assert load_config("test").model.head_units == load_config(REPO / "configs" / "test.toml").model.head_units
    own = tmp_path / "configs" / "lite2.toml"  # a file in the working directory wins over the built-in
    own.parent.mkdir()
    own.write_text("[train]\nbatch_size = 3\n")
    assert resolve_config("configs/lite2.toml") == Path("configs/lite2.toml")
    with pytest.raises(
        ConfigError,
        match=r"^nosuch: config file not found; give a TOML file or a built-in name "
        r"\(default, demo, lite2, ",
    ):
        resolve_config("nosuch")
    with pytest.raises(ConfigError, match=r"^elsewhere/x.toml: config file not found$"):
        resolve_config("elsewhere/x.toml")


def test_runs_cache_and_weights_default_to_the_working_directory_and_obey_the_environment(monkeypatch, tmp_path):
    for name in ("NEUROCASCADE_RUNS", "NEUROCASCADE_CACHE", "NEUROCASCADE_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)
    assert runs_root() == Path("runs") and cache_root() == Path("runs/.cache")
    assert weight_dirs() == [Path("../shared/weights"), Path.home() / ".keras" / "models"]
    monkeypatch.setenv("NEUROCASCADE_RUNS", str(tmp_path / "r"))
    assert cache_root() == tmp_path / "r" / ".cache"
    monkeypatch.setenv("NEUROCASCADE_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("NEUROCASCADE_WEIGHTS", str(tmp_path / "w"))
    assert runs_root() == tmp_path / "r" and cache_root() == tmp_path / "c"
    assert weight_dirs("mine")[:2] == [Path("mine"), tmp_path / "w"]


def test_children_of_a_clone_import_the_clone(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    assert child_env(X="1")["PYTHONPATH"] == f"{REPO}:/elsewhere" and child_env(X="1")["X"] == "1"
