"""Find the images and labels of a user's own labelled set, to score a trained model on (`eval --external`).

Unlike a training set, an external set need not hold every class nor come split: it is
- a folder of class folders, `<root>/<class>/…` (nested folders allowed, as DICOM series come),
- a Kaggle-style folder, `<root>/{Training,Testing}/<class>/…`, every image of both taken, or
- a CSV manifest `path,label[,split][,patient_id]` (`neurocascade.data.layout.read_manifest`; the split is ignored).
Images are whatever `neurocascade.data.layout` reads: JPEG, PNG and DICOM (a multi-frame file is one image per frame).
Class names are the ones training accepts (`neurocascade.data.layout.ALIASES`); anything else is refused in one line.

    samples, base = discover_external("~/scans/hospital-b")
"""

from __future__ import annotations

from pathlib import Path

from neurocascade.data.layout import (
    CLASSES,
    SPLIT_DIRS,
    Sample,
    canonical_label,
    file_samples,
    is_image_file,
    read_manifest,
)
from neurocascade.errors import DataError


def _class_folders(root: Path) -> list[Path]:
    """The class folders: under Training/ and Testing/ when the set has them, else right under `root`."""
    split_dirs = [root / name for names in SPLIT_DIRS.values() for name in names if (root / name).is_dir()]
    parents = split_dirs or [root]
    return sorted(p for parent in parents for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))


def _folder_samples(root: Path) -> list[Sample]:
    folders = _class_folders(root)
    if not folders:
        raise DataError(
            f"{root}: no class folders; expected {root}/<class>/<images> (classes: "
            f"{', '.join(CLASSES)}) or a CSV manifest with the columns path,label"
        )
    samples: list[Sample] = []
    for folder in folders:
        label = canonical_label(folder.name, str(folder))
        files = sorted(p for p in folder.rglob("*") if not _hidden(p, folder) and is_image_file(p))
        if not files:
            raise DataError(f"{folder}: class folder has no .jpg/.jpeg/.png/.dcm images")
        for file in files:
            samples += file_samples(file, label, "test")
    return samples


def _hidden(path: Path, top: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(top).parts)


def discover_external(source: str | Path) -> tuple[list[Sample], Path]:
    """(samples sorted by path, the folder their paths are relative to) of a labelled folder or CSV manifest."""
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: external data set does not exist")
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise DataError(f"{source}: expected a folder of class folders or a .csv manifest (path,label)")
        samples = read_manifest(source, require_all_classes=False)
        return samples, source.parent
    samples = _folder_samples(source)
    return sorted(samples, key=lambda s: s.path), source
