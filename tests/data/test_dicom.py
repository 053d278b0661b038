"""DICOM in: the display pipeline on hand-computable slices and on files pydicom ships, frames as images,
patients as split groups, and a phantom dataset read from DICOM exactly as from its PNGs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from neurocascade.data import dicom  # noqa: E402
from neurocascade.data.dataset import load_dataset  # noqa: E402
from neurocascade.data.images import BadImage, read_gray  # noqa: E402
from neurocascade.data.layout import discover, read_manifest  # noqa: E402
from neurocascade.data.phantoms import write_phantom_dataset  # noqa: E402
from neurocascade.config import load_config  # noqa: E402
from synthetic import dicom_copy_of_dataset, structured_image, write_dicom  # noqa: E402


def shipped(name: str) -> Path:
    """A test file bundled with pydicom; skipped (not downloaded) where this pydicom does not bundle it."""
    from pydicom.data import get_testdata_file

    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    if not (folder / name).is_file():
        pytest.skip(f"pydicom {pydicom.__version__} does not bundle {name}")
    return Path(get_testdata_file(name))


def tiny_slice(
    path: Path,
    stored: list[list[int]],
    photometric: str = "MONOCHROME2",
    window: tuple[float, float] | None = (10.5, 21),
) -> Path:
    """A 2×3 uint16 slice with RescaleSlope 2 / RescaleIntercept −10 and an optional window."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.4", generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    arr = np.array(stored, np.uint16)
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = 2, -10
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = arr.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


# stored 0, 7, 9, 11, 13, 60 → modality LUT (2·s − 10) → −10, 4, 8, 12, 16, 110
STORED = [[0, 7, 9], [11, 13, 60]]


def test_modality_lut_then_linear_window_hand_computed(tmp_path):
    # LINEAR, c = 10.5, w = 21: 0 at or below 0, 255 above 20, else ((x − 10)/20 + 0.5)·255
    gray = read_gray(tiny_slice(tmp_path / "w.dcm", STORED))
    np.testing.assert_array_equal(gray, [[0, 51, 102], [153, 204, 255]])


def test_monochrome1_is_inverted(tmp_path):
    gray = read_gray(tiny_slice(tmp_path / "m1.dcm", STORED, photometric="MONOCHROME1"))
    np.testing.assert_array_equal(gray, [[255, 204, 153], [102, 51, 0]])


def test_no_window_is_min_max_of_the_modality_values(tmp_path):
    # (x + 10) / 120 · 255 for x = −10, 4, 8, 12, 16, 110 → 0, 29.75, 38.25, 46.75, 55.25, 255
    gray = read_gray(tiny_slice(tmp_path / "mm.dcm", STORED, window=None))
    np.testing.assert_array_equal(gray, [[0, 30, 38], [47, 55, 255]])


def test_shipped_ct_and_mr_slices():
    from pydicom.pixels import apply_modality_lut

    ct_file = shipped("CT_small.dcm")
    ct = pydicom.dcmread(ct_file)
    assert "WindowCenter" not in ct  # so min–max of the Hounsfield units
    hu = apply_modality_lut(ct.pixel_array, ct).astype(np.float64)
    expected = np.round((hu - hu.min()) * 255 / (hu.max() - hu.min())).astype(np.uint8)
    np.testing.assert_array_equal(read_gray(ct_file), expected)

    mr_file = shipped("MR_small.dcm")
    mr = pydicom.dcmread(mr_file)
    c, w = float(mr.WindowCenter), float(mr.WindowWidth)
    x = mr.pixel_array.astype(np.float64)
    expected = np.round(np.clip(((x - (c - 0.5)) / (w - 1) + 0.5) * 255, 0, 255)).astype(np.uint8)
    gray = read_gray(mr_file)
    assert gray.shape == (mr.Rows, mr.Columns)
    np.testing.assert_array_equal(gray, expected)


