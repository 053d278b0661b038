"""Image decoding and preprocessing for the edge runtime: Pillow and numpy only (no OpenCV, no TensorFlow).

The same steps as `neurocascade.data.images.read_gray` → `to_model_input`, which training and evaluation use. Decoding and
padding are that module's own functions (it imports OpenCV only for resizing and CLAHE); the resize is
re-implemented here because a Raspberry Pi install has no OpenCV:

    x = load_image("scan.jpg", size=260)     # uint8 (260, 260, 3), values 0..255, raises BadImage

- decode: EXIF orientation applied, any mode to 8-bit grey exactly as `neurocascade.data.images` (16-bit rescaled to the image's
  range, transparency composited onto black, ITU-R 601 luma); DICOM slices through `neurocascade.data.dicom` (pydicom, pure
  Python: modality LUT, window, MONOCHROME1 inverted, one image per frame as `file.dcm#n`);
- zero-pad to a centred square;
- shrink by area averaging (OpenCV's INTER_AREA: each source pixel weighs by the fraction of it a target pixel
  covers); enlarge with bicubic convolution a = -0.75 (OpenCV's INTER_CUBIC kernel, pixel-centre mapping,
  replicated border). Both as separable weight matrices in float64. No Pillow filter is close enough: BOX
  takes a source pixel wholly or not at all (off by up to 150 grey levels on noise at a 102 → 32 shrink) and
  BICUBIC uses a = -0.5. What remains is rounding (OpenCV works partly in fixed point): at most 1 grey level
  per pixel, checked by tests/edge/test_preprocess.py;
- CLAHE, only for models trained with `data.clahe = true`, needs OpenCV (`pip install opencv-python-headless`):
  a histogram equalisation re-implemented slightly differently would shift every pixel, so it is not faked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurocascade.data import images, layout
from neurocascade.errors import UserError

IMAGE_SUFFIXES = layout.IMAGE_SUFFIXES  # .jpg/.jpeg/.png and DICOM's .dcm/.dicom
CUBIC_A = -0.75  # OpenCV's INTER_CUBIC coefficient
MAX_GREY_DIFF = 1  # max |this − data.images.to_model_input| per pixel, from fixed- vs floating-point rounding
MAX_PIXELS = 4096 * 4096  # decoded per image at most: a larger JPEG decodes at 1/2-1/8 scale, a larger PNG is refused
RESIZE_ROWS = 512  # source rows converted to float64 at a time when shrinking: bounds memory for large images


class BadImage(UserError):
    """An image the runtime cannot use; the message names the file and the reason, on one line."""


def read_gray(path: str | Path, min_side: int = 1) -> np.ndarray:
    """Decode a JPEG/PNG or DICOM slice into uint8 grey (H, W) exactly as training does; `BadImage` names the file.

    Above `MAX_PIXELS` (far above any MRI slice) a JPEG is decoded at a reduced scale and other formats are
    refused, both judged from the header: a device has 1-8 GB (`neurocascade.data.images._decode_within`).
    """
    if Path(path).is_dir():
        raise BadImage(f"{path}: is a directory, not an image")
    try:
        return images.read_gray(path, min_side, max_pixels=MAX_PIXELS)
    except images.BadImage as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "cannot decode"
        raise BadImage(f"{path}: {reason}") from None


pad_to_square = images.pad_to_square


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """(n, 4) weights of the taps at offsets -1, 0, 1, 2 for fractional positions t (Keys kernel, a = -0.75)."""
    a = CUBIC_A
    x = np.stack([1 + t, t, 1 - t, 2 - t], axis=1)
    near = ((a + 2) * x - (a + 3)) * x * x + 1  # |x| <= 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a  # 1 < |x| < 2
    return np.where(x <= 1, near, far)


def _cubic_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) interpolation matrix: OpenCV's centre mapping, taps clamped to the edge (replicated border)."""
    pos = (np.arange(dst) + 0.5) * (src / dst) - 0.5
    base = np.floor(pos).astype(int)
    w = _cubic_weights(pos - base)
    m = np.zeros((dst, src))
    for k in range(4):
        np.add.at(m, (np.arange(dst), np.clip(base + k - 1, 0, src - 1)), w[:, k])
    return m


def _area_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) shrinking matrix: target pixel i averages source [i·s, (i+1)·s), s = src/dst, by overlap."""
    edges = np.arange(dst + 1) * (src / dst)
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(src)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0, None)
    return overlap / (src / dst)


def resize_square(square: np.ndarray, size: int) -> np.ndarray:
    """uint8 (S, S) → (size, size): area averaging to shrink, bicubic (a = -0.75) to enlarge."""
    side = square.shape[0]
    if side == size:
        return square
    m = _area_matrix(side, size) if side > size else _cubic_matrix(side, size)
    if side <= RESIZE_ROWS:
        out = m @ square.astype(np.float64) @ m.T
    else:  # M·S·Mᵀ summed over row blocks of S: a float64 copy of a large image would dwarf the image itself
        out = np.zeros((size, size))
        for start in range(0, side, RESIZE_ROWS):
            rows = slice(start, start + RESIZE_ROWS)
            out += m[:, rows] @ (square[rows].astype(np.float64) @ m.T)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _clahe(gray: np.ndarray, clip: float) -> np.ndarray:
    try:
        import cv2
    except ModuleNotFoundError:
        raise UserError(
            "this model was trained with CLAHE, which the edge runtime computes with OpenCV: "
            "pip install opencv-python-headless"
        ) from None
    return cv2.createCLAHE(clipLimit=float(clip), tileGridSize=(8, 8)).apply(gray)


def to_model_input(gray: np.ndarray, size: int, clahe: bool = False, clahe_clip: float = 2.0) -> np.ndarray:
    """Square, resize, optionally CLAHE, replicate to 3 channels: uint8 (size, size, 3)."""
    if gray.ndim != 2 or gray.dtype != np.uint8 or gray.size == 0:
        raise ValueError(f"expected a non-empty uint8 (H, W) array, got {gray.dtype} {gray.shape}")
    square = resize_square(pad_to_square(gray), size)
    if clahe:
        square = _clahe(square, clahe_clip)
    return np.ascontiguousarray(np.repeat(square[:, :, None], 3, axis=2))


def load_image(
    path: str | Path, size: int, clahe: bool = False, clahe_clip: float = 2.0, min_side: int = 1
) -> np.ndarray:
    """Read and preprocess one image file for a model with input `size`."""
    return to_model_input(read_gray(path, min_side), size, clahe, clahe_clip)
