"""Phase 2 on images (`train.phase2_data = "images"`): the whole model fine-tuned on a fresh augmentation of every
training image each epoch, instead of the top blocks on four cached passes (issue 13)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurocascade.config import load_config
from neurocascade.data.augment import Augmenter
from neurocascade.data.dataset import load_dataset
from neurocascade.errors import ConfigError
from neurocascade.hierarchy.train import FreshAugmentation
from neurocascade.models.build import backbone_blocks
from neurocascade.models.registry import block_name, get_backbone
from neurocascade.tf import keras, tf

from interrupted import check_validation_record, flat_run, flat_run_whole_and_resumed

IMAGES = ("train.phase2_data=images",)


@pytest.fixture(scope="module")
def images_run(test_config_path, tiny_runs, tmp_path_factory):
    cfg = load_config(test_config_path, IMAGES)
    out = tmp_path_factory.mktemp("phase2-images") / "flat"
    return cfg, out, flat_run(cfg, tiny_runs, out)


def test_bad_combinations_are_refused(test_config_path):
    with pytest.raises(ConfigError, match="tau_folds"):
        load_config(test_config_path, IMAGES + ("train.tau_folds=3",))
    with pytest.raises(ConfigError, match="phase2_blocks"):
        load_config(test_config_path, ("train.phase2_blocks=2",))
    with pytest.raises(ConfigError, match="mixup_alpha"):
        load_config(test_config_path, IMAGES + ("train.mixup_alpha=0.2",))
    with pytest.raises(ConfigError, match="phase2_data"):
        load_config(test_config_path, ("train.phase2_data=pixels",))


def test_each_epoch_draws_anew_and_a_draw_depends_on_the_epoch_and_the_image_alone(test_config_path, tiny_runs):
    cfg = load_config(test_config_path)
    ds = load_dataset(cfg, str(tiny_runs["data"]))
    images, hashes = ds.images("train")[:6], [ds.scans[k].sha256 for k in ds.indices("train")][:6]
    fresh = FreshAugmentation(images, hashes, Augmenter(cfg.augment), seed=7)
    first, second = fresh.draw(0), fresh.draw(1)
    assert first.dtype == np.uint8 and first.shape == images.shape
    assert not np.array_equal(first, second) and not np.array_equal(first, images)
    np.testing.assert_array_equal(fresh.draw(0), first)
    order = np.array([3, 0, 5, 1, 4, 2])
    shuffled = FreshAugmentation(images[order], [hashes[i] for i in order], Augmenter(cfg.augment), seed=7)
    np.testing.assert_array_equal(shuffled.draw(1), second[order])


def test_phase_2_trains_every_backbone_block_on_images_with_batchnorm_frozen(images_run, tiny_runs):
    cfg, out, _ = images_run
    history = json.loads((out / "stages" / "flat" / "history.json").read_text())
    phase2 = [r for r in history if r["phase"] == "phase2"]
    assert [r["draw"] for r in phase2] == list(range(len(phase2))) and "pass" not in phase2[0]
    tuned = keras.models.load_model(str(out / "models" / "flat.keras"))
    cached = keras.models.load_model(str(tiny_runs["flat"] / "models" / "flat.keras"))  # phase 2 on 2 cached blocks
    spec = get_backbone(cfg.model.backbone)
    blocks = backbone_blocks(tuned, spec)
    first = [layer for layer in tuned.layers if block_name(spec, layer.name) == blocks[0]]
    convs = [layer for layer in first if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]
    norms = [layer for layer in first if isinstance(layer, keras.layers.BatchNormalization)]
    assert convs and norms and all(layer.trainable for layer in convs) and not any(n.trainable for n in norms)
    # Phase 2's last checkpoint (the kept model may be phase 1's, if no phase-2 epoch beat it): the deepest block's
    # convolutions moved, far below any cached cut; its BatchNorm statistics did not.
    trained = keras.models.load_model(str(out / "models" / "flat.keras"))
    phase2_dir = out / "stages" / "flat" / "phase2"
    checkpoint = json.loads((phase2_dir / "state.json").read_text())["checkpoint"]
    tf.train.Checkpoint(model=trained).restore(str(phase2_dir / checkpoint)).expect_partial()
    for layer in convs:
        before, after = cached.get_layer(layer.name).get_weights(), trained.get_layer(layer.name).get_weights()
        assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True)), layer.name
    for layer in norms:
        before, after = cached.get_layer(layer.name).get_weights(), trained.get_layer(layer.name).get_weights()
        for a, b in zip(before, after, strict=True):
            np.testing.assert_array_equal(a, b)


def test_the_recorded_validation_probabilities_are_the_saved_models_on_the_images(images_run, tiny_runs):
    cfg, out, _ = images_run
    check_validation_record(cfg, out, tiny_runs)


def test_a_run_killed_in_phase_2_on_images_resumes_to_the_uninterrupted_one(test_config_path, tiny_runs, tmp_path):
    full, resumed, full_losses, resumed_losses = flat_run_whole_and_resumed(
        load_config(test_config_path, IMAGES), tiny_runs, tmp_path
    )
    assert full_losses == resumed_losses
    assert resumed["stages"]["flat"]["val_macro_f1"] == full["stages"]["flat"]["val_macro_f1"]
