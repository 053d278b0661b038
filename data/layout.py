"""Find a dataset's images and labels: Kaggle-style folders or a CSV manifest.

Folder layout: `<root>/{Training,Testing}/<class>/*.{jpg,jpeg,png,dcm}` with the class folder names of the common
public brain-MRI sets mapped to the canonical labels. CSV manifest: `path,label[,split][,patient_id]`, paths
relative to the manifest's folder; `split` is `train` or `test` (default train).

DICOM (`neurocascade.data.dicom`): `.dcm`/`.dicom` files, and files of any other name that start like DICOM (DICM at byte
128), are images too. A multi-frame file is one sample per frame (`scan.dcm#1` …); a manifest may name one frame.
A DICOM's PatientID (else StudyInstanceUID) is its sample's patient unless the manifest gives one.

    samples = discover("../shared/data/sartaj-brain-mri")
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from neurocascade.data import dicom
from neurocascade.errors import DataError

CLASSES: tuple[str, ...] = ("glioma", "meningioma", "pituitary", "no_tumor")
"""Canonical labels, in the order of every four-class output."""
TUMOUR_CLASSES: tuple[str, ...] = CLASSES[:3]
PICTURE_SUFFIXES = (".jpg", ".jpeg", ".png")
IMAGE_SUFFIXES = PICTURE_SUFFIXES + dicom.DICOM_SUFFIXES
SPLIT_DIRS = {"train": ("Training", "training", "train", "Train"), "test": ("Testing", "testing", "test", "Test")}

ALIASES: dict[str, str] = {
    # Sartaj / Kaggle "Brain Tumor Classification (MRI)"
    "glioma_tumor": "glioma",
    "meningioma_tumor": "meningioma",
    "pituitary_tumor": "pituitary",
    "no_tumor": "no_tumor",
    # Masoud Nickparvar "Brain Tumor MRI Dataset"
    "glioma": "glioma",
    "meningioma": "meningioma",
    "pituitary": "pituitary",
    "notumor": "no_tumor",
    # capitalised variants with "Healthy"
    "Glioma": "glioma",
    "Meningioma": "meningioma",
    "Pituitary": "pituitary",
    "Healthy": "no_tumor",
}


@dataclass(frozen=True)
class Sample:
    """One image: where it is, its canonical label, the split it came in, and its patient if known."""

    path: str
    label: str
    source_split: str  # "train" or "test", as distributed
    patient_id: str = ""


def is_image_file(path: Path) -> bool:
    """A visible file with an image suffix, or of any other name with a DICOM preamble (a scanner's `IM0001`)."""
    if path.name.startswith(".") or not path.is_file():
        return False
    return path.suffix.lower() in IMAGE_SUFFIXES or dicom.has_preamble(path)


def image_names(path: Path | str) -> list[str]:
    """The image names one file contributes: itself, or one `file#n` per frame of a multi-frame DICOM."""
    return dicom.frame_paths(path) if dicom.is_dicom(path, PICTURE_SUFFIXES) else [str(path)]


def file_samples(path: Path, label: str, split: str, patient_id: str = "") -> list[Sample]:
    """Samples of one image file (one per frame); a DICOM's own patient when none is given."""
    if dicom.is_dicom(path, PICTURE_SUFFIXES):
        try:
            head = dicom.header(path)
        except (dicom.DicomError, OSError):  # the scan reports the file as unreadable, with its reason
            return [Sample(str(path), label, split, patient_id)]
        names = [str(path)] if head.frames == 1 else [f"{path}#{k}" for k in range(1, head.frames + 1)]
        return [Sample(name, label, split, patient_id or head.group) for name in names]
    return [Sample(str(path), label, split, patient_id)]


def canonical_label(name: str, where: str) -> str:
    """Map a class folder or manifest label to a canonical label, or fail naming what is allowed."""
    label = ALIASES.get(name) or ALIASES.get(name.strip())
    if label is None:
        raise DataError(f"{where}: unknown class {name!r}; known class names: {', '.join(sorted(ALIASES))}")
    return label


def _split_dir(root: Path, split: str) -> Path | None:
    for name in SPLIT_DIRS[split]:
        if (root / name).is_dir():
            return root / name
    return None


def discover(root: str | Path) -> list[Sample]:
    """All images under `root`'s Training/Testing class folders, sorted by path for reproducibility."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: dataset path does not exist")
    if root.is_file() and root.suffix.lower() == ".csv":
        return read_manifest(root)
    if not root.is_dir():
        raise DataError(f"{root}: expected a dataset folder or a .csv manifest")
    split_dirs = {split: _split_dir(root, split) for split in SPLIT_DIRS}
    for split, split_dir in split_dirs.items():
        if split_dir is None:
            # A run trained on a CSV manifest before runs recorded the manifest itself names its folder.
            manifests = sorted(p.name for p in root.glob("*.csv"))
            hint = f"; for a CSV manifest, pass it: --data {root / manifests[0]}" if manifests else ""
            raise DataError(
                f"{root}: no {SPLIT_DIRS[split][0]}/ folder (expected <root>/Training/<class>/*.jpg "
                f"and <root>/Testing/<class>/*.jpg){hint}"
            )
    samples: list[Sample] = []
    for split, split_dir in split_dirs.items():
        class_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not class_dirs:
            raise DataError(f"{split_dir}: no class folders")
        seen: dict[str, Path] = {}
        for class_dir in class_dirs:
            label = canonical_label(class_dir.name, str(class_dir))
            if label in seen:
                raise DataError(f"{class_dir}: same class as {seen[label].name}/ ({label})")
            seen[label] = class_dir
            files = sorted(p for p in class_dir.iterdir() if is_image_file(p))
            if not files:
                raise DataError(f"{class_dir}: class folder has no .jpg/.jpeg/.png/.dcm images")
            for file in files:
                samples += file_samples(file, label, split)
        missing = [c for c in CLASSES if c not in seen]
        if missing:
            raise DataError(f"{split_dir}: missing class folders for {', '.join(missing)}")
    return samples


def read_manifest(path: str | Path) -> list[Sample]:
    """Samples from a CSV manifest with columns `path,label[,split][,patient_id]`.

    Each image is listed once, inside the manifest's folder: a duplicate would count a test image twice,
    and a path outside the folder has no name relative to it (the split hashes and fingerprints use those).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: manifest not found")
    base = path.parent
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or ())
        if not {"path", "label"} <= columns:
            raise DataError(
                f"{path}: manifest needs the columns path,label[,split][,patient_id]; "
                f"found {','.join(reader.fieldnames or []) or 'none'}"
            )
        samples = []
        first_line: dict[str, int] = {}
        for row in reader:
            line = reader.line_num
            where = f"{path}:{line}"
            for column in ("path", "label"):
                if not (row.get(column) or "").strip():
                    raise DataError(f"{where}: row has no {column} (columns path,label[,split][,patient_id])")
            split = (row.get("split") or "train").strip().lower()
            if split not in SPLIT_DIRS:
                raise DataError(f"{where}: split {split!r} must be train or test")
            rel = _inside(base, row["path"].strip(), where)
            file, frame = dicom.split_frame(base / rel)
            if not file.is_file():
                raise DataError(f"{where}: image {row['path']!r} not found")
            label = canonical_label(row["label"], where)
            patient = (row.get("patient_id") or "").strip()
            if frame is None:
                found = file_samples(file, label, split, patient)
            else:  # one frame of a multi-frame DICOM, e.g. to label a volume's slices one by one
                found = [s for s in file_samples(file, label, split, patient) if s.path == str(base / rel)]
                if not found:
                    raise DataError(f"{where}: {row['path']!r} names no frame of a multi-frame DICOM")
            for sample in found:  # a frame counts as listed by its file's line as well as by its own
                key = Path(sample.path).relative_to(base).as_posix()
                if key in first_line:
                    raise DataError(
                        f"{where}: image {key!r} is listed again (first on line {first_line[key]}); "
                        "list each image once"
                    )
                first_line[key] = line
            samples += found
    if not samples:
        raise DataError(f"{path}: manifest lists no images")
    present = {s.label for s in samples}
    missing = [c for c in CLASSES if c not in present]
    if missing:
        raise DataError(f"{path}: no images for {', '.join(missing)}")
    return sorted(samples, key=lambda s: s.path)


def _inside(base: Path, given: str, where: str) -> str:
    """`given` (relative to `base`, or absolute) as a normalised path relative to `base`; outside it → DataError.

    Lexical, like the `relative_to` the fingerprints use: `a/../b.png` is `b.png`, and a symlinked folder
    inside `base` stays inside.
    """
    root = os.path.abspath(base)
    rel = os.path.relpath(os.path.normpath(os.path.join(root, given)), root)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        raise DataError(
            f"{where}: image {given!r} is outside the manifest's folder {base}; "
            "paths must lead into it (move the manifest up, or the images in)"
        )
    return Path(rel).as_posix()


def fingerprint(samples: list[Sample], root: str | Path) -> str:
    """A short hash of (relative path, label, split) of every sample: identifies the dataset a run used."""
    h = hashlib.sha256()
    for s in samples:
        rel = Path(s.path).relative_to(root).as_posix()
        h.update(f"{rel}\t{s.label}\t{s.source_split}\n".encode())
    return h.hexdigest()[:16]
