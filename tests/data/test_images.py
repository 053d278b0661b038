"""Decoding and preprocessing: every input format ends as the same 8-bit grayscale, then the same model input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from neurocascade.data.images import BadImage, apply_clahe, pad_to_square, read_gray, to_model_input


def _gradient(h: int = 40, w: int = 48) -> np.ndarray:
    """A deterministic uint8 test pattern with a dark border, like an MRI slice."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = ((xx * 5 + yy * 3) % 256).astype(np.uint8)
    img[:2] = 0
    return img


def test_read_gray_l_png_roundtrip(tmp_path):
    gray = _gradient()
    Image.fromarray(gray, mode="L").save(tmp_path / "a.png")
    out = read_gray(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == gray.shape
    np.testing.assert_array_equal(out, gray)


def test_read_gray_rgb_copy_of_gray_is_exact(tmp_path):
    gray = _gradient()
    Image.fromarray(np.stack([gray] * 3, axis=-1), mode="RGB").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_gray(str(tmp_path / "a.png")), gray)


def test_read_gray_rgba_opaque_equals_gray_and_transparent_is_black(tmp_path):
    gray = _gradient()
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    rgba[10, 10, 3] = 0  # one fully transparent pixel
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = read_gray(tmp_path / "a.png")
    expected = gray.copy()
    expected[10, 10] = 0
    np.testing.assert_array_equal(out, expected)


def test_read_gray_16bit_png_is_rescaled_not_clipped(tmp_path):
    arr16 = _gradient().astype(np.uint16) * 16  # 12-bit range, as many scanners store it
    Image.fromarray(arr16).save(tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode.startswith("I")
    out = read_gray(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == arr16.shape
    assert out.max() == 255 and out[0, 0] == 0  # full range used, background still black
    expected = np.round(arr16 * 255.0 / arr16.max())
    np.testing.assert_allclose(out, expected, atol=1)


def test_read_gray_palette_png(tmp_path):
    gray = _gradient()
    Image.fromarray(gray, mode="L").convert("P").save(tmp_path / "a.png")
    out = read_gray(tmp_path / "a.png")
    assert out.shape == gray.shape and out.dtype == np.uint8


def test_read_gray_jpeg_rgb_close_to_source(tmp_path):
    gray = _gradient()
    Image.fromarray(np.stack([gray] * 3, axis=-1)).save(tmp_path / "a.jpg", quality=95)
    out = read_gray(tmp_path / "a.jpg")
    assert out.shape == gray.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - gray).mean() < 6  # lossy, but the same picture


def test_read_gray_applies_exif_orientation(tmp_path):
    gray = _gradient(20, 40)  # landscape pixels, EXIF says rotate 90° → portrait
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(gray).save(tmp_path / "a.jpeg", exif=exif, quality=95)
    assert read_gray(tmp_path / "a.jpeg").shape == (40, 20)


def test_read_gray_garbage_and_truncated_raise(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"this is not an image at all")
    with pytest.raises(BadImage, match="cannot decode"):
        read_gray(tmp_path / "junk.png")

    Image.fromarray(_gradient(64, 64)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImage, match="cannot decode"):
        read_gray(tmp_path / "cut.jpg")

    with pytest.raises(BadImage, match="not found"):
        read_gray(tmp_path / "missing.png")


def test_read_gray_too_small_mentions_size(tmp_path):
    Image.fromarray(np.zeros((40, 12), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(BadImage, match=r"too small \(12x40 px"):
        read_gray(tmp_path / "small.png", min_side=32)
    assert read_gray(tmp_path / "small.png", min_side=12).shape == (40, 12)


def test_pad_to_square_centres_and_keeps_aspect():
    a = np.arange(1, 9, dtype=np.uint8).reshape(2, 4)
    out = pad_to_square(a)
    expected = np.array([[0, 0, 0, 0], [1, 2, 3, 4], [5, 6, 7, 8], [0, 0, 0, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(pad_to_square(a.T), expected.T)
    odd = pad_to_square(np.ones((1, 4), np.uint8))  # odd extra row goes below
    np.testing.assert_array_equal(odd[:, 0], [0, 1, 0, 0])
    sq = np.ones((3, 3), np.uint8)
    np.testing.assert_array_equal(pad_to_square(sq), sq)


@pytest.mark.parametrize("shape", [(40, 48), (100, 60), (32, 32)])
def test_to_model_input_shape_dtype_channels(shape):
    out = to_model_input(_gradient(*shape), size=64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_to_model_input_is_padded_not_stretched():
    gray = np.full((32, 64), 200, np.uint8)  # wide bright slab → padded rows top and bottom stay black
    out = to_model_input(gray, size=32)
    assert out[:6].max() == 0 and out[-6:].max() == 0
    assert out[12:20].min() == 200


def test_clahe_changes_low_contrast_and_is_deterministic():
    rng = np.random.default_rng(0)
    low = (100 + rng.integers(0, 12, size=(64, 64))).astype(np.uint8)
    a, b = apply_clahe(low), apply_clahe(low.copy())
    assert a.dtype == np.uint8 and a.shape == low.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, low)
    assert a.std() > low.std()
    with_clahe = to_model_input(low, size=32, clahe=True, clahe_clip=3.0)
    without = to_model_input(low, size=32)
    assert not np.array_equal(with_clahe, without)
    np.testing.assert_array_equal(with_clahe, to_model_input(low, size=32, clahe=True, clahe_clip=3.0))


def test_to_model_input_rejects_non_gray():
    with pytest.raises(ValueError):
        to_model_input(np.zeros((8, 8, 3), np.uint8), size=16)
