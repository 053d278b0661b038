"""The scan cache: a cached scan is the scan, read without decoding; anything else about the file is decoded again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neurocascade.data import scan as scan_module
from neurocascade.data.scan import scan_files

SETTINGS = {"hash_size": 16, "min_side": 8, "size": 24, "clahe": False, "clahe_clip": 2.0, "workers": 1}


def _images(folder: Path, n: int = 3) -> list[str]:
    paths = []
    for k in range(n):
        yy, xx = np.mgrid[0:40, 0:48]
        Image.fromarray(((xx * (k + 2) + yy * 3) % 256).astype(np.uint8), mode="L").save(folder / f"{k}.png")
        paths.append(str(folder / f"{k}.png"))
    return paths


def _same(a, b) -> None:
    assert [s.sha256 for s in a] == [s.sha256 for s in b]
    for x, y in zip(a, b):
        for name in ("dhash", "dhash_mirror", "pixels"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))


@pytest.fixture
def no_decoding(monkeypatch):
    """After this, any decode fails the test: what is returned must come from the cache."""

    def refuse(*args, **kwargs):
        raise AssertionError("decoded although cached")

    return lambda: monkeypatch.setattr(scan_module, "read_gray", refuse)


def test_a_cached_scan_equals_the_decoded_one_and_is_read_without_decoding(tmp_path, no_decoding):
    paths = _images(tmp_path)
    fresh = scan_files(paths, **SETTINGS)
    filled = scan_files(paths, **SETTINGS, cache_dir=tmp_path / "cache")
    _same(fresh, filled)
    no_decoding()
    seen = []
    cached = scan_files(paths, **SETTINGS, cache_dir=tmp_path / "cache", progress=seen.append)
    _same(fresh, cached)
    assert [s.path for s in cached] == paths and len(seen) == len(paths)
    cached[0].pixels[0, 0, 0] ^= 1  # the arrays are the caller's to change, like decoded ones


def test_other_settings_or_content_are_decoded_again(tmp_path, monkeypatch):
    paths = _images(tmp_path)
    scan_files(paths, **SETTINGS, cache_dir=tmp_path / "cache")
    decoded, original = [], scan_module.read_gray
    monkeypatch.setattr(scan_module, "read_gray", lambda path, **kw: decoded.append(path) or original(path, **kw))
    scan_files(paths, **{**SETTINGS, "size": 32}, cache_dir=tmp_path / "cache")
    assert decoded == paths  # another size: another folder
    Image.fromarray(np.full((40, 48), 7, np.uint8), mode="L").save(paths[1])
    decoded.clear()
    again = scan_files(paths, **SETTINGS, cache_dir=tmp_path / "cache")
    assert decoded == [paths[1]]  # only the file whose content changed
    _same([again[1]], scan_files([paths[1]], **SETTINGS))


def test_a_truncated_entry_is_decoded_again_and_rewritten(tmp_path):
    paths = _images(tmp_path)
    fresh = scan_files(paths, **SETTINGS, cache_dir=tmp_path / "cache")
    entries = sorted((tmp_path / "cache").glob("*/*.bin"))
    assert len(entries) == len(paths)
    size = entries[0].stat().st_size
    assert size == 2 * 16**2 // 8 + 24 * 24 * 3
    entries[0].write_bytes(entries[0].read_bytes()[:100])
    _same(fresh, scan_files(paths, **SETTINGS, cache_dir=tmp_path / "cache"))
    assert entries[0].stat().st_size == size


def test_an_unreadable_file_is_reported_every_time_and_never_stored(tmp_path):
    paths = _images(tmp_path, 2)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    paths.append(str(tmp_path / "bad.png"))
    for _ in range(2):
        scans = scan_files(paths, **SETTINGS, cache_dir=tmp_path / "cache")
        assert scans[2].error and not scans[0].error
    assert len(list((tmp_path / "cache").glob("*/*.bin"))) == 2


def test_load_dataset_uses_the_cache_only_when_asked(tmp_path, monkeypatch, test_config_path):
    from neurocascade.config import load_config
    from neurocascade.data.dataset import load_dataset
    from neurocascade.data.phantoms import write_phantom_dataset

    write_phantom_dataset(tmp_path / "data", 8, 48, 0, 0.25, 0.0)
    monkeypatch.setenv("NEUROCASCADE_CACHE", str(tmp_path / "cache"))
    load_dataset(load_config(test_config_path, ["data.scan_cache=false"]), str(tmp_path / "data"))
    assert not (tmp_path / "cache").exists()
    first = load_dataset(load_config(test_config_path), str(tmp_path / "data"))
    assert len(list((tmp_path / "cache" / "scans").glob("*/*.bin"))) == len(first.scans)
    second = load_dataset(load_config(test_config_path), str(tmp_path / "data"))
    _same(first.scans, second.scans)
    assert (first.roles == second.roles).all() and first.audit == second.audit


def test_a_cache_folder_that_cannot_be_written_only_costs_the_decoding(tmp_path):
    paths = _images(tmp_path)
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    _same(scan_files(paths, **SETTINGS), scan_files(paths, **SETTINGS, cache_dir=tmp_path / "cache"))
