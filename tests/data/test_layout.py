from pathlib import Path

import pytest

from synthetic import make_folder_dataset, save, structured_image
from neurocascade.data.layout import CLASSES, discover, fingerprint, read_manifest
from neurocascade.errors import DataError

LAYOUTS = {
    "sartaj": {
        "glioma": "glioma_tumor",
        "meningioma": "meningioma_tumor",
        "pituitary": "pituitary_tumor",
        "no_tumor": "no_tumor",
    },
    "nickparvar": {"glioma": "glioma", "meningioma": "meningioma", "pituitary": "pituitary", "no_tumor": "notumor"},
    "healthy": {"glioma": "Glioma", "meningioma": "Meningioma", "pituitary": "Pituitary", "no_tumor": "Healthy"},
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_alias_layouts_map_to_canonical_labels(tmp_path, layout):
    root = make_folder_dataset(tmp_path / layout, LAYOUTS[layout], n=2)
    samples = discover(root)
    assert len(samples) == 16
    for s in samples:
        folder = Path(s.path).parent.name
        assert LAYOUTS[layout][s.label] == folder
    assert {s.source_split for s in samples} == {"train", "test"}
    assert sorted({s.label for s in samples}) == sorted(CLASSES)


def test_lowercase_split_folders_and_odd_filenames(tmp_path):
    root = make_folder_dataset(tmp_path / "d", LAYOUTS["nickparvar"], n=1, split_names=("training", "testing"))
    save(root / "training" / "glioma" / "gg (1).jpg", structured_image(99), quality=90)
    assert any(s.path.endswith("gg (1).jpg") for s in discover(root))


def test_fingerprint_is_stable_and_changes_with_labels(tmp_path):
    root = make_folder_dataset(tmp_path / "d", LAYOUTS["sartaj"], n=1)
    a = discover(root)
    assert fingerprint(a, root) == fingerprint(discover(root), root)
    (root / "Testing" / "no_tumor" / "extra.png").write_bytes(
        (root / "Testing" / "glioma_tumor").iterdir().__next__().read_bytes()
    )
    assert fingerprint(discover(root), root) != fingerprint(a, root)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: None, "dataset path does not exist"),
        (lambda r: (r / "Training").mkdir(parents=True), "no Testing/ folder"),
    ],
)
def test_missing_paths(tmp_path, mutate, message):
    root = tmp_path / "d"
    mutate(root)
    with pytest.raises(DataError, match=message):
        discover(root)


def test_unknown_empty_and_missing_class_folders(tmp_path):
    root = make_folder_dataset(tmp_path / "d", LAYOUTS["sartaj"], n=1)
    (root / "Training" / "tumour_x").mkdir()
    with pytest.raises(DataError, match=r"unknown class 'tumour_x'; known class names: .*glioma_tumor"):
        discover(root)
    (root / "Training" / "tumour_x").rmdir()
    for f in (root / "Testing" / "no_tumor").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"no_tumor: class folder has no .jpg/.jpeg/.png/.dcm images"):
        discover(root)
    (root / "Testing" / "no_tumor").rmdir()
    with pytest.raises(DataError, match="Testing: missing class folders for no_tumor"):
        discover(root)


def test_csv_manifest(tmp_path):
    for k in range(8):
        save(tmp_path / "img" / f"{k}.png", structured_image(k))
    labels = ["glioma", "meningioma", "pituitary", "no_tumor"] * 2
    lines = ["path,label,split,patient_id"] + [
        f"img/{k}.png,{labels[k]},{'test' if k >= 4 else 'train'},p{k // 2}" for k in range(8)
    ]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    samples = read_manifest(tmp_path / "m.csv")
    assert [s.label for s in samples] == labels
    assert [s.source_split for s in samples] == ["train"] * 4 + ["test"] * 4
    assert samples[3].patient_id == "p1"
    assert discover(tmp_path / "m.csv") == samples


@pytest.mark.parametrize(
    "body, message",
    [
        ("file,label\nimg/0.png,glioma\n", "manifest needs the columns path,label"),
        ("path,label\nimg/nope.png,glioma\n", r"m.csv:2: image 'img/nope.png' not found"),
        ("path,label\nimg/0.png,tumour\n", r"m.csv:2: unknown class 'tumour'"),
        ("path,label,split\nimg/0.png,glioma,val\n", r"m.csv:2: split 'val' must be train or test"),
        ("path,label\nimg/0.png,glioma\n", "no images for meningioma, pituitary, no_tumor"),
    ],
)
def test_bad_manifests(tmp_path, body, message):
    save(tmp_path / "img" / "0.png", structured_image(0))
    (tmp_path / "m.csv").write_text(body)
    with pytest.raises(DataError, match=message):
        read_manifest(tmp_path / "m.csv")
