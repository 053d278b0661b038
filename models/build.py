"""One classifier builder: float 0..255 images → registered backbone → head, as one flat functional model.

    source = resolve_weights(get_backbone(cfg.model.backbone), cfg.model.weights, dirs)
    model = build_classifier(cfg.model, n_classes=4, image_size=260, weights=source)
    set_trainable_top_blocks(model, get_backbone(cfg.model.backbone), n_blocks=2)   # then compile

Flat means no layer is itself a Model (TFMOT refuses nested models), so "the backbone" is every layer that
is neither the input nor a head layer (named `head_*`).
"""

from __future__ import annotations

import re

from neurocascade.models.head import HEAD_NAME, add_head, tap_layer_name
from neurocascade.models.registry import BackboneSpec, block_name, get_backbone
from neurocascade.models.weights import WeightsSource
from neurocascade.config import ModelConfig
from neurocascade.errors import ConfigError, UserError
from neurocascade.tf import keras


def _builder_weights(source: WeightsSource) -> str | None:
    """What a backbone builder receives: None, "imagenet" (Keras or the builder fetches it) or a file path."""
    if source.kind in ("none", "random-fallback"):
        return None
    if source.kind == "imagenet":
        return source.path or "imagenet"
    if source.kind == "file":
        return source.path
    raise ValueError(f"unknown weights kind {source.kind!r}")


def build_classifier(
    cfg: ModelConfig, n_classes: int, image_size: int, weights: WeightsSource, synchronized_bn: bool = False
) -> keras.Model:
    """Input(image_size, image_size, 3) of float 0..255 → backbone `cfg.backbone` → head, flat.

    With `cfg.backbone_size` (not image_size) the graph resizes the image before the backbone (layer
    `backbone_resize`, bilinear, which full-integer TFLite runs), so the export takes image_size images too.
    `weights.warning` (random fallback) is the caller's to show; this only builds. `synchronized_bn`: the head's
    BatchNormalization uses global-batch statistics across replicas (training under a distribution strategy).
    """
    spec = get_backbone(cfg.backbone)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    builder_weights = _builder_weights(weights)
    x = inputs
    if size := cfg.resized_size(image_size):
        x = keras.layers.Resizing(size, size, name="backbone_resize")(inputs)
    if cfg.drop_connect and not spec.drop_connect:
        raise ConfigError(f"model.drop_connect: {spec.name} has no stochastic-depth option (EfficientNetLite0-2 have)")
    options = {"drop_connect": cfg.drop_connect} if cfg.drop_connect else {}
    try:
        features = spec.build(x, builder_weights, **options)
    except Exception as exc:  # Keras' get_file raises a bare Exception when offline
        if builder_weights == "imagenet" and str(exc).startswith("URL fetch failure"):
            raise UserError(
                f"could not download the ImageNet weights for {spec.name} ({exc}); put "
                f"{spec.imagenet_file} (md5 {spec.imagenet_md5}) in a weights directory instead"
            ) from exc
        raise
    extra_weights = None if builder_weights is None else "imagenet"  # a weights file is the main backbone's
    taps = [tap for name in cfg.extra_backbones for tap in extra_backbone_taps(inputs, name, image_size, extra_weights)]
    taps += list(zip(cfg.taps, block_outputs(inputs, features, spec, cfg.taps)))
    outputs = add_head(
        features,
        n_classes,
        cfg.head_units,
        cfg.dropout,
        taps=taps,
        synchronized=synchronized_bn,
        noise=cfg.feature_noise,
    )
    return keras.Model(inputs, outputs, name=f"{spec.name}_classifier")


EXTRA_FIRST_STAGE = 4
"""An extra backbone's taps are the last blocks of its stages from this one on, as `model.taps` chooses for Lite2
(blocks 4d, 5d, 6e, 7a): the depths whose pooled features paid in issue 13's probes."""


def extra_tap_names(name: str, blocks: list[str]) -> list[str]:
    """The tap names of extra backbone `name` with blocks `blocks` (graph order): `<name>_<block>` for the last
    block of each stage from `EXTRA_FIRST_STAGE` on (a stage is the block name up to its number), then
    `<name>_top`, its last feature map."""
    last: dict[str, str] = {}
    for block in blocks:
        match = re.match(r"\D*(\d+)", block)
        if match and int(match.group(1)) >= EXTRA_FIRST_STAGE:
            last[match.group(0)] = block
    return [f"{name}_{block}" for block in last.values()] + [f"{name}_top"]


