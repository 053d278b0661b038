"""Planted copies are found with the right kind; distinct images are not; conflicts and groups are right."""

import numpy as np
import pytest

from neurocascade.data.audit import Pair, connected_groups, copies_of, copy_groups, find_pairs, summarize
from neurocascade.data.layout import CLASSES
from neurocascade.data.scan import scan_file, scan_files
from synthetic import save, structured_image


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Images 0-5 distinct; 6 = exact copy of 0; 7 = shifted, brightened JPEG of 1; 8 = mirror of 2;
    9 = near copy of 3 filed under another class (a label conflict)."""
    d = tmp_path_factory.mktemp("planted")
    paths = [save(d / f"distinct{k}.png", structured_image(k, 128)) for k in range(6)]
    paths.append(d / "exact0.png")
    paths[-1].write_bytes(paths[0].read_bytes())
    near = np.clip(np.roll(structured_image(1, 128), 2, axis=1) * 1.1 + 5, 0, 255).astype(np.uint8)
    paths.append(save(d / "near1.jpg", near, quality=80))
    paths.append(save(d / "mirror2.png", structured_image(2, 128)[:, ::-1].copy()))
    paths.append(save(d / "conflict3.jpg", structured_image(3, 128), quality=70))
    labels = [
        "glioma",
        "meningioma",
        "pituitary",
        "no_tumor",
        "glioma",
        "meningioma",
        "glioma",
        "meningioma",
        "pituitary",
        "glioma",
    ]
    roles = ["train"] * 6 + ["test"] * 4
    scans = scan_files([str(p) for p in paths], hash_size=16, workers=1)
    return scans, labels, roles


def test_planted_copies_are_found_with_their_kind(planted):
    scans, _, _ = planted
    copies = {(p.i, p.j): p.kind for p in find_pairs(scans, threshold=38) if p.kind != "none"}
    assert copies == {(0, 6): "exact", (1, 7): "near", (2, 8): "mirror", (3, 9): "near"}


def test_mirror_off_misses_the_mirrored_copy(planted):
    scans, _, _ = planted
    kinds = {(p.i, p.j) for p in find_pairs(scans, threshold=38, mirror=False)}
    assert (2, 8) not in kinds and (1, 7) in kinds


def test_margin_pairs_are_marked_none(planted):
    scans, _, _ = planted
    pairs = find_pairs(scans, threshold=10, margin=30)
    near = [p for p in pairs if (p.i, p.j) == (1, 7)][0]
    assert near.kind == "none" and 10 < near.distance <= 40


def test_groups_and_conflicts_and_leak_table(planted):
    scans, labels, roles = planted
    pairs = find_pairs(scans, threshold=38)
    groups = copy_groups(len(scans), pairs)
    assert list(groups) == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3]
    report = summarize(scans, labels, roles, pairs, 38, CLASSES)
    assert report["copy_pairs"] == {"exact": 1, "near": 2, "mirror": 1}
    assert report["copy_pairs_by_split"] == {"test-train": {"exact": 1, "near": 2, "mirror": 1}}
    assert [(c["label_a"], c["label_b"]) for c in report["label_conflicts"]] == [("no_tumor", "glioma")]
    leak = report["test_with_copy_in_train"]
    assert leak["all"] == {"images": 4, "exact": 1, "near": 2, "mirror": 1, "none": 0}
    assert leak["glioma"] == {"images": 2, "exact": 1, "near": 1, "mirror": 0, "none": 0}
    assert report["groups"] == {"count": 6, "with_copies": 4, "largest": 2, "images_in_copy_groups": 8}


def test_unreadable_file_is_reported_not_fatal(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    scan = scan_file(str(bad))
    assert scan.error and scan.dhash is None


def test_copies_of_keeps_the_strongest_kind():
    pairs = [Pair(0, 2, 20, "near"), Pair(1, 2, 0, "exact"), Pair(0, 3, 30, "mirror"), Pair(0, 4, 45, "none")]
    assert copies_of([2, 3, 4], [0, 1], pairs) == {2: "exact", 3: "mirror"}


def test_connected_groups_are_transitive():
    assert list(connected_groups(5, [(3, 4), (0, 4)])) == [0, 1, 2, 0, 0]


def test_parallel_scan_matches_serial(tmp_path):
    paths = [str(save(tmp_path / f"{k}.png", structured_image(k, 48))) for k in range(70)]
    serial = scan_files(paths, workers=1)
    parallel = scan_files(paths, workers=2)
    assert [s.sha256 for s in serial] == [s.sha256 for s in parallel]
    assert all(np.array_equal(a.dhash, b.dhash) for a, b in zip(serial, parallel))
