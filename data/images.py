"""Decode and preprocess one MRI slice — the same code path for training, evaluation and export.

Every consumer (training, evaluation, the exported edge model's reference inputs, the copy audit) goes
through these functions, so a model never sees pixels prepared differently from the ones it was trained on.

    gray = read_gray("scan.jpg", min_side=32)          # uint8 (H, W), raises BadImage
    x = to_model_input(gray, size=260, clahe=False)    # uint8 (260, 260, 3), values 0..255

Images stay 0..255: the backbone's own normalisation lives inside the model.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["BadImage", "read_gray", "pad_to_square", "apply_clahe", "to_model_input"]

_WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}  # more than 8 bits per pixel
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


class BadImage(Exception):
    """An image file that cannot be used; the message is the reason, e.g. "too small (12x40 px)"."""


def read_gray(path: str | Path, min_side: int = 1, max_pixels: int | None = None) -> np.ndarray:
    """Decode a JPEG/PNG, or a DICOM slice (`neurocascade.data.dicom`: `.dcm`, a `file.dcm#3` frame, or DICM at byte 128),
    into 8-bit grayscale (H, W).

    MRI is single-channel; RGB copies of it carry the same information three times, so everything is
    reduced to one channel here. EXIF orientation is applied so a rotated phone/export copy lines up with
    the original. Raises `BadImage` for missing, unreadable or truncated files and for a side < min_side.
    `max_pixels` (the edge runtime's memory cap): see `_decode_within`.
    """
    from neurocascade.data import dicom  # light: pydicom itself is imported only when a DICOM is read

    if dicom.is_dicom(path):
        try:
            gray = dicom.read_gray(path, max_pixels=max_pixels)
        except FileNotFoundError:
            raise BadImage("file not found") from None
        except dicom.DicomError as exc:
            raise BadImage(str(exc)) from None
        return _check_side(gray, min_side)
    try:
        with warnings.catch_warnings():
            if max_pixels is not None:  # the size is judged below; Pillow's warning would only add noise
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im_file = Image.open(path)
        with im_file as im:
            if max_pixels is not None:
                _decode_within(im, max_pixels)
            im.load()  # decode fully now, so truncated files fail here rather than later
            im = ImageOps.exif_transpose(im)
            gray = _to_gray8(im)
    except FileNotFoundError:
        raise BadImage("file not found") from None
    except Image.DecompressionBombError:
        raise BadImage("too large to decode safely") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"cannot decode ({exc})") from None
    return _check_side(gray, min_side)


def _check_side(gray: np.ndarray, min_side: int) -> np.ndarray:
    h, w = gray.shape
    if min(h, w) < min_side:
        raise BadImage(f"too small ({w}x{h} px, need at least {min_side} px per side)")
    return gray


def _decode_within(im: Image.Image, max_pixels: int) -> None:
    """Keep the decode of `im` (opened, not loaded) within `max_pixels`, judged from its header.

    A larger JPEG is decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself (`Image.draft`), so its full size
    never exists in memory; any other format cannot be decoded smaller and is refused. A 160 KB PNG of
    13000² px would otherwise take gigabytes on a device with 1-8 GB.
    """
    w, h = im.size
    if w * h <= max_pixels:
        return
    if im.format == "JPEG":
        for scale in (2, 4, 8):
            if (w // scale) * (h // scale) <= max_pixels:
                im.draft(im.mode, (max(1, w // scale), max(1, h // scale)))
                return
    raise BadImage(
        f"too large ({w}x{h} px; at most {max_pixels} px here, or a JPEG up to 64 times that); downscale it first"
    )


def _to_gray8(im: Image.Image) -> np.ndarray:
    """Any PIL mode → uint8 (H, W); wide modes are rescaled rather than clipped."""
    if im.mode in _WIDE_MODES:
        # PIL's convert("L") clips 16-bit values at 255 (a white image). MRI intensities are arbitrary units,
        # so scale to the image's range; 0 stays 0 so the black background stays black.
        arr = np.asarray(im, dtype=np.float64)
        if arr.ndim == 3:
            arr = arr[..., 0]
        lo, hi = min(float(arr.min()), 0.0), float(arr.max())
        if hi <= lo:
            return np.zeros(arr.shape, dtype=np.uint8)
        return np.round((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in _ALPHA_MODES:
        # Transparent means "no signal": composite onto black, the MRI background.
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float64)
        luma = np.asarray(im.convert("RGB").convert("L"), dtype=np.float64)
        return np.round(luma * rgba[..., 3] / 255.0).astype(np.uint8)
    if im.mode != "L":
        # ITU-R 601 luma in fixed point with weights summing to 1: R=G=B=v maps exactly to v.
        im = im.convert("RGB").convert("L")
    return np.array(im, dtype=np.uint8)


def pad_to_square(gray: np.ndarray) -> np.ndarray:
    """Zero-pad to a centred square (odd extra pixel goes bottom/right), so resizing never distorts anatomy."""
    h, w = gray.shape[:2]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    out = np.zeros((side, side) + gray.shape[2:], dtype=gray.dtype)
    out[top : top + h, left : left + w] = gray
    return out


def apply_clahe(gray: np.ndarray, clip: float = 2.0, tile: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation: evens out scanner/contrast differences between sites."""
    _check_gray(gray)
    import cv2  # imported here: decoding alone (the edge runtime's path) must not need OpenCV

    return cv2.createCLAHE(clipLimit=float(clip), tileGridSize=(int(tile), int(tile))).apply(gray)


def to_model_input(gray: np.ndarray, size: int, clahe: bool = False, clahe_clip: float = 2.0) -> np.ndarray:
    """Square, resize, optionally CLAHE, replicate to 3 channels: uint8 (size, size, 3) for an RGB backbone.

    Area interpolation when shrinking avoids aliasing; cubic when enlarging keeps edges. CLAHE runs after the
    resize so its tiles cover the same anatomy fraction whatever the source resolution.
    """
    import cv2

    _check_gray(gray)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    square = pad_to_square(gray)
    side = square.shape[0]
    if side > size:
        square = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
    elif side < size:
        square = cv2.resize(square, (size, size), interpolation=cv2.INTER_CUBIC)
    if clahe:
        square = apply_clahe(square, clip=clahe_clip)
    return np.ascontiguousarray(np.repeat(square[:, :, None], 3, axis=2))


def _check_gray(gray: np.ndarray) -> None:
    if gray.ndim != 2 or gray.dtype != np.uint8 or gray.size == 0:
        raise ValueError(f"expected a non-empty uint8 (H, W) array, got {gray.dtype} {gray.shape}")
