"""Frozen extra backbones beside the main one (`model.extra_backbones`): their taps, names, freezing and cut."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from neurocascade.config import ModelConfig, load_config
from neurocascade.errors import ConfigError
from neurocascade.hierarchy.run import cut_tensors
from neurocascade.models.build import backbone_blocks, build_classifier, extra_tap_names, set_trainable_top_blocks
from neurocascade.models.registry import get_backbone
from neurocascade.models.surgery import split_at
from neurocascade.models.weights import WeightsSource
from neurocascade.tf import keras

SIZE = 64
LITE2_TAPS = ("block4d", "block5d", "block6e", "block7a")


@pytest.fixture(scope="module")
def ensemble() -> keras.Model:
    cfg = ModelConfig(
        backbone="EfficientNetLite2",
        weights="none",
        head_units=8,
        taps=LITE2_TAPS,
        extra_backbones=("EfficientNetLite1", "EfficientNetLite0"),
    )
    return build_classifier(cfg, 3, SIZE, WeightsSource("none"))


def test_tap_names_are_the_ends_of_stages_four_to_seven_then_the_last_map():
    blocks = [
        "block1a",
        "block2a",
        "block2b",
        "block3a",
        "block4a",
        "block4b",
        "block4c",
        "block5a",
        "block6a",
        "block6b",
        "block7a",
    ]
    assert extra_tap_names("X", blocks) == ["X_block4c", "X_block5a", "X_block6b", "X_block7a", "X_top"]
    assert extra_tap_names("R", ["conv2_block1", "conv4_block5", "conv4_block6", "conv5_block3"]) == [
        "R_conv4_block6",
        "R_conv5_block3",
        "R_top",
    ]


def test_extra_taps_join_the_head_extra_first(ensemble):
    taps = [layer.name.removeprefix("head_tap_") for layer in ensemble.layers if layer.name.startswith("head_tap_")]
    assert taps == [
        "EfficientNetLite1_block4d",
        "EfficientNetLite1_block5d",
        "EfficientNetLite1_block6e",
        "EfficientNetLite1_block7a",
        "EfficientNetLite1_top",
        "EfficientNetLite0_block4c",
        "EfficientNetLite0_block5c",
        "EfficientNetLite0_block6d",
        "EfficientNetLite0_block7a",
        "EfficientNetLite0_top",
        *LITE2_TAPS,
    ]
    lite2_width = 88 + 120 + 208 + 352 + 1280
    lite01_width = 80 + 112 + 192 + 320 + 1280  # both have Lite0's widths; Lite1 is only deeper
    assert ensemble.get_layer("head_concat").output_shape == (None, 2 * lite01_width + lite2_width)
    # each extra sees the image at its native size, resized inside the graph
    assert ensemble.get_layer("EfficientNetLite0_resize").output_shape == (None, 224, 224, 3)
    assert ensemble.get_layer("EfficientNetLite1_resize").output_shape == (None, 240, 240, 3)


def test_extra_layers_are_prefixed_and_never_unfrozen(ensemble):
    spec = get_backbone("EfficientNetLite2")
    names = [layer.name for layer in ensemble.layers]
    assert len(names) == len(set(names))
    assert len(backbone_blocks(ensemble, spec)) == 22  # Lite2's 21 blocks and its top: the extras are not blocks
    set_trainable_top_blocks(ensemble, spec, 100)  # unfreeze "everything"
    trainable = {layer.name for layer in ensemble.layers if layer.trainable and layer.weights}
    assert trainable and not [n for n in trainable if n.startswith(("EfficientNetLite1_", "EfficientNetLite0_"))]
    assert "block1a_dwconv" in trainable


def test_the_cut_carries_every_extra_tap_and_the_halves_compute_the_model(ensemble):
    cfg = SimpleNamespace(
        model=SimpleNamespace(
            backbone="EfficientNetLite2", taps=LITE2_TAPS, extra_backbones=("EfficientNetLite1", "EfficientNetLite0")
        ),
        train=SimpleNamespace(unfreeze_blocks=3),
    )
    cuts = cut_tensors(ensemble, cfg)
    assert [c.name.split("/")[0] for c in cuts] == [
        "block6d_add",
        *[f"head_tap_EfficientNetLite1_{b}" for b in ("block4d", "block5d", "block6e", "block7a", "top")],
        *[f"head_tap_EfficientNetLite0_{b}" for b in ("block4c", "block5c", "block6d", "block7a", "top")],
        "head_tap_block4d",
        "head_tap_block5d",  # Lite2's own taps below the cut (6e and 7a are above it)
    ]
    bottom, top = split_at(ensemble, cuts)
    images = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)
    np.testing.assert_allclose(top(bottom(images)).numpy(), ensemble(images).numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "value, message",
    [
        ('["EfficientNetLite0", "EfficientNetLite0"]', "listed twice"),
        ('["EfficientNetLite2"]', "already the main backbone"),
    ],
)
def test_config_refuses_a_repeated_or_main_backbone(test_config_path, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config(test_config_path, ['model.backbone="EfficientNetLite2"', f"model.extra_backbones={value}"])


def test_an_unknown_extra_backbone_lists_the_registered_ones():
    cfg = ModelConfig(backbone="EfficientNetLite2", weights="none", extra_backbones=("EfficientNetLite9",))
    with pytest.raises(ConfigError, match="unknown backbone 'EfficientNetLite9'; available: .*EfficientNetLite0"):
        build_classifier(cfg, 3, SIZE, WeightsSource("none"))


@pytest.mark.parametrize(
    "value, message",
    [('["subtype", "tumour"]', "'tumour' is not a model; allowed: gate, subtype, flat"), ('["flat", "flat"]', "twice")],
)
def test_config_refuses_an_unknown_or_repeated_stage(test_config_path, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config(test_config_path, [f"model.extra_backbone_stages={value}"])


def test_only_the_listed_stages_are_built_with_the_extras():
    from neurocascade.hierarchy.stages import STAGES
    from neurocascade.config import MODEL_STAGES

    assert MODEL_STAGES == tuple(STAGES)  # the config's list of models is the training's
    cfg = ModelConfig(extra_backbones=("EfficientNetLite1",), extra_backbone_stages=("subtype",))
    assert cfg.for_stages(("gate",)).extra_backbones == ()
    assert cfg.for_stages(("flat",)).extra_backbones == ()
    assert cfg.for_stages(("subtype",)) == cfg
    assert cfg.for_stages(("gate", "subtype")) == cfg  # the run's shared cache holds what any of its stages needs
    assert ModelConfig(extra_backbones=("EfficientNetLite1",)).for_stages(("gate",)).extra_backbones == (
        "EfficientNetLite1",
    )
