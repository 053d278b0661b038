"""Small seeded test images and folder datasets (imported by tests as `synthetic`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


def structured_image(seed: int, size: int = 96) -> np.ndarray:
    """A seeded grayscale image with MRI-like low-frequency structure (distinct seeds hash far apart)."""
    rng = np.random.default_rng(seed)
    noise = Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8))
    smooth = np.asarray(noise.filter(ImageFilter.GaussianBlur(size / 16)), dtype=np.float32)
    smooth = (smooth - smooth.min()) / (np.ptp(smooth) + 1e-6) * 255
    return smooth.astype(np.uint8)


def save(path: Path, gray: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(gray).save(path, **kwargs)
    return path


def make_folder_dataset(
    root: Path,
    class_dirs: dict[str, str],
    n: int = 3,
    seed: int = 0,
    split_names: tuple[str, str] = ("Training", "Testing"),
) -> Path:
    """`root/{Training,Testing}/<dir>/img_k.png` with distinct structured images; returns root."""
    k = seed * 1000
    for split in split_names:
        for folder in class_dirs.values():
            for _ in range(n):
                save(root / split / folder / f"img_{k}.png", structured_image(k))
                k += 1
    return root


def write_dicom(
    path: Path,
    frames: np.ndarray | list[np.ndarray],
    patient_id: str = "P0",
    monochrome1: bool = False,
    window: bool = True,
) -> Path:
    """A DICOM file (one frame, or several of the same size) whose display pixels are exactly `frames`.

    The grey values go through every step `neurocascade.data.dicom` undoes: stored as 4·v + 100 in 16 bits with
    RescaleSlope 0.25 / RescaleIntercept −25 (the modality LUT gives v back), windowed by center 128 /
    width 256 (the identity on 0..255 under DICOM's LINEAR formula) and, with `monochrome1`, stored inverted.
    Without `window` the reader falls back to min–max, which is the identity only for a slice spanning 0..255.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    stack = (
        np.stack(frames)
        if isinstance(frames, list)
        else np.asarray(frames)[None]
        if np.ndim(frames) == 2
        else np.asarray(frames)
    )
    values = 255 - stack.astype(np.int64) if monochrome1 else stack.astype(np.int64)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # MR Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "MR", patient_id
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows, ds.Columns = stack.shape[1:3]
    if len(stack) > 1:
        ds.NumberOfFrames = len(stack)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = 0.25, -25
    if window:
        ds.WindowCenter, ds.WindowWidth = 128, 256
    ds.PixelData = (values * 4 + 100).astype("<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def dicom_copy_of_dataset(src: Path, dst: Path, images_per_patient: int = 2) -> dict[str, str]:
    """Every .png of a folder dataset written as .dcm under the same relative path in `dst`.

    Consecutive images of a class folder share a PatientID (`images_per_patient` each), so the grouped
    split has patients to keep together; odd-numbered patients are stored MONOCHROME1. Returns
    {relative .dcm path: PatientID}.
    """
    patients: dict[str, str] = {}
    for folder in sorted({p.parent for p in src.rglob("*.png")}):
        for k, png in enumerate(sorted(folder.glob("*.png"))):
            number = k // images_per_patient
            patient = f"{folder.parent.name}-{folder.name}-{number}"
            rel = png.relative_to(src).with_suffix(".dcm")
            write_dicom(dst / rel, np.asarray(Image.open(png).convert("L")), patient, monochrome1=number % 2 == 1)
            patients[rel.as_posix()] = patient
    return patients
