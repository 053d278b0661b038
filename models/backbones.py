"""The Keras-application backbones, registered by name; each takes float images in 0..255.

A builder `(inputs, weights) -> feature map` calls the application with `input_tensor=inputs`, so every
layer lands at the top level of the caller's graph. `weights` is None (random), "imagenet" (Keras fetches
its file into `~/.keras/models/`) or the path of a weights file in that application's Keras layout (what
`neurocascade.models.weights.resolve_weights` found). Preprocessing is always inside the model, as weightless
Rescaling/Normalization layers (no Lambda), so training, evaluation and export share it:

- EfficientNetB0/B2: Keras' own Rescaling + Normalization. tf_keras adds a further x / sqrt(stddev) after the
  Normalization only for `weights="imagenet"` (and drops it when the same file is loaded by path). Here the
  graph never has that extra op; after loading ImageNet-layout weights its factor is folded into the
  Normalization variance (variance * stddev), which computes the same function as Keras' "imagenet" graph
  (equal to float rounding) whether the file came from the cache or a path, and keeps the graph identical
  for every `weights` value, so a checkpoint loads back into a model built with weights=None.
- EfficientNetV2S: its own Rescaling(1/128, offset -1) (the "-s" variant has no Normalization).
- ResNet50: Keras `preprocess_input` "caffe" mode is RGB→BGR then minus the BGR mean. The mean subtraction is
  a Normalization layer (in RGB order, variance 1); the channel swap, which no weightless Keras layer does,
  is folded into the first convolution after loading (its kernel's input channels reversed, an exact
  permutation), so the model takes RGB.
- DenseNet121: "torch" mode, x/255 then (x - mean) / std: Rescaling + Normalization.

All these ImageNet hashes are md5 (Keras' `get_file` treats a 32-character hash as md5, 64 as sha256).
"""

from __future__ import annotations

import numpy as np

from neurocascade.models.registry import BACKBONES, register_backbone
from neurocascade.tf import keras

IMAGENET_MEAN_RGB = [0.485, 0.456, 0.406]  # of images scaled to 0..1
IMAGENET_STDDEV_RGB = [0.229, 0.224, 0.225]
CAFFE_MEAN_RGB = [123.68, 116.779, 103.939]  # of 0..255 images; Keras lists it in BGR order
EFFICIENTNET_ORIGIN = "https://storage.googleapis.com/keras-applications/"  # as in tf_keras' efficientnet.py


def _efficientnet_v1(application, name: str, inputs, weights: str | None):
    """EfficientNet B0-B7 built without weights, then loaded and corrected as described in the module doc."""
    backbone = application(include_top=False, weights=None, input_tensor=inputs)
    if weights is not None:
        spec = BACKBONES[name]
        path = weights
        if weights == "imagenet":  # same file, URL, hash and cache as Keras' weights="imagenet" uses
            path = keras.utils.get_file(
                spec.imagenet_file,
                EFFICIENTNET_ORIGIN + spec.imagenet_file,
                cache_subdir="models",
                file_hash=spec.imagenet_md5,
            )
        backbone.load_weights(path)
        (norm,) = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Normalization)]
        mean, variance, count = norm.get_weights()
        norm.set_weights([mean, variance * np.asarray(IMAGENET_STDDEV_RGB, variance.dtype), count])
    return backbone.output


@register_backbone(
    "EfficientNetB2",
    default_size=260,
    imagenet_file="efficientnetb2_notop.h5",
    imagenet_md5="111f8e2ac8aa800a7a99e3239f7bfb39",
)
def efficientnet_b2(inputs, weights):
    return _efficientnet_v1(keras.applications.EfficientNetB2, "EfficientNetB2", inputs, weights)


@register_backbone(
    "EfficientNetB0",
    default_size=224,
    imagenet_file="efficientnetb0_notop.h5",
    imagenet_md5="50bc09e76180e00e4465e1a485ddc09d",
)
def efficientnet_b0(inputs, weights):
    return _efficientnet_v1(keras.applications.EfficientNetB0, "EfficientNetB0", inputs, weights)


@register_backbone(
    "EfficientNetV2S",
    default_size=384,
    imagenet_file="efficientnetv2-s_notop.h5",
    imagenet_md5="af0682fb74e8c54910f2d4393339c070",
)
def efficientnet_v2s(inputs, weights):
    return keras.applications.EfficientNetV2S(
        include_top=False, weights=weights, input_tensor=inputs, include_preprocessing=True
    ).output


@register_backbone(
    "ResNet50",
    default_size=224,
    imagenet_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    imagenet_md5="4d473c1dd8becc155b73f8504c6f6626",
    block_pattern=r"^(conv\d_block\d+)_",
)
def resnet50(inputs, weights):
    x = keras.layers.Normalization(mean=CAFFE_MEAN_RGB, variance=[1.0, 1.0, 1.0], name="preprocess_caffe")(inputs)
    backbone = keras.applications.ResNet50(include_top=False, weights=weights, input_tensor=x)
    if weights is not None:  # the file's first convolution expects BGR: reverse its input channels
        conv = backbone.get_layer("conv1_conv")
        kernel, bias = conv.get_weights()
        conv.set_weights([kernel[:, :, ::-1, :], bias])
    return backbone.output


@register_backbone(
    "DenseNet121",
    default_size=224,
    imagenet_file="densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
    imagenet_md5="30ee3e1110167f948a6b9946edeeb738",
    block_pattern=r"^(conv\d_block\d+)_",
)
def densenet121(inputs, weights):
    x = keras.layers.Rescaling(1.0 / 255.0, name="preprocess_rescale")(inputs)
    x = keras.layers.Normalization(
        mean=IMAGENET_MEAN_RGB, variance=[s * s for s in IMAGENET_STDDEV_RGB], name="preprocess_torch"
    )(x)
    return keras.applications.DenseNet121(include_top=False, weights=weights, input_tensor=x).output


try:  # EfficientNetLite2 registers itself on import; the Keras backbones work without it
    import neurocascade.models.lite2  # noqa: F401,E402
except ModuleNotFoundError as exc:
    if exc.name != "neurocascade.models.lite2":  # lite2 exists but something it needs is missing: say so
        raise
