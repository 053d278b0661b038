"""The edge runtime's Pillow-only preprocessing matches training's (OpenCV) `neurocascade.data.images` within 1 grey level.

Shrinking is area averaging and enlarging bicubic a = -0.75 in both; OpenCV rounds in fixed point, this module in
float64, hence the tolerance `MAX_GREY_DIFF` = 1 (Pillow's own BOX filter was off by up to 150 on noise).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from neurocascade.data import images as train_images
from neurocascade.data.phantoms import make_phantom
from neurocascade.edge import preprocess
from neurocascade.errors import UserError


def _cases():
    rng = np.random.default_rng(0)
    phantom = make_phantom("meningioma", np.random.default_rng(3), 64)
    yield "phantom 64 -> 32 (shrink x2)", phantom, 32
    yield "phantom non-square 64x45 -> 32", phantom[:, 10:55], 32
    yield "noise 102 -> 32 (non-integer shrink)", rng.integers(0, 256, (102, 102), dtype=np.uint8), 32
    yield "noise 37x50 -> 260 (enlarge)", rng.integers(0, 256, (37, 50), dtype=np.uint8), 260
    yield "phantom 24 -> 32 (enlarge)", np.asarray(Image.fromarray(phantom).resize((24, 24))), 32
    yield "same size", phantom, 64


@pytest.mark.parametrize("name,gray,size", list(_cases()), ids=[c[0] for c in _cases()])
def test_matches_training_preprocessing_within_one_grey_level(name, gray, size):
    ours = preprocess.to_model_input(gray, size).astype(int)
    theirs = train_images.to_model_input(gray, size).astype(int)
    assert ours.shape == theirs.shape == (size, size, 3) and ours.dtype == int
    assert np.abs(ours - theirs).max() <= preprocess.MAX_GREY_DIFF


def test_clahe_goes_through_opencv_like_training():
    gray = make_phantom("glioma", np.random.default_rng(1), 64)
    np.testing.assert_array_equal(
        preprocess.to_model_input(gray, 64, clahe=True), train_images.to_model_input(gray, 64, clahe=True)
    )


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "I;16", "P"])
def test_decodes_every_mode_like_training(tmp_path, mode):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (40, 50, 4), dtype=np.uint8)
    if mode == "I;16":
        im = Image.fromarray(base[..., 0].astype(np.uint16) * 200)  # 16-bit grey: rescaled, not clipped
    elif mode == "P":
        im = Image.fromarray(base[..., :3]).convert("P")
    else:
        im = Image.fromarray(base[..., : {"L": 1, "RGB": 3, "RGBA": 4}[mode]].squeeze())
    path = tmp_path / f"x_{mode.replace(';', '')}.png"
    im.save(path)
    np.testing.assert_array_equal(preprocess.read_gray(path), train_images.read_gray(path))


def test_bad_images_are_one_line_user_errors(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not an image\n" * 3)
    Image.fromarray(np.zeros((8, 40), np.uint8)).save(tmp_path / "thin.png")
    for path, match in (
        (tmp_path / "missing.png", "file not found"),
        (tmp_path / "junk.png", "cannot decode"),
        (tmp_path / "thin.png", "too small"),
    ):
        with pytest.raises(UserError, match=match) as err:
            preprocess.load_image(path, 32, min_side=32)
        assert "\n" not in str(err.value) and str(path) in str(err.value)
