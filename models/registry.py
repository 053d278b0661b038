"""Backbone registry: one decorator fills a dict; a duplicate name fails, an unknown one lists the valid ones.

A backbone builder takes an input tensor of float images in 0..255 (the backbone's own normalisation lives
inside it, so training, evaluation and export share one preprocessing) and returns the feature-map tensor,
with every layer at the top level of the caller's functional graph — a nested sub-model would break
quantization-aware training later.

    @register_backbone("EfficientNetB2", default_size=260, imagenet_file="efficientnetb2_notop.h5",
                       imagenet_md5="111f8e2ac8aa800a7a99e3239f7bfb39")
    def efficientnet_b2(inputs, weights): ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from neurocascade.errors import ConfigError


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone and where its pretrained weights come from."""

    name: str
    build: Callable  # (inputs: KerasTensor, weights: str | None) -> feature-map KerasTensor
    default_size: int
    imagenet_file: str = ""  # file name looked up in the weights directories ("" = no ImageNet file)
    imagenet_md5: str = ""
    block_pattern: str = r"^(block\d+[a-z]|top)_"  # group 1 names the block of a layer, for unfreezing top N
    drop_connect: bool = False  # the builder takes `drop_connect=rate` (stochastic depth, `model.drop_connect`)


BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(
    name: str,
    *,
    default_size: int,
    imagenet_file: str = "",
    imagenet_md5: str = "",
    block_pattern: str = BackboneSpec.block_pattern,
    drop_connect: bool = False,
) -> Callable:
    """Decorator adding a builder to `BACKBONES` under `name`."""

    def add(build: Callable) -> Callable:
        if name in BACKBONES:
            raise ValueError(f"backbone {name!r} is registered twice")
        BACKBONES[name] = BackboneSpec(
            name, build, default_size, imagenet_file, imagenet_md5, block_pattern, drop_connect
        )
        return build

    return add


def get_backbone(name: str) -> BackboneSpec:
    """The spec registered as `name`, or a ConfigError listing what exists."""
    import neurocascade.models.backbones  # noqa: F401  (registers the built-in backbones)

    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; available: {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name]


def block_name(spec: BackboneSpec, layer_name: str) -> str | None:
    """The block a backbone layer belongs to (e.g. 'block6' of 'block6a_expand_conv'), or None."""
    match = re.match(spec.block_pattern, layer_name)
    return match.group(1) if match else None
