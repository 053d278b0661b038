"""Synthetic phantom dataset: reproducible pixels, the promised layout/manifest, planted copies, plausible anatomy,
and copy detection that behaves as on real MRI (the audit finds every planted copy and nothing else).

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

from neurocascade.data.audit import find_pairs
from neurocascade.data.phantoms import CLASS_DIRS, LABELS, make_phantom, write_phantom_dataset
from neurocascade.data.scan import scan_file

GOLDEN_SEED = 2024
GOLDEN: dict[str, str] = {
    "glioma@64": "64fb6e23940c99b3ac3ff32c2642b3b346c4365858af6e260899a99bb005f0dc",
    "meningioma@64": "96eabd8807bf8be0dfbdd35e27e80ecb1c361837ae4101721a1d53bf76bdbd3f",
    "no_tumor@64": "855fb5d5498d1d5ee5e808f9b09604e930a82485447ff09d7aba25c073e06422",
    "pituitary@64": "09282217485f33c5b2f47c5f271d3726d4b60489fb5f489a3b413877aa845370",
    "glioma@128": "50154aa9dedbf804028d6bdccf97202b94bffa75ecb4ec6f76b95ca4ebfa0e53",
    "dataset:Training/pituitary/pituitary_0002.png": "3f9b2cb7a3550a35992474d3dd3644f4ea7d83615cfc0c3ec6848fd7123cdfb8",
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
    assert CLASS_DIRS == {
        "glioma": "glioma",
        "meningioma": "meningioma",
        "no_tumor": "notumor",
        "pituitary": "pituitary",
    }
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
            corners = np.concatenate(
                [img[:6, :6].ravel(), img[:6, -6:].ravel(), img[-6:, :6].ravel(), img[-6:, -6:].ravel()]
            )
            assert corners.mean() < 30, (label, k, corners.mean())


def test_skull_ring_brighter_than_centre():
    s, q = 64, 64 // 3
    for k in range(10):
        img = make_phantom("no_tumor", _rng(8, k), s).astype(float)
        centre = img[s // 2 - 6 : s // 2 + 6, s // 2 - 6 : s // 2 + 6].mean()
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
    assert manifest["counts"] == {
        "Training": {lab: n_train for lab in LABELS},
        "Testing": {lab: n_test for lab in LABELS},
    }


def test_progress_called_once_per_image(dataset):
    _, _, calls = dataset
    assert calls == [1] * (4 * DS_ARGS["n_per_class"])


def _rescaled(img: np.ndarray, scale: float) -> np.ndarray:
    size, inv = img.shape[0], 1.0 / scale
    c = size / 2.0
    im = Image.fromarray(img).transform(
        (size, size),
        Image.Transform.AFFINE,
        (inv, 0, c - inv * c, 0, inv, c - inv * c),
        resample=Image.Resampling.BILINEAR,
        fillcolor=0,
    )
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
                w = b[k + dy : n - k + dy, k + dx : n - k + dx]
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
    other = write_phantom_dataset(
        tmp_path / "again", n_per_class=6, size=64, seed=11, test_fraction=0.25, copies_fraction=0.0
    )
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


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(size=31), "size"),
        (dict(n_per_class=1), "n_per_class"),
        (dict(test_fraction=1.0), "test_fraction"),
        (dict(test_fraction=-0.1), "test_fraction"),
        (dict(copies_fraction=1.0), "copies_fraction"),
        (dict(copies_fraction=-0.5), "copies_fraction"),
        (dict(seed=-1), "seed"),
    ],
)
def test_bad_arguments_raise_value_error(tmp_path, kwargs, match):
    args = dict(n_per_class=4, size=32, seed=0) | kwargs
    with pytest.raises(ValueError, match=match):
        write_phantom_dataset(tmp_path / "d", **args)
    assert not (tmp_path / "d").exists()  # validated before anything is written


# ----------------------------------------------------------------------------------------------- copy detection
AUDIT_ARGS = dict(n_per_class=40, size=128, seed=0, test_fraction=0.2, copies_fraction=0.2)
AUDIT_THRESHOLD = 38  # data.audit's default: copies on real MRI up to ~36 bits, different scans from ~42


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[str], list, dict]:
    """A 4 x 40 set at 128 px, scanned as the audit does; all pairs up to 30 bits beyond the threshold."""
    out = tmp_path_factory.mktemp("phantoms-audit") / "ds"
    manifest = write_phantom_dataset(out, **AUDIT_ARGS)
    rels = sorted(p.relative_to(out).as_posix() for p in out.glob("*/*/*.png"))
    scans = [scan_file(str(out / rel)) for rel in rels]
    pairs = {(rels[p.i], rels[p.j]): p for p in find_pairs(scans, threshold=AUDIT_THRESHOLD, mirror=True, margin=30)}
    return manifest, rels, scans, pairs


def _planted(manifest: dict) -> dict[tuple[str, str], dict]:
    return {tuple(sorted((c["source"], c["test"]))): c for c in manifest["copies"]}


def test_every_planted_copy_is_found_by_the_audit(audited):
    manifest, _, scans, pairs = audited
    assert all(not s.error for s in scans)
    planted = _planted(manifest)
    assert len(planted) == 8  # 2 per class: round(0.2 * 8 test images)
    assert any(c["mirrored"] for c in planted.values()) and not all(c["mirrored"] for c in planted.values())
    for key, c in planted.items():
        p = pairs.get(key)
        assert p is not None and p.distance <= AUDIT_THRESHOLD, (c, p)
        assert p.kind == ("mirror" if c["mirrored"] else "near"), (c, p)


def test_no_distinct_phantoms_look_like_copies(audited):
    manifest, _, _, pairs = audited
    planted = _planted(manifest)
    found = {key for key, p in pairs.items() if p.kind != "none"}
    assert found == set(planted)  # nothing but the planted copies, across or within classes
    distinct = [p.distance for key, p in pairs.items() if key not in planted]
    copies = [pairs[key].distance for key in planted]
    # margins both ways, not only the threshold: different phantoms well apart, copies well inside
    assert min(distinct, default=99) >= AUDIT_THRESHOLD + 4, sorted(distinct)[:5]
    assert max(copies) <= AUDIT_THRESHOLD - 2, sorted(copies)


if __name__ == "__main__":
    print("GOLDEN: dict[str, str] = {")
    for key, value in _current_hashes().items():
        print(f"    {key!r}: {value!r},")
    print("}")
