"""The INT8 head refit (neurocascade.edge.head_refit, `export.head_refit_epochs`): the layers after the pooled
features distilled onto the INT8 backbone's features, the backbone untouched."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurocascade.config import ModelConfig, load_config
from neurocascade.edge.bias_correction import int8_pooled_features
from neurocascade.edge.calibration import representative
from neurocascade.edge.export import convert_int8, export_run
from neurocascade.edge.head_refit import head_of, refit_head
from neurocascade.errors import ConfigError
from neurocascade.models.build import build_classifier
from neurocascade.models.weights import WeightsSource
from neurocascade.tf import keras

REFIT = [
    "export.qat=false",
    "export.bias_correction=true",
    'export.float_ops=["FULLY_CONNECTED"]',
    "export.head_refit_epochs=3",
    "export.head_refit_lr=1e-3",
]


@pytest.fixture(scope="module")
def lite2():
    """A 64-px EfficientNetLite2 with the multi-scale head, images and its INT8 pooled features."""
    cfg = ModelConfig(backbone="EfficientNetLite2", weights="none", head_units=8, taps=("block4d", "block6e"))
    keras.utils.set_random_seed(0)
    model = build_classifier(cfg, 3, 64, WeightsSource("none"))
    images = np.random.default_rng(0).integers(0, 256, (48, 64, 64, 3)).astype(np.float32)
    int8 = convert_int8(model, representative(images[:16]), ["FULLY_CONNECTED"])
    return model, images, int8_pooled_features(int8, images, "head_concat")


def _kl(model: keras.Model, features: np.ndarray, targets: np.ndarray) -> float:
    p = head_of(model)(features, training=False).numpy()
    return float(np.mean(np.sum(targets * np.log(np.clip(targets, 1e-7, 1) / np.clip(p, 1e-7, 1)), axis=1)))


def test_the_head_learns_the_int8_features_and_the_rest_stays(lite2):
    model, images, features = lite2
    # targets far from what the head gives now (its own probabilities are within 0.01 of KL of them here): a label
    # drawn per image, smoothed, so the test sees the head fitted to the features it is given
    labels = np.random.default_rng(2).integers(0, 3, len(images))
    targets = (0.8 * np.eye(3)[labels] + 0.2 / 3).astype(np.float32)
    before = [w.copy() for w in model.get_weights()]
    refitted = refit_head(model, features, targets, epochs=20, lr=1e-3, seed=0)
    assert _kl(refitted, features, targets) < 0.5 * _kl(model, features, targets)
    for w, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, b)  # the source untouched
    changed = {
        layer.name
        for layer, other in zip(refitted.layers, model.layers)
        if any(not np.array_equal(a, b) for a, b in zip(layer.get_weights(), other.get_weights()))
    }
    assert changed == {"head_dense", "head_out"}  # the Dense layers; BatchNorm and the backbone as they were
    pooled = lambda m: keras.Model(m.input, m.get_layer("head_concat").output).predict(images, verbose=0)  # noqa: E731
    np.testing.assert_array_equal(pooled(refitted), pooled(model))
    again = refit_head(model, features, targets, epochs=20, lr=1e-3, seed=0)
    for a, b in zip(again.get_weights(), refitted.get_weights()):
        np.testing.assert_array_equal(a, b)  # the same seed, the same head


@pytest.mark.parametrize(
    "setting",
    ["export.qat=true", 'export.float_ops=["MEAN"]', 'export.output="logits"', "export.head_refit_epochs=-1"],
)
def test_a_refit_the_file_could_not_carry_is_a_one_line_error(test_config_path, setting):
    with pytest.raises(ConfigError, match="head_refit_epochs"):
        load_config(test_config_path, [*REFIT, setting])


def test_export_refits_the_head_on_the_same_backbone_and_records_it(
    tmp_path, train_tiny_flat, phantom_root, monkeypatch
):
    import neurocascade.edge.export as export

    run = tmp_path / "flat"
    train_tiny_flat(run, phantom_root)
    plain = export_run(run, overrides=REFIT[:3])
    before = (run / "export" / "flat.int8.tflite").read_bytes()
    fitted: list[tuple[int, int]] = []
    refit = export.refit_heads

    def spy(model, fits, *args):
        ((features, targets),) = fits.values()
        fitted.append((len(features), len(targets)))
        return refit(model, fits, *args)

    monkeypatch.setattr(export, "refit_heads", spy)
    messages: list[str] = []
    report = export_run(run, progress=messages.append, overrides=REFIT)
    after = (run / "export" / "flat.int8.tflite").read_bytes()
    entry = json.loads((run / "export" / "agreement.json").read_text())["models"]["flat"]
    assert entry == report["models"]["flat"]
    (n_train, n_targets), *more = fitted
    assert not more and n_train == n_targets > entry["n_val"] > 0  # once, on every training image
    assert entry["head_refit"] == {
        "images": n_train,
        "epochs": 3,
        "agreement_before": plain["models"]["flat"]["int8_top1_agreement"],
        "kept": True,
    }
    assert entry["seconds"]["head_refit"] > 0
    assert any(m.startswith(f"flat: head refitted on the INT8 features of {n_train} training images") for m in messages)
    images = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3)).astype(np.float32)  # the phantoms' size
    np.testing.assert_array_equal(  # the same calibration, so the same backbone
        int8_pooled_features(after, images, "head_gap"), int8_pooled_features(before, images, "head_gap")
    )
    assert after != before
    card = (run / "export" / "MODEL_CARD.md").read_text()
    assert "head refitted on the INT8 features of the training images" in card


def test_a_refit_that_agrees_less_is_not_installed(tmp_path, train_tiny_flat, phantom_root, monkeypatch):
    """Validation chooses, as between calibration draws: a refitted head that agrees less with Keras than the head
    before it is measured, recorded and left out (here a head that calls every image one class)."""
    import neurocascade.edge.export as export

    run = tmp_path / "flat"
    train_tiny_flat(run, phantom_root)
    refit = export.refit_heads

    def worse(model, fits, *args):
        refitted = refit(model, fits, *args)
        kernel, bias = refitted.get_layer("head_out").get_weights()
        refitted.get_layer("head_out").set_weights([np.zeros_like(kernel), np.eye(len(bias))[0] * 10])
        return refitted

    plain = export_run(run, overrides=REFIT[:3])
    before = (run / "export" / "flat.int8.tflite").read_bytes()
    monkeypatch.setattr(export, "refit_heads", worse)
    messages: list[str] = []
    report = export_run(run, progress=messages.append, overrides=REFIT)
    entry = report["models"]["flat"]
    assert entry["head_refit"]["kept"] is False
    assert entry["int8_top1_agreement"] == plain["models"]["flat"]["int8_top1_agreement"]
    assert (run / "export" / "flat.int8.tflite").read_bytes() == before
    assert any("lower, so the head before the refit is installed" in m for m in messages)
    assert "head refitted" not in (run / "export" / "MODEL_CARD.md").read_text()