def extra_backbone_taps(inputs, name: str, image_size: int, weights: str | None) -> list[tuple[str, object]]:
    """A frozen extra backbone beside the main one, as (tap name, feature map) pairs for the head.

    The image is resized to the backbone's native size inside the graph (so the model still takes one image,
    and the export carries the resize), and every layer of it is renamed `<name>_<layer>`: names stay unique
    beside the main backbone, and no extra layer matches a block pattern, so `set_trainable_top_blocks` never
    unfreezes one and the activation cache computes its taps once.
    """
    spec = get_backbone(name)
    x = inputs
    if spec.default_size != image_size:
        x = keras.layers.Resizing(spec.default_size, spec.default_size, name="resize")(inputs)
    features = spec.build(x, weights)
    layers = [layer for layer in keras.Model(inputs, features).layers if not isinstance(layer, keras.layers.InputLayer)]
    blocks = list(dict.fromkeys(b for b in (block_name(spec, layer.name) for layer in layers) if b and b != "top"))
    names = extra_tap_names(name, blocks)
    maps = block_outputs(inputs, features, spec, tuple(n.removeprefix(f"{name}_") for n in names[:-1])) + [features]
    for layer in layers:
        layer._name = f"{name}_{layer.name}"  # noqa: SLF001 (Keras has no public rename; done before any Model uses it)
    return list(zip(names, maps))


def extra_tap_layers(model: keras.Model, extra_backbones: tuple[str, ...]) -> list:
    """The head's pooling layers of the extra backbones' taps in `model`, in graph order (they come first in the
    head's concatenation and right after the cut's first tensor)."""
    if not extra_backbones:
        return []
    prefixes = tuple(tap_layer_name(f"{name}_") for name in extra_backbones)
    return [layer for layer in model.layers if layer.name.startswith(prefixes)]


def block_outputs(inputs, features, spec: BackboneSpec, blocks: tuple[str, ...]) -> list:
    """The output tensor of each named backbone block (its last layer), for a multi-scale head."""
    if not blocks:
        return []
    last = {}
    for layer in keras.Model(inputs, features).layers:
        block = block_name(spec, layer.name)
        if block is not None:
            last[block] = layer
    unknown = [b for b in blocks if b not in last]
    if unknown:
        raise ConfigError(f"model.taps: {unknown[0]!r} is not a block of {spec.name}; its blocks are {', '.join(last)}")
    return [last[b].output for b in blocks]


def _is_head(layer) -> bool:
    return layer.name.startswith(f"{HEAD_NAME}_")


def backbone_blocks(model: keras.Model, spec: BackboneSpec) -> list[str]:
    """The backbone's block names (`spec.block_pattern`), in graph order, each once."""
    names = (block_name(spec, layer.name) for layer in model.layers if not _is_head(layer))
    return list(dict.fromkeys(name for name in names if name is not None))


def cut_below_top_blocks(model: keras.Model, cfg: ModelConfig, n_blocks: int) -> list:
    """What crosses from the frozen bottom to the top `n_blocks` backbone blocks: the first of them's input (the
    backbone's output when 0), then the pooled taps of the extra backbones (frozen whole), then the pooled taps of a
    multi-scale head below the cut — the inputs of `neurocascade.models.surgery.split_at`'s top part."""
    spec = get_backbone(cfg.backbone)
    blocks = backbone_blocks(model, spec)
    if n_blocks == 0:
        main = model.get_layer("head_gap").input
    else:
        main = next(layer for layer in model.layers if block_name(spec, layer.name) == blocks[-n_blocks]).input
    frozen = set(blocks[: len(blocks) - n_blocks])
    extra = [layer.output for layer in extra_tap_layers(model, cfg.extra_backbones)]
    return [main] + extra + [model.get_layer(tap_layer_name(b)).output for b in cfg.taps if b in frozen]


def set_trainable_top_blocks(model: keras.Model, spec: BackboneSpec, n_blocks: int) -> None:
    """Freeze the backbone except its last `n_blocks` blocks; the head stays trainable.

    BatchNormalization layers of the backbone stay frozen even inside unfrozen blocks (a frozen BN runs in
    inference mode in tf_keras, keeping the ImageNet statistics with small fine-tuning batches). Layers
    outside every block (stem, DenseNet transitions, preprocessing) stay frozen. `n_blocks` larger than
    the number of blocks unfreezes them all. Compile after calling this.
    """
    if n_blocks < 0:
        raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
    blocks = backbone_blocks(model, spec)
    top = set(blocks[max(0, len(blocks) - n_blocks) :]) if n_blocks else set()
    model.trainable = True
    for layer in model.layers:
        if _is_head(layer):
            layer.trainable = True
        else:
            layer.trainable = block_name(spec, layer.name) in top and not isinstance(
                layer, keras.layers.BatchNormalization
            )
