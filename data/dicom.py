"""DICOM slices as images: display pixels the way a radiology viewer shows them, one image per frame.

Research MRI comes as DICOM. A DICOM stores raw detector values, not display pixels, so each slice goes through
the standard display pipeline before it joins the JPEG/PNG path (`neurocascade.data.images.read_gray` calls `read_gray` here):

1. modality LUT: RescaleSlope / RescaleIntercept (or a Modality LUT Sequence), raw values → physical units;
2. VOI LUT: a VOI LUT Sequence if there is one, else the first WindowCenter / WindowWidth (VOILUTFunction
   LINEAR, LINEAR_EXACT or SIGMOID) straight onto 0..255, else the slice's own min–max;
3. MONOCHROME1 (bright = low values) inverted, so bone and tissue look as in MONOCHROME2;
4. colour (RGB, YBR — converted by pydicom — or PALETTE COLOR) reduced to 8-bit grey with the same ITU-R 601
   luma as every other decoder.

Multi-frame files are volumes or series of slices: each frame is its own image, named `<file>#<n>` with n
counted from 1 as DICOM numbers frames (`scan.dcm#1` … `scan.dcm#15`). A single-frame file keeps its plain
path. `frame_paths` expands a file into those names, which is how folders, CSV manifests and `predict` list
a multi-frame file; a manifest may also name one frame (`scan.dcm#7`) to label slices one by one.

The patient is PatientID, else StudyInstanceUID (`header(path).group`): the loader makes it the image's
patient group, so the grouped split never puts slices of one patient on both sides.

pydicom decodes uncompressed, RLE and (through Pillow) JPEG baseline / JPEG 2000 pixel data. Other
compressed transfer syntaxes (JPEG-LS, lossless JPEG) need a plugin; such a file, or one without pixel data,
is a one-line `BadImage` naming what is missing. pydicom is pure Python: the edge install reads DICOM too.

    names = frame_paths("series/scan.dcm")          # ["series/scan.dcm#1", ...] or ["series/scan.dcm"]
    gray = read_gray("series/scan.dcm#3")            # uint8 (H, W)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DICOM_SUFFIXES = (".dcm", ".dicom")
PREAMBLE_OFFSET = 128  # a DICOM Part 10 file: 128-byte preamble, then b"DICM"
_FRAME = re.compile(r"^(?P<file>.+)#(?P<frame>[0-9]+)$")
_HEADER_TAGS = ("NumberOfFrames", "PatientID", "StudyInstanceUID")


class DicomError(Exception):
    """A DICOM file that cannot be shown as an image; the message is the reason (no file name)."""


@dataclass(frozen=True)
class DicomHeader:
    """What listing a dataset needs from a DICOM file, read without its pixel data."""

    frames: int
    group: str  # PatientID, else StudyInstanceUID, else ""


def split_frame(path: str | Path) -> tuple[Path, int | None]:
    """`scan.dcm#3` → (scan.dcm, 3); anything else, or a file really named that way, → (path, None)."""
    text = str(path)
    match = _FRAME.match(text)
    if match is None or Path(text).exists():
        return Path(text), None
    return Path(match["file"]), int(match["frame"])


def has_preamble(path: str | Path) -> bool:
    """True for a DICOM Part 10 file (b"DICM" at byte 128): how an extension-less DICOM is recognised."""
    try:
        with open(path, "rb") as fh:
            fh.seek(PREAMBLE_OFFSET)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def is_dicom(path: str | Path, known_suffixes: tuple[str, ...] = (".jpg", ".jpeg", ".png")) -> bool:
    """A frame name, a .dcm/.dicom file, or a file of another suffix that starts like DICOM.

    Files with a suffix in `known_suffixes` are taken at their word without opening them.
    """
    file, frame = split_frame(path)
    suffix = file.suffix.lower()
    if frame is not None or suffix in DICOM_SUFFIXES:
        return True
    return suffix not in known_suffixes and has_preamble(file)


def content_sha256(path: str | Path) -> str:
    """sha256 of the file's bytes; for a frame, of the bytes plus the frame number.

    Each frame is its own image to the copy audit ("exact" copies share a sha256) and to the activation cache
    (keyed by it), so frames of one file must not share a hash; a file without a frame hashes as always.
    """
    file, frame = split_frame(path)
    digest = hashlib.sha256(file.read_bytes())
    if frame is not None:
        digest.update(f"#frame={frame}".encode())
    return digest.hexdigest()


def _dcmread(file: Path, pixels: bool):
    """The dataset (pixel data deferred: read only when decoded); DicomError when it is not DICOM at all."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    # A .dcm without the Part 10 preamble (old ACR-NEMA style) is still read; other names must have it.
    force = file.suffix.lower() in DICOM_SUFFIXES
    try:
        if pixels:
            return pydicom.dcmread(file, force=force, defer_size=4096)
        return pydicom.dcmread(file, force=force, stop_before_pixels=True, specific_tags=list(_HEADER_TAGS))
    except FileNotFoundError:
        raise
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError, AttributeError) as exc:
        raise DicomError(f"not a readable DICOM file ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _frames(ds) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def header(path: str | Path) -> DicomHeader:
    """Frame count and patient group of a DICOM file (header only); DicomError when unreadable."""
    ds = _dcmread(Path(path), pixels=False)
    group = str(ds.get("PatientID", "") or "").strip() or str(ds.get("StudyInstanceUID", "") or "").strip()
    return DicomHeader(frames=_frames(ds), group=group)


def frame_paths(path: str | Path) -> list[str]:
    """The image names a DICOM file contributes: itself, or `<file>#1` … `<file>#n` for n > 1 frames.

    An unreadable header gives the plain path, so the loader reports the file as unreadable with its reason.
    """
    try:
        frames = header(path).frames
    except (DicomError, OSError):
        return [str(path)]
    return [str(path)] if frames == 1 else [f"{path}#{k}" for k in range(1, frames + 1)]


def read_gray(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """One DICOM slice (a file, or `<file>#<n>`) as uint8 grey (H, W) for display; DicomError says why not.

    `max_pixels`: a larger slice is refused from its header (Rows × Columns), before any decoding.
    """
    file, frame = split_frame(path)
    ds = _dcmread(file, pixels=True)
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        modality = str(ds.get("Modality", "") or "").strip()
        raise DicomError(f"DICOM without pixel data{f' (modality {modality})' if modality else ''}: not an image")
    frames = _frames(ds)
    if frame is None and frames > 1:
        raise DicomError(f"multi-frame DICOM ({frames} frames): name one frame as {file.name}#1 … #{frames}")
    if frame is not None and not 1 <= frame <= frames:
        raise DicomError(f"frame {frame} does not exist (the file has {frames} frame{'s' if frames > 1 else ''})")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if max_pixels is not None and rows * cols > max_pixels:
        raise DicomError(f"too large ({cols}x{rows} px; at most {max_pixels} px here); downscale it first")
    _check_decoder(ds)
    arr = _decode(ds, None if frames == 1 else frame - 1)
    return _to_display(arr, ds)


def _check_decoder(ds) -> None:
    """Refuse, naming the transfer syntax and the plugins, compressed data pydicom cannot decode here."""
    from pydicom.pixels import get_decoder

    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid is None or not uid.is_compressed:
        return
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise DicomError(f"compressed as {uid.name}, which pydicom cannot decode") from None
    if not decoder.is_available:
        plugins = "; ".join(decoder.missing_dependencies) or "a decoding plugin"
        raise DicomError(
            f"compressed as {uid.name}, which needs a decoder plugin not installed here ({plugins}); "
            "install one, or convert the file to an uncompressed transfer syntax"
        )


def _decode(ds, index: int | None) -> np.ndarray:
    from pydicom.pixels import pixel_array

    try:
        return pixel_array(ds, index=index)
    except (
        ValueError,
        RuntimeError,
        NotImplementedError,
        AttributeError,
        KeyError,
        TypeError,
        EOFError,
        OSError,
    ) as exc:
        # pydicom lists each plugin's failure on its own line after a header line: keep them, on one line
        reason = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
        uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        what = f" (compressed as {uid.name})" if uid is not None and uid.is_compressed else ""
        raise DicomError(f"cannot decode its pixel data{what}: {reason}") from None


def _to_display(arr: np.ndarray, ds) -> np.ndarray:
    """Decoded stored values of one frame → uint8 grey: LUTs, window, inversion (module doc)."""
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    bits = int(ds.get("BitsStored", 8) or 8)
    if photometric == "PALETTE COLOR":
        arr, bits = apply_color_lut(arr, ds), int(ds.RedPaletteColorLookupTableDescriptor[2])
    if arr.ndim == 3:  # colour: no modality or VOI LUT applies; full scale of the stored bits → 8 bits
        return _luma(arr, bits)
    values = np.asarray(apply_modality_lut(arr, ds), np.float64)
    if "VOILUTSequence" in ds:
        item = ds.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2]) or 16
        gray = _scale(np.asarray(apply_voi(values, ds, index=0), np.float64), 0.0, float(2**bits - 1))
    elif (window := _window(ds)) is not None:
        gray = _apply_window(values, *window, str(ds.get("VOILUTFunction", "LINEAR")).strip().upper())
    else:
        gray = _scale(values, float(values.min()), float(values.max()))
    out = np.round(gray).astype(np.uint8)
    return 255 - out if photometric == "MONOCHROME1" else out


