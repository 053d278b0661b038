"""Occlusion maps find the patch a model depends on, and cost grid² passes per image."""

import numpy as np
import pytest

from neurocascade.eval.occlusion import occluded_copies, occlusion_map


def test_the_patch_the_model_reads_is_the_hottest():
    calls = []

    def predict(x: np.ndarray) -> np.ndarray:  # class 1 = brightness of the top-right quarter
        calls.append(len(x))
        p1 = x[:, :16, 16:].mean(axis=(1, 2, 3)) / 255.0
        return np.stack([1 - p1, p1], axis=1)

    images = np.zeros((2, 32, 32, 3), np.uint8)
    images[:, :16, 16:] = 250
    heat = occlusion_map(predict, images, [1, 1], grid=4)
    assert heat.shape == (2, 4, 4) and heat.max() == 1.0
    hot = np.zeros((4, 4), bool)
    hot[:2, 2:] = True
    assert (heat[:, hot] > 0).all() and (heat[:, ~hot] == 0).all()
    assert calls == [1, 16, 1, 16]


def test_copies_cover_each_patch_once():
    image = np.full((10, 10, 3), 200, np.uint8)
    image[0, 0] = 0
    copies = occluded_copies(image, 3)
    changed = (copies != image[None]).any(axis=3)
    assert copies.shape == (9, 10, 10, 3) and (changed.sum(axis=0) == 1).all()


def test_bad_grid_is_refused():
    with pytest.raises(ValueError, match="grid"):
        occlusion_map(lambda x: np.ones((len(x), 2)), np.zeros((1, 4, 4, 3), np.uint8), [0], grid=0)
