"""Cross-layer equalization of the residual streams (neurocascade.edge.equalize): the float function is kept,
the stream channels' ranges come out equal, and what cannot be equalized is left alone and named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurocascade.config import ModelConfig
from neurocascade.edge.equalize import equalize_streams, residual_streams, stream_ranges
from neurocascade.edge.export import export_run, qat_key
from neurocascade.models.build import build_classifier
from neurocascade.models.weights import WeightsSource
from neurocascade.tf import keras


@pytest.fixture(scope="module")
def lite2():
    """A 64-px EfficientNetLite2 classifier with the multi-scale head and project BatchNorms of uneven scale."""
    cfg = ModelConfig(
        backbone="EfficientNetLite2", weights="none", head_units=8, taps=("block4d", "block6e", "block7a")
    )
    model = build_classifier(cfg, 3, 64, WeightsSource("none"))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            spread = rng.uniform(0.05, 3.0, gamma.shape) if layer.name.endswith("project_bn") else 1.0
            layer.set_weights(
                [gamma * spread, beta + rng.normal(0, 0.1, beta.shape), mean, var * rng.uniform(0.5, 2, var.shape)]
            )
    images = rng.integers(0, 256, (12, 64, 64, 3)).astype(np.float32)
    return model, images


def test_lite2_has_seven_streams_read_by_convolutions_and_the_head_taps(lite2):
    model, _ = lite2
    streams = residual_streams(model)
    assert [s.stage for s in streams] == [1, 2, 3, 4, 5, 6, 7]
    assert streams[1].producers == ("block2a_project_bn", "block2b_project_bn", "block2c_project_bn")
    assert streams[1].consumers == ("block2b_expand_conv", "block2c_expand_conv", "block3a_expand_conv")
    assert streams[3].consumers[-1] == "head_tap_block4d"  # pooled beside the last map
    assert streams[6].consumers == ("top_conv", "head_tap_block7a")


def test_equalization_keeps_the_function_and_equalizes_every_stream(lite2):
    model, images = lite2
    before = stream_ranges(model, residual_streams(model), images)
    assert max(r.max() / r.min() for r in before.values()) > 5  # the uneven project scales show in the ranges
    result = equalize_streams(model, images)
    assert result.skipped == {} and result.streams == [1, 2, 3, 4, 5, 6, 7]
    expected = model(images, training=False).numpy()
    np.testing.assert_allclose(result.model(images, training=False).numpy(), expected, atol=2e-5)
    after = stream_ranges(result.model, residual_streams(result.model), images)
    for stage, r in after.items():
        np.testing.assert_allclose(r, r.max(), rtol=1e-3, err_msg=f"stage {stage}")
    # the original model is untouched
    np.testing.assert_allclose(stream_ranges(model, residual_streams(model), images)[2], before[2])


def test_a_stream_added_to_another_stage_is_left_alone(make_tiny_classifier):
    """The tiny test backbone adds block1a's projection to the stem's activation: two scales in one add."""
    model = make_tiny_classifier()
    images = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3)).astype(np.float32)
    result = equalize_streams(model, images)
    assert result.streams == [] and result.skipped == {1: "block1a_add also reads stem_activation"}
    np.testing.assert_array_equal(result.model(images).numpy(), model(images).numpy())


def test_export_records_equalization_and_keys_qat_by_it(tmp_path, train_tiny_flat, phantom_root):
    run = tmp_path / "flat"
    train_tiny_flat(run, phantom_root)
    messages: list[str] = []
    report = export_run(run, progress=messages.append, overrides=["export.qat=false", "export.equalize=true"])
    assert report["equalize"] is True
    assert json.loads((run / "export" / "agreement.json").read_text())["equalize"] is True
    assert (
        "flat: equalized the residual streams of stages none, stage 1 not (block1a_add also reads stem_activation)"
        in messages
    )
    assert "equalize" in report["models"]["flat"]["seconds"]
    from neurocascade.config import load_config

    off, on = (load_config(run / "config.toml", [f"export.equalize={v}"]) for v in ("false", "true"))
    assert "equalize" not in qat_key(off, "sha")["export"]  # the key of exports from before the setting
    assert qat_key(on, "sha")["export"]["equalize"] is True
