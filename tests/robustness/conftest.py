"""Hostile-input fixtures: tiny phantoms, a CSV manifest over them, and finished runs made without training.

A "finished run" here is what training leaves for eval and export to read — config.toml, manifest.json (the
start record `run_record` writes, which holds the same dataset section as the final manifest), images.csv and
stub model files — so the data checks in front of the models can be tested in a second, without a model.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pytest

from neurocascade.config import Config, load_config


@pytest.fixture(scope="session")
def small_cfg(test_config_path) -> Config:
    return load_config(test_config_path)


@pytest.fixture(scope="session")
def phantom_folder(tmp_path_factory, small_cfg) -> Path:
    """Tiny phantoms in the folder layout (configs/test.toml), shared read-only by the session."""
    from neurocascade.data.phantoms import write_phantom_dataset

    p = small_cfg.phantoms
    root = tmp_path_factory.mktemp("hostile") / "phantoms"
    write_phantom_dataset(root, p.n_per_class, p.size, p.seed, p.test_fraction, p.copies_fraction)
    return root


def manifest_rows(root: Path) -> list[str]:
    """`path,label,split` lines for every phantom under `root`, relative to `root`."""
    from neurocascade.data.layout import discover

    return [f"{Path(s.path).relative_to(root).as_posix()},{s.label},{s.source_split}" for s in discover(root)]


@pytest.fixture
def csv_phantoms(tmp_path, phantom_folder) -> Path:
    """A writable copy of the phantoms with `manifest.csv` listing them; returns the CSV's path."""
    root = tmp_path / "csvdata"
    shutil.copytree(phantom_folder, root)
    csv_path = root / "manifest.csv"
    csv_path.write_text("\n".join(["path,label,split", *manifest_rows(root)]) + "\n")
    return csv_path


@pytest.fixture
def finished_run(small_cfg) -> Callable[..., Path]:
    """`finished_run(out, data, stages=("flat",), images=True)`: a run folder as training leaves it, minus the
    models' content; `images=False` makes one from before runs recorded their images (no images.csv)."""
    from neurocascade.data.dataset import load_dataset
    from neurocascade.hierarchy.ownership import run_record, write_image_list
    from neurocascade.config import to_toml
    from neurocascade.io import atomic_write_text, write_json

    def make(out: Path, data: Path, stages: tuple[str, ...] = ("flat",), images: bool = True) -> Path:
        ds = load_dataset(small_cfg, str(data), pixels=False)
        out.mkdir(parents=True)
        atomic_write_text(out / "config.toml", to_toml(small_cfg))
        write_json(out / "manifest.json", run_record(small_cfg, ds, stages))
        if images:
            write_image_list(out, ds)
        for stage in stages:
            atomic_write_text(out / "models" / f"{stage}.keras", "stub")
        return out

    return make
