"""Synthetic phantom dataset: reproducible pixels, the promised layout/manifest, planted copies, plausible anatomy.

Golden hashes: sha256 of the decoded uint8 pixel bytes (never of PNG file bytes, whose zlib stream may vary).
After an intended change to data/phantoms.py, regenerate them with

    cd /work/main && PYTHONPATH=. .venv/bin/python tests/data/test_phantoms.py

and paste the printed dict over GOLDEN below (and say in the commit why the pixels changed).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data.phantoms import CLASS_DIRS, LABELS, make_phantom, write_phantom_dataset

GOLDEN_SEED = 2024
GOLDEN: dict[str, str] = {
    'glioma@64': 'a4baa30a5c7f16fb0c76d27721cf10688356a29128aa95e2fb013e5b25fe3061',
    'meningioma@64': 'c3dda3451266aba3cd45ace357ee54683686952b5b9329b286e3857cd78b7932',
    'no_tumor@64': '13a09685b0ebfdbcfbe915676899a63c20ac26b45c7f07bddd062e6bfde9bfde',
    'pituitary@64': '062139ac366a8f9a77d5d1d1fefa26a74c243ad3d4af43beb7ce938194a3d6ad',
    'glioma@128': '293fe06c91148295797c7c6272a5cb9e3a810b8e3da6472e4b0a1ebfb8e5d800',
    'dataset:Training/pituitary/pituitary_0002.png': '969a3ceefa2ece7ed975778c8261dd00352407118ba86dc7b449733fe8516f63',
}

DS_ARGS = dict(n_per_class=8, size=64, seed=11, test_fraction=0.25, copies_fraction=0.5)


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(list(key)))


def _sha(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr, dtype=np.uint8).tobytes()).hexdigest()


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "L"
        return np.asarray(im, dtype=np.uint8)


def _current_hashes() -> dict[str, str]:
    """What GOLDEN should be for the current generator (also used to regenerate it, see module docstring)."""
    out = {f"{label}@64": _sha(make_phantom(label, _rng(GOLDEN_SEED, i), 64)) for i, label in enumerate(LABELS)}
    out["glioma@128"] = _sha(make_phantom("glioma", _rng(GOLDEN_SEED, 99), 128))
    # dataset images use SeedSequence([seed, class_index, split_index, image_index]); pin that scheme too
    out["dataset:Training/pituitary/pituitary_0002.png"] = _sha(make_phantom("pituitary", _rng(5, 3, 0, 2), 64))
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list[int]]:
    out = tmp_path_factory.mktemp("phantoms") / "ds"
    calls: list[int] = []
    manifest = write_phantom_dataset(out, progress=calls.append, **DS_ARGS)
    return out, manifest, calls


# ----------------------------------------------------------------------------------------------- single images
def test_class_dirs_use_kaggle_layout():
    assert CLASS_DIRS == {"glioma": "glioma", "meningioma": "meningioma", "no_tumor": "notumor",
                          "pituitary": "pituitary"}
    assert LABELS == tuple(CLASS_DIRS)


@pytest.mark.parametrize("label", LABELS)
def test_make_phantom_is_uint8_square(label):
    img = make_phantom(label, np.random.default_rng(0), 48)
    assert img.dtype == np.uint8 and img.shape == (48, 48)
    assert img.max() > 150  # not blank: the skull at least is bright


@pytest.mark.parametrize("label", LABELS)
def test_same_seed_same_pixels_different_seed_different(label):
    a = make_phantom(label, np.random.default_rng(42), 64)
    b = make_phantom(label, np.random.default_rng(42), 64)
    c = make_phantom(label, np.random.default_rng(43), 64)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_golden_hashes():
    assert _current_hashes() == GOLDEN, "phantom pixels changed; if intended, regenerate GOLDEN (module docstring)"


@pytest.mark.parametrize("label", ["pituitary", "dog", "notumor", ""])
def test_make_phantom_rejects_bad_label_and_size(label):
    if label == "pituitary":
        with pytest.raises(ValueError, match="size"):
            make_phantom(label, np.random.default_rng(0), 31)
    else:
        with pytest.raises(ValueError, match="unknown label"):
            make_phantom(label, np.random.default_rng(0), 64)


# ----------------------------------------------------------------------------------------------- anatomy
def test_background_corners_are_dark():
    for i, label in enumerate(LABELS):
        for k in range(5):
            img = make_phantom(label, _rng(7, i, k), 64).astype(float)
            corners = np.concatenate([img[:6, :6].ravel(), img[:6, -6:].ravel(),
                                      img[-6:, :6].ravel(), img[-6:, -6:].ravel()])
            assert corners.mean() < 30, (label, k, corners.mean())


def test_skull_ring_brighter_than_centre():
    s, q = 64, 64 // 3
    for k in range(10):
        img = make_phantom("no_tumor", _rng(8, k), s).astype(float)
        centre = img[s // 2 - 6:s // 2 + 6, s // 2 - 6:s // 2 + 6].mean()
        row, col = img[s // 2], img[:, s // 2]
        skull = max(row[:q].max(), row[-q:].max(), col[:q].max(), col[-q:].max())
        assert skull > centre + 20, (k, skull, centre)


@pytest.mark.parametrize("label", ["glioma", "meningioma", "pituitary"])
def test_tumour_is_a_local_change_in_the_expected_place(label):
    """Same generator state -> same head, so tumour minus no_tumor isolates the lesion."""
    s = 64
    coords = (np.arange(s) + 0.5) / s * 2 - 1  # -1..1, y downwards
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    strong = 0
    for k in range(10):
        normal = make_phantom("no_tumor", _rng(9, k), s).astype(float)
        tumour = make_phantom(label, _rng(9, k), s).astype(float)
        diff = np.abs(tumour - normal)
        changed = diff > 0
        assert 0 < changed.mean() < 0.3, (k, changed.mean())  # present, and local
        w = diff / diff.sum()
        cx, cy = float((w * xx).sum()), float((w * yy).sum())
        if label == "pituitary":  # midline, lower-central
            assert abs(cx) < 0.25 and 0.1 < cy < 0.7, (k, cx, cy)
        elif label == "meningioma":  # at the skull, not central
            assert np.hypot(cx, cy) > 0.35, (k, cx, cy)
        else:  # intra-axial: inside the head
            assert np.hypot(cx, cy) < 0.65, (k, cx, cy)
        # 5x5 local mean absolute difference: clearly visible unless it is a hard case
        c = np.cumsum(np.cumsum(np.pad(diff, ((1, 0), (1, 0))), 0), 1)
        local = (c[5:, 5:] - c[:-5, 5:] - c[5:, :-5] + c[:-5, :-5]) / 25
        strong += local.max() > 20
    assert strong >= 5, strong


# ----------------------------------------------------------------------------------------------- dataset
def test_layout_counts_and_manifest(dataset):
    out, manifest, _ = dataset
    n_test = round(DS_ARGS["n_per_class"] * DS_ARGS["test_fraction"])
    n_train = DS_ARGS["n_per_class"] - n_test
    for label, folder in CLASS_DIRS.items():
        train = sorted(p.name for p in (out / "Training" / folder).iterdir())
        test = sorted(p.name for p in (out / "Testing" / folder).iterdir())
        assert train == [f"{label}_{i:04d}.png" for i in range(n_train)]
        assert test == [f"{label}_{i:04d}.png" for i in range(n_test)]
        for name in train[:2] + test:
            img = _load(out / "Training" / folder / name if name in train[:2] else out / "Testing" / folder / name)
            assert img.shape == (DS_ARGS["size"], DS_ARGS["size"])
    assert sorted(p.name for p in out.iterdir()) == ["Testing", "Training", "phantoms.json"]

    on_disk = json.loads((out / "phantoms.json").read_text(encoding="utf-8"))
    assert on_disk == manifest
    for key in ("seed", "size", "n_per_class", "test_fraction", "copies_fraction"):
        assert manifest[key] == DS_ARGS[key]
    assert manifest["counts"] == {"Training": {lab: n_train for lab in LABELS},
                                  "Testing": {lab: n_test for lab in LABELS}}


def test_progress_called_once_per_image(dataset):
    _, _, calls = dataset
    assert calls == [1] * (4 * DS_ARGS["n_per_class"])


def _rescaled(img: np.ndarray, scale: float) -> np.ndarray:
    size, inv = img.shape[0], 1.0 / scale
    c = size / 2.0
    im = Image.fromarray(img).transform((size, size), Image.Transform.AFFINE,
                                        (inv, 0, c - inv * c, 0, inv, c - inv * c),
                                        resample=Image.Resampling.BILINEAR, fillcolor=0)
    return np.asarray(im, dtype=float)


def _match(copy: np.ndarray, src: np.ndarray, k: int = 3) -> float:
    """Best correlation of `copy` with `src` over small rescales and shifts (what a real audit must undo)."""
    a = copy.astype(float)[k:-k, k:-k]
    a = (a - a.mean()) / a.std()
    best = -1.0
    for scale in (0.96, 0.98, 1.0, 1.02, 1.04):
        b = _rescaled(src, scale)
        n = b.shape[0]
        for dy in range(-k, k + 1):
            for dx in range(-k, k + 1):
                w = b[k + dy:n - k + dy, k + dx:n - k + dx]
                best = max(best, float(((w - w.mean()) * a).mean() / (w.std() + 1e-9)))
    return best


def test_planted_copies_are_listed_and_are_altered_copies_of_their_source(dataset):
    out, manifest, _ = dataset
    copies = manifest["copies"]
    assert len(copies) == 4  # max(1, round(0.5 * 2)) per class
    assert {c["test"].split("/")[1] for c in copies} == set(CLASS_DIRS.values())
    assert any(c["mirrored"] for c in copies) and not all(c["mirrored"] for c in copies)
    for c in copies:
        assert c["test"].startswith("Testing/") and c["source"].startswith("Training/")
        assert c["test"].split("/")[1] == c["source"].split("/")[1]  # same class
        copy, src = _load(out / c["test"]), _load(out / c["source"])
        assert not np.array_equal(copy, src)  # altered, not byte-identical
        if c["mirrored"]:
            copy = copy[:, ::-1]
        own = _match(copy, src)
        folder = out / c["source"].rsplit("/", 1)[0]
        others = [_match(copy, _load(p)) for p in sorted(folder.iterdir()) if p != out / c["source"]][:4]
        assert own > 0.9 and own > max(others), (c, own, others)


def test_images_depend_only_on_their_own_seed(tmp_path, dataset):
    out, manifest, _ = dataset
    other = write_phantom_dataset(tmp_path / "again", n_per_class=6, size=64, seed=11, test_fraction=0.25,
                                  copies_fraction=0.0)
    assert other["copies"] == []
    for label, folder in CLASS_DIRS.items():
        for i in range(3):  # Training images 0..2 exist in both; different n and order must not matter
            name = f"Training/{folder}/{label}_{i:04d}.png"
            np.testing.assert_array_equal(_load(out / name), _load(tmp_path / "again" / name))
    third = write_phantom_dataset(tmp_path / "seed12", n_per_class=6, size=64, seed=12, test_fraction=0.25)
    assert third["seed"] == 12
    a = _load(out / "Training/glioma/glioma_0000.png")
    assert not np.array_equal(a, _load(tmp_path / "seed12" / "Training/glioma/glioma_0000.png"))


def test_written_png_matches_make_phantom(tmp_path):
    write_phantom_dataset(tmp_path / "d", n_per_class=4, size=64, seed=5, test_fraction=0.25)
    img = _load(tmp_path / "d" / "Training" / "pituitary" / "pituitary_0002.png")
    assert _sha(img) == _sha(make_phantom("pituitary", _rng(5, 3, 0, 2), 64))


def test_refuses_non_empty_out_but_accepts_empty_dir(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        write_phantom_dataset(tmp_path / "full", n_per_class=2, size=32, seed=0)
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        write_phantom_dataset(tmp_path / "file", n_per_class=2, size=32, seed=0)
    (tmp_path / "empty").mkdir()
    m = write_phantom_dataset(tmp_path / "empty", n_per_class=2, size=32, seed=0, test_fraction=0.5)
    assert m["counts"]["Testing"]["glioma"] == 1 and m["counts"]["Training"]["glioma"] == 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(size=31), "size"),
    (dict(n_per_class=1), "n_per_class"),
    (dict(test_fraction=1.0), "test_fraction"),
    (dict(test_fraction=-0.1), "test_fraction"),
    (dict(copies_fraction=1.0), "copies_fraction"),
    (dict(copies_fraction=-0.5), "copies_fraction"),
    (dict(seed=-1), "seed"),
])
def test_bad_arguments_raise_value_error(tmp_path, kwargs, match):
    args = dict(n_per_class=4, size=32, seed=0) | kwargs
    with pytest.raises(ValueError, match=match):
        write_phantom_dataset(tmp_path / "d", **args)
    assert not (tmp_path / "d").exists()  # validated before anything is written


if __name__ == "__main__":
    print("GOLDEN: dict[str, str] = {")
    for key, value in _current_hashes().items():
        print(f"    {key!r}: {value!r},")
    print("}")
