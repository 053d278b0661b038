"""`model.backbone_size`: models whose backbone sees another size than data.image_size resize inside their graph."""

from __future__ import annotations

import pytest

from neurocascade.config import Config, DataConfig, ModelConfig, load_config
from neurocascade.errors import ConfigError
from neurocascade.hierarchy.features import activation_key
from neurocascade.models.build import build_classifier
from neurocascade.models.weights import WeightsSource

GATE_AT_32 = ModelConfig(backbone="EfficientNetB0", weights="none", backbone_size=32, backbone_size_stages=("gate",))


def test_stages_are_grouped_by_the_size_their_backbone_sees():
    assert GATE_AT_32.backbone_groups(("gate", "subtype"), 40) == [("gate",), ("subtype",)]
    assert GATE_AT_32.backbone_groups(("flat",), 40) == [("flat",)]
    assert ModelConfig().backbone_groups(("gate", "subtype"), 40) == [("gate", "subtype")]  # no backbone_size
    assert ModelConfig(backbone_size=32).backbone_groups(("gate", "subtype"), 40) == [("gate", "subtype")]
    # a backbone_size equal to the images' size resizes nothing: one group, one template, one pass over its cache
    assert GATE_AT_32.backbone_groups(("gate", "subtype"), 32) == [("gate", "subtype")]


def test_a_model_resizes_only_to_another_size_than_its_images():
    assert GATE_AT_32.resized_size(40) == 32
    assert GATE_AT_32.resized_size(32) == 0
    assert ModelConfig().resized_size(40) == 0


def test_for_stages_keeps_the_size_only_for_the_models_that_resize():
    assert GATE_AT_32.for_stages(("gate",)).backbone_size == 32
    assert GATE_AT_32.for_stages(("subtype",)).backbone_size == 0
    assert GATE_AT_32.for_stages(("flat",)).backbone_size == 0


@pytest.mark.parametrize(
    "setting, message",
    [
        ("model.backbone_size=16", "backbone_size: must be 0"),
        ('model.backbone_size_stages=["gate", "tumour"]', "'tumour' is not a model"),
        ('model.backbone_size_stages=["gate", "gate"]', "backbone_size_stages: a model is listed twice"),
    ],
)
def test_config_refuses_a_bad_size_or_stage(test_config_path, setting, message):
    with pytest.raises(ConfigError, match=message):
        load_config(test_config_path, [setting])


def test_the_graph_resizes_before_the_backbone_and_takes_the_data_size():
    model = build_classifier(GATE_AT_32.for_stages(("gate",)), 2, 40, WeightsSource("none"))
    assert model.input_shape == (None, 40, 40, 3)
    assert model.get_layer("backbone_resize").output_shape == (None, 32, 32, 3)
    plain = build_classifier(GATE_AT_32.for_stages(("subtype",)), 3, 40, WeightsSource("none"))
    assert "backbone_resize" not in [layer.name for layer in plain.layers]
    same = build_classifier(
        ModelConfig(backbone="EfficientNetB0", weights="none", backbone_size=40), 3, 40, WeightsSource("none")
    )
    assert "backbone_resize" not in [layer.name for layer in same.layers]  # the data's size: nothing to resize


def test_the_cache_key_names_the_size_only_when_it_differs():
    def key(model: ModelConfig) -> dict:
        return activation_key(Config(data=DataConfig(image_size=40), model=model), {}, "cut")

    assert key(GATE_AT_32.for_stages(("gate",)))["backbone_size"] == 32
    assert "backbone_size" not in key(GATE_AT_32.for_stages(("subtype",)))
    assert key(ModelConfig(backbone="EfficientNetB0", weights="none", backbone_size=40)) == key(
        ModelConfig(backbone="EfficientNetB0", weights="none")
    )  # a run at the data's size shares the plain run's cache
