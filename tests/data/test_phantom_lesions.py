"""The Lesions style: defaults keep every existing phantom, the demo's style makes lesions more conspicuous."""

import numpy as np
import pytest

from neurocascade.data.phantoms import Lesions, make_phantom
from neurocascade.config import load_config
from neurocascade.errors import ConfigError


def _draw(label: str, lesions: Lesions, seed: int = 3) -> np.ndarray:
    return make_phantom(label, np.random.default_rng(seed), 64, lesions)


def test_default_style_is_the_historic_generator():
    for label in ("glioma", "no_tumor"):
        assert np.array_equal(_draw(label, Lesions()), make_phantom(label, np.random.default_rng(3), 64))
        assert np.array_equal(_draw(label, Lesions(1.0, 1.0, 0.18)), _draw(label, Lesions()))


def test_bigger_brighter_lesions_change_the_lesion_only():
    loud = Lesions(scale=2.0, contrast=3.0, hard_fraction=0.0)
    quiet = Lesions(hard_fraction=0.0)
    healthy = _draw("no_tumor", quiet)
    for label in ("glioma", "meningioma", "pituitary"):
        diff_loud = np.abs(_draw(label, loud).astype(int) - healthy).sum()
        diff_quiet = np.abs(_draw(label, quiet).astype(int) - healthy).sum()
        assert diff_loud > 1.5 * diff_quiet, label
    assert np.array_equal(_draw("no_tumor", loud), healthy)  # no lesion, same head


@pytest.mark.parametrize("kwargs", [{"scale": 0.0}, {"contrast": 9.0}, {"hard_fraction": 1.5}, {"scale": True}])
def test_bad_style_is_refused(kwargs):
    with pytest.raises(ValueError, match="lesions"):
        Lesions(**kwargs)


def test_demo_config_turns_lesions_up_and_bad_keys_are_config_errors(tmp_path):
    demo = load_config("configs/demo.toml").phantoms
    assert demo.lesion_scale > 1 and demo.lesion_contrast > 1 and 0 < demo.hard_fraction < 0.5
    assert load_config("configs/test.toml").phantoms.lesion_scale == 1.0
    with pytest.raises(ConfigError, match="hard_fraction"):
        load_config("configs/test.toml", ["phantoms.hard_fraction=2"])
