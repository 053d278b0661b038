"""Shared fixtures: the test config; nothing here downloads or needs ../shared."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "sartaj-brain-mri"


@pytest.fixture(scope="session")
def test_config_path() -> Path:
    return REPO / "configs" / "test.toml"


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, test_config_path):
    """Phantoms plus a trained cascade run and flat run on them (configs/test.toml), shared by the session."""
    from data.phantoms import write_phantom_dataset
    from hierarchy.run import train_models
    from neurocascade.config import load_config

    cfg = load_config(test_config_path)
    base = tmp_path_factory.mktemp("tiny")
    p = cfg.phantoms
    write_phantom_dataset(base / "phantoms", p.n_per_class, p.size, p.seed, p.test_fraction, p.copies_fraction)
    for stages, name in ((("gate", "subtype"), "cascade"), (("flat",), "flat")):
        train_models(cfg, stages, base / name, data=str(base / "phantoms"), cache_root=base / "cache")
    return {"data": base / "phantoms", "cascade": base / "cascade", "flat": base / "flat", "cache": base / "cache"}