def test_shipped_mr_as_monochrome1_is_the_inverse(tmp_path):
    mr = pydicom.dcmread(shipped("MR_small.dcm"))
    mr.PhotometricInterpretation = "MONOCHROME1"
    mr.save_as(tmp_path / "mono1.dcm")
    np.testing.assert_array_equal(read_gray(tmp_path / "mono1.dcm"), 255 - read_gray(shipped("MR_small.dcm")))


def test_multi_frame_file_is_one_image_per_frame(tmp_path):
    src = shipped("rtdose.dcm")
    frames = pydicom.dcmread(src).pixel_array.astype(np.float64)  # (15, 10, 10), no window: min–max per frame
    names = dicom.frame_paths(src)
    assert names == [f"{src}#{k}" for k in range(1, len(frames) + 1)]
    for k in (0, 7, len(frames) - 1):
        f = frames[k]
        expected = np.round((f - f.min()) * 255 / (f.max() - f.min()))
        # 1 grey level: a value landing on .5 may round either way with the operations in another order
        np.testing.assert_allclose(read_gray(names[k]), expected, atol=1, rtol=0)
    assert len({dicom.content_sha256(n) for n in names}) == len(names)  # frames are distinct images
    with pytest.raises(BadImage, match=r"multi-frame DICOM \(15 frames\): name one frame"):
        read_gray(src)
    with pytest.raises(BadImage, match="frame 16 does not exist"):
        read_gray(f"{src}#16")


def test_unusable_files_are_one_line_reasons():
    with pytest.raises(BadImage, match="DICOM without pixel data") as no_pixels:
        read_gray(shipped("reportsi.dcm"))
    assert "\n" not in str(no_pixels.value)
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSLossless

    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS plugin is installed here")
    with pytest.raises(BadImage, match="compressed as JPEG-LS Lossless.*needs a decoder plugin") as compressed:
        read_gray(shipped("MR_small_jpeg_ls_lossless.dcm"))
    assert "\n" not in str(compressed.value)


def test_edge_reader_names_the_file_on_one_line():
    from neurocascade.edge.preprocess import BadImage as EdgeBadImage, read_gray as edge_read_gray

    path = shipped("reportsi.dcm")
    with pytest.raises(EdgeBadImage, match=f"^{path}: DICOM without pixel data") as err:
        edge_read_gray(path)
    assert "\n" not in str(err.value)


def test_written_dicom_round_trips_exactly(tmp_path):
    gray = structured_image(3, 40)
    for mono1 in (False, True):
        np.testing.assert_array_equal(read_gray(write_dicom(tmp_path / f"{mono1}.dcm", gray, monochrome1=mono1)), gray)
    stack = [structured_image(4, 40), structured_image(5, 40)]
    path = write_dicom(tmp_path / "two.dcm", stack)
    for k, frame in enumerate(stack, start=1):
        np.testing.assert_array_equal(read_gray(f"{path}#{k}"), frame)


def _folder(root: Path) -> Path:
    for split in ("Training", "Testing"):
        for k, cls in enumerate(("glioma", "meningioma", "pituitary", "notumor")):
            write_dicom(
                root / split / cls / "a.dcm",
                structured_image(10 * k + (split == "Testing"), 40),
                patient_id=f"{split}-{cls}",
            )
    return root


def test_folders_list_dcm_extensionless_and_frames_with_patients(tmp_path):
    root = _folder(tmp_path / "ds")
    shutil.copy(shipped("MR_small.dcm"), root / "Training" / "glioma" / "IM0001")  # a scanner's name
    (root / "Training" / "glioma" / "notes.txt").write_text("not an image")
    shutil.copy(shipped("rtdose.dcm"), root / "Training" / "glioma" / "volume.dcm")
    samples = discover(root)
    glioma = [s for s in samples if s.source_split == "train" and s.label == "glioma"]
    names = sorted(Path(s.path).name for s in glioma)
    assert names == sorted(["a.dcm", "IM0001"] + [f"volume.dcm#{k}" for k in range(1, 16)])
    by_name = {Path(s.path).name: s.patient_id for s in glioma}
    assert by_name["a.dcm"] == "Training-glioma"
    assert by_name["IM0001"] == str(pydicom.dcmread(shipped("MR_small.dcm")).PatientID)
    assert by_name["volume.dcm#3"] == str(pydicom.dcmread(shipped("rtdose.dcm")).PatientID)


