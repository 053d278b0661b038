"""resolve_weights: every branch, with small stand-in files in tmp_path (nothing is downloaded)."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from neurocascade.models.registry import BackboneSpec, get_backbone
from neurocascade.models.weights import WeightsSource, file_md5, resolve_weights
from neurocascade.errors import ConfigError, UserError

B2 = get_backbone("EfficientNetB2")


@pytest.fixture
def dirs(tmp_path):
    configured, shared, cache = tmp_path / "configured", tmp_path / "shared", tmp_path / "keras"
    shared.mkdir()
    cache.mkdir()
    return [configured, shared, cache]  # the configured one does not exist: that is allowed


def put(directory, name, content=b"not really an h5 file"):
    path = directory / name
    path.write_bytes(content)
    return path, hashlib.md5(content).hexdigest()


def test_registered_hashes_are_keras_md5s():
    # Keras' get_file reads a 32-hex-digit hash as md5 (64 would be sha256); the registry stores md5
    for name in ("EfficientNetB2", "EfficientNetB0", "EfficientNetV2S", "ResNet50", "DenseNet121"):
        spec = get_backbone(name)
        assert spec.imagenet_file.endswith("_notop.h5") and len(spec.imagenet_md5) == 32
    assert B2.imagenet_md5 == "111f8e2ac8aa800a7a99e3239f7bfb39"


def test_none():
    assert resolve_weights(B2, "none", []) == WeightsSource("none", "", "", "")


def test_found_in_a_later_directory_with_the_right_md5(dirs):
    path, md5 = put(dirs[2], B2.imagenet_file)
    spec = dataclasses.replace(B2, imagenet_md5=md5)
    assert resolve_weights(spec, "imagenet", dirs) == WeightsSource("imagenet", str(path), md5)
    assert file_md5(path) == md5


def test_first_directory_wins(dirs):
    first, md5 = put(dirs[1], B2.imagenet_file)
    put(dirs[2], B2.imagenet_file, b"other")
    assert resolve_weights(dataclasses.replace(B2, imagenet_md5=md5), "imagenet", dirs).path == str(first)


def test_wrong_md5_is_refused_naming_file_and_both_hashes(dirs):
    path, md5 = put(dirs[1], B2.imagenet_file)
    with pytest.raises(UserError) as err:
        resolve_weights(B2, "imagenet", dirs, allow_download=True, fallback="none")
    message = str(err.value)
    assert str(path) in message and B2.imagenet_md5 in message and md5 in message and "\n" not in message


def test_missing_is_one_line_naming_file_md5_dirs_and_the_ways_out(dirs):
    with pytest.raises(UserError) as err:
        resolve_weights(B2, "imagenet", dirs)
    message = str(err.value)
    assert "\n" not in message
    for part in (
        B2.imagenet_file,
        B2.imagenet_md5,
        *map(str, dirs),
        "model.allow_download = true",
        'model.weights_fallback = "none"',
    ):
        assert part in message


def test_missing_with_download_allowed_leaves_it_to_keras(dirs):
    assert resolve_weights(B2, "imagenet", dirs, allow_download=True) == WeightsSource("imagenet", "", B2.imagenet_md5)


def test_missing_with_fallback_none_warns_loudly(dirs):
    source = resolve_weights(B2, "imagenet", dirs, fallback="none")
    assert (source.kind, source.path) == ("random-fallback", "")
    assert "ImageNet weights for EfficientNetB2 not found" in source.warning
    assert "random initialisation" in source.warning and "far worse" in source.warning


def test_unknown_fallback():
    with pytest.raises(ConfigError):
        resolve_weights(B2, "imagenet", [], fallback="random")


def test_backbone_fetching_its_own_weights():
    lite = BackboneSpec("Lite", build=lambda inputs, weights: inputs, default_size=260)
    assert resolve_weights(lite, "imagenet", []) == WeightsSource("imagenet", "", "")


def test_file_path(tmp_path):
    path, md5 = put(tmp_path, "mine.h5")
    assert resolve_weights(B2, str(path), []) == WeightsSource("file", str(path.resolve()), md5)


def test_missing_file_path(tmp_path):
    with pytest.raises(UserError, match="not found"):
        resolve_weights(B2, str(tmp_path / "nope.h5"), [])
    with pytest.raises(UserError):
        resolve_weights(B2, str(tmp_path), [])  # a directory is not a weights file