def _window(ds) -> tuple[float, float] | None:
    """The first (default) WindowCenter / WindowWidth pair; None when absent or unusable (width < 1)."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    try:
        center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
    except (TypeError, ValueError, IndexError):
        return None
    return (center, width) if width >= 1 and np.isfinite(center) else None


def _first(value) -> float:
    """A window value: files with several windows list the default first."""
    if isinstance(value, (str, bytes, int, float)) or not hasattr(value, "__len__"):
        return float(value)
    return float(value[0])


def _apply_window(x: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 windowing onto 0..255 (LINEAR unless LINEAR_EXACT or SIGMOID)."""
    if function == "SIGMOID":
        return 255.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip(((x - center) / width + 0.5) * 255.0, 0.0, 255.0)
    if width == 1:  # LINEAR with width 1 is a threshold at center - 0.5
        return np.where(x <= center - 0.5, 0.0, 255.0)
    return np.clip(((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0, 0.0, 255.0)


def _scale(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear map of [lo, hi] onto 0..255; a constant slice is black."""
    if not hi > lo:
        return np.zeros(x.shape, np.float64)
    return np.clip((x - lo) * (255.0 / (hi - lo)), 0.0, 255.0)


def _luma(rgb: np.ndarray, bits: int) -> np.ndarray:
    from PIL import Image

    rgb8 = rgb if rgb.dtype == np.uint8 else np.round(_scale(rgb.astype(np.float64), 0.0, float(2**bits - 1)))
    return np.asarray(
        Image.fromarray(np.ascontiguousarray(rgb8[..., :3]).astype(np.uint8), "RGB").convert("L"), np.uint8
    )