def test_manifest_expands_a_volume_or_names_one_frame(tmp_path):
    root = _folder(tmp_path / "ds")
    write_dicom(root / "vol.dcm", [structured_image(k, 40) for k in (50, 51, 52)], patient_id="V")
    lines = ["path,label,split,patient_id"] + [
        f"{p.relative_to(root).as_posix()},{p.parent.name},{'test' if p.parts[-3] == 'Testing' else 'train'}"
        for p in sorted(root.rglob("a.dcm"))
    ]
    (root / "all.csv").write_text("\n".join(lines + ["vol.dcm,glioma,train"]) + "\n")
    assert sum(s.path.startswith(str(root / "vol.dcm#")) for s in read_manifest(root / "all.csv")) == 3
    (root / "one.csv").write_text("\n".join(lines + ["vol.dcm#2,meningioma,train,P9"]) + "\n")
    (frame,) = [s for s in read_manifest(root / "one.csv") if "vol.dcm" in s.path]
    assert (Path(frame.path).name, frame.label, frame.patient_id) == ("vol.dcm#2", "meningioma", "P9")
    (root / "twice.csv").write_text("\n".join(lines + ["vol.dcm,glioma,train", "vol.dcm#2,glioma,train"]) + "\n")
    with pytest.raises(Exception, match=r"vol.dcm#2' is listed again"):
        read_manifest(root / "twice.csv")


@pytest.fixture(scope="module")
def phantom_pair(tmp_path_factory, test_config_path):
    cfg = load_config(test_config_path)
    base = tmp_path_factory.mktemp("dicom-phantoms")
    p = cfg.phantoms
    write_phantom_dataset(base / "png", p.n_per_class, p.size, p.seed, p.test_fraction, p.copies_fraction)
    patients = dicom_copy_of_dataset(base / "png", base / "dcm")
    return cfg, base, patients


def test_phantom_dicom_dataset_loads_the_same_pixels_with_patient_groups(phantom_pair):
    cfg, base, patients = phantom_pair
    png = load_dataset(cfg, str(base / "png"), warn=lambda m: None)
    dcm = load_dataset(cfg, str(base / "dcm"), warn=lambda m: None)
    assert [Path(s.path).relative_to(dcm.root).with_suffix(".png") for s in dcm.samples] == [
        Path(s.path).relative_to(png.root) for s in png.samples
    ]
    for a, b in zip(png.scans, dcm.scans):
        np.testing.assert_array_equal(a.pixels, b.pixels)
        np.testing.assert_array_equal(a.dhash, b.dhash)
    assert [s.patient_id for s in dcm.samples] == [
        patients[Path(s.path).relative_to(dcm.root).as_posix()] for s in dcm.samples
    ]
    # a patient's images share a split group and a role, whatever their pixels say
    for pid in set(patients.values()):
        members = [k for k, s in enumerate(dcm.samples) if s.patient_id == pid]
        assert len({int(dcm.groups[k]) for k in members}) == 1
        # (protocol B drops single training images that copy a test image: not a split decision)
        assert len({dcm.roles[k] for k in members if dcm.roles[k] in ("train", "val")}) <= 1


def test_grouped_protocol_keeps_each_patient_on_one_side(phantom_pair):
    cfg, base, _ = phantom_pair
    cfg_c = load_config(Path(__file__).resolve().parents[2] / "configs" / "test.toml", ['data.protocol="grouped"'])
    dcm = load_dataset(cfg_c, str(base / "dcm"), pixels=False, warn=lambda m: None)
    for pid in {s.patient_id for s in dcm.samples}:
        assert len({dcm.roles[k] for k, s in enumerate(dcm.samples) if s.patient_id == pid}) == 1
