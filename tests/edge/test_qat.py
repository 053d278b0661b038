"""Quantization-aware training: what gets quantized on the real backbones, the range warm-up, per-epoch resume.

The real backbones are only quantized here (≈10 s each at 32 px), never converted: a TFLite conversion of them
takes 30-60 s even at 64 px. Warm-up and resume use the tiny test backbone from conftest.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurocascade.edge.qat import quantize_for_training, run_qat, warm_up_ranges
from neurocascade.hierarchy.train import TrainingInterrupted
from neurocascade.models.build import build_classifier
from neurocascade.models.weights import WeightsSource
from neurocascade.config import ModelConfig, load_config
from neurocascade.tf import keras

# Layers the default 8-bit registry rejects, by class: the stem Rescaling (and Normalization for B0), B0's
# squeeze-excitation Multiply (16 blocks) and the head's BatchNormalization after pooling.
CUSTOM = {
    "EfficientNetLite2": {"BatchNormalization": 1, "Rescaling": 1},
    "EfficientNetB0": {"BatchNormalization": 1, "Multiply": 16, "Normalization": 1, "Rescaling": 1},
}
DEPTHWISE = {"EfficientNetLite2": 21, "EfficientNetB0": 16}  # one per MBConv block


@pytest.mark.parametrize("backbone", sorted(CUSTOM))
def test_real_backbones_quantize_with_the_custom_config_where_needed(backbone):
    model = build_classifier(ModelConfig(backbone=backbone, weights="none", head_units=8), 4, 32, WeightsSource("none"))
    qat_model, info = quantize_for_training(model)
    assert info["custom_by_class"] == CUSTOM[backbone]
    assert info["float"] == 0 and info["layers"] == len(model.layers) - 1  # every layer but the input wrapped
    assert info["weight_layers_fake_quant"] == info["weight_layers"]  # every conv and dense
    assert info["depthwise_per_channel"] == DEPTHWISE[backbone]
    assert info["default"] + info["depthwise_per_channel"] + info["passthrough"] + info["custom"] == info["layers"]
    assert qat_model.output_shape == (None, 4)
    # Depthwise kernels get one range per channel (TFMOT's own config would give them one per tensor).
    for layer in qat_model.layers:
        if type(getattr(layer, "layer", None)).__name__ == "DepthwiseConv2D":
            ranges = [w for w in layer.weights if w.name.split("/")[-1].startswith("depthwise_kernel_m")]
            assert len(ranges) == 2 and all(w.shape == (layer.layer.depthwise_kernel.shape[2],) for w in ranges)


def _ranges(model: keras.Model) -> dict[str, float]:
    return {
        v.name: float(v.numpy())
        for v in model.non_trainable_variables
        if v.shape.rank == 0 and v.name.split("/")[-1].split(":")[0].endswith(("_min", "_max"))
    }


def test_warm_up_replaces_the_initial_ranges(make_tiny_classifier):
    model = make_tiny_classifier()
    qat_model, _ = quantize_for_training(model)
    before = _ranges(qat_model)
    images = np.random.default_rng(0).integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    assert warm_up_ranges(qat_model, images, batches=3, batch_size=8, seed=0) == 3
    after = _ranges(qat_model)
    (quantize_input,) = [layer for layer in qat_model.layers if type(layer).__name__ == "QuantizeLayer"]
    lo, hi = sorted(float(v.numpy()) for v in quantize_input.weights if v.name.split(":")[0].endswith(("_min", "_max")))
    assert (lo, hi) == (0.0, 255.0)  # all values seen: the uint8 input quantization is the identity
    moved = [k for k in before if before[k] in (-6.0, 6.0)]
    assert moved and all(after[k] not in (-6.0, 6.0) for k in moved)  # TFMOT's ±6 start is gone after 3 batches
    # The warmed-up fake-quant model now tracks the float model (the trap: before, it outputs ~constants).
    x = images[:8].astype(np.float32)
    assert np.abs(qat_model(x, training=False).numpy() - model(x, training=False).numpy()).max() < 0.05


def test_run_qat_checkpoints_every_epoch_and_resumes(tmp_path, test_config_path, make_tiny_classifier):
    cfg = load_config(test_config_path, ["export.qat_epochs=2", "export.qat_warmup_batches=2", "train.batch_size=8"])
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8), rng.integers(0, 3, 16)
    xv, yv = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), rng.integers(0, 3, 8)
    model = make_tiny_classifier()
    original = [w.copy() for w in model.get_weights()]
    weights = {0: 1.0, 1: 1.0, 2: 1.0}
    with pytest.raises(TrainingInterrupted):
        run_qat(model, x, y, xv, yv, cfg, tmp_path / "qat", weights, stop_after_epochs=1)
    state = json.loads((tmp_path / "qat" / "state.json").read_text())
    assert state["epochs_done"] == 1 and [r["epoch"] for r in state["history"]] == [0, 1]
    qat_model, summary = run_qat(model, x, y, xv, yv, cfg, tmp_path / "qat", weights)
    assert summary["epochs"] == 2 and [r["epoch"] for r in summary["history"]] == [0, 1, 2]  # warm-up ran once
    assert summary["warmup_batches"] == 2 and 0 <= summary["best_epoch"] <= 2
    assert all(np.array_equal(a, b) for a, b in zip(original, model.get_weights()))  # the float model is untouched
    # A finished QAT reloads its best weights instead of training again.
    again, summary2 = run_qat(model, x, y, xv, yv, cfg, tmp_path / "qat", weights)
    assert summary2["history"] == summary["history"]
    np.testing.assert_array_equal(again(xv.astype(np.float32)).numpy(), qat_model(xv.astype(np.float32)).numpy())
