"""Cross-layer equalization of the residual streams before quantization (`export.equalize`).

    model = equalize_streams(model, calibration_images).model   # the same float function, balanced channels

Why: full-integer TFLite gives every activation tensor one scale. The widest tensors of an EfficientNet(-Lite) are
its linear residual streams (the project convolutions' outputs and the residual adds: ranges up to ±78 on MRI,
where the ReLU6 tensors span 0..6), and the channels of one stream reach maxima 2–3× apart, so the narrow
channels are rounded on a grid set by the widest. Each stream channel c is scaled by s_c = max_c' r_c' / r_c
(r: its largest |value| on the calibration images) where the stream is made — the project BatchNormalizations'
gamma and beta — and every layer that reads the stream divides its input channel c by s_c: a 1×1 or depthwise
convolution's kernel, or, for a pooled multi-scale tap, the head's BatchNormalization moving statistics. The
float function is unchanged (max |Δp| ~1e-6); only the ranges the converter sees are balanced. Measured on three
protocol-C models below the 0.98 target (README, "Equalized streams"): top-1 agreement with Keras +2.6, −0.9 and
−1.0 points, a few images either way, so it stays off by default.

A stream is the set of tensors one residual chain shares: the outputs of `block{k}{x}_project_bn` and
`block{k}{x}_add` of stage k (the registry's layer names, Keras EfficientNets and EfficientNetLite2 alike). A
stream read by anything else (a dense layer, an SE multiply) is left as it is and named in `skipped`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from neurocascade.models.head import HEAD_NAME
from neurocascade.tf import keras

_PRODUCER = re.compile(r"block(\d+)[a-z]+_project_bn")
_ADD = re.compile(r"block(\d+)[a-z]+_add")


@dataclass(frozen=True)
class Stream:
    """One stage's residual stream: `members` are the layers whose outputs it is, `consumers` those reading it."""

    stage: int
    producers: tuple[str, ...]
    members: tuple[str, ...]
    consumers: tuple[str, ...]


@dataclass
class Equalized:
    model: keras.Model
    streams: list[int] = field(default_factory=list)  # stages whose stream was equalized
    skipped: dict[int, str] = field(default_factory=dict)  # stage -> why not


def _sources(layer) -> list[str]:
    """Names of the layers whose outputs `layer` reads (one inbound call: models here call each layer once)."""
    node = layer._inbound_nodes[0]  # noqa: SLF001 (tf_keras has no public per-layer graph accessor)
    inbound = node.inbound_layers
    return [inbound.name] if not isinstance(inbound, list) else [x.name for x in inbound]


def residual_streams(model: keras.Model) -> list[Stream]:
    """Every stage's residual stream in `model`, shallow first."""
    stages: dict[int, list[str]] = {}
    for layer in model.layers:
        match = _PRODUCER.fullmatch(layer.name) or _ADD.fullmatch(layer.name)
        if match:
            stages.setdefault(int(match.group(1)), []).append(layer.name)
    streams = []
    for stage, members in sorted(stages.items()):
        inside = set(members)
        passing = True
        while passing:  # dropout (stochastic depth) on the way to an add is the identity at inference: a member
            passing = False
            for layer in model.layers:
                if (
                    isinstance(layer, keras.layers.Dropout)
                    and layer.name not in inside
                    and inside.intersection(_sources(layer))
                ):
                    inside.add(layer.name)
                    members.append(layer.name)
                    passing = True
        consumers = tuple(
            layer.name
            for layer in model.layers
            if layer.name not in inside and layer._inbound_nodes and inside.intersection(_sources(layer))  # noqa: SLF001
        )
        producers = tuple(m for m in members if _PRODUCER.fullmatch(m))
        streams.append(Stream(stage, producers, tuple(members), consumers))
    return streams


def stream_ranges(model: keras.Model, streams: list[Stream], images: np.ndarray, batch_size: int = 16) -> dict:
    """{stage: per-channel max |value| over every tensor of its stream on `images`}."""
    stage_of = {m: s.stage for s in streams for m in s.members}
    names = list(stage_of)
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    ranges: dict[int, np.ndarray] = {}
    for start in range(0, len(images), batch_size):
        outputs = probe(images[start : start + batch_size], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for name, out in zip(names, outputs):
            stage = stage_of[name]
            r = np.abs(np.asarray(out)).reshape(-1, out.shape[-1]).max(axis=0)
            ranges[stage] = np.maximum(ranges.get(stage, 0.0), r)
    return ranges


def _concat_slices(model: keras.Model) -> dict[str, slice]:
    """{pooling layer: its columns in the multi-scale head's concatenation}."""
    names = {layer.name for layer in model.layers}
    if f"{HEAD_NAME}_concat" not in names:
        return {}
    concat = model.get_layer(f"{HEAD_NAME}_concat")
    slices, start = {}, 0
    for source, tensor in zip(_sources(concat), concat.input):
        width = int(tensor.shape[-1])
        slices[source] = slice(start, start + width)
        start += width
    return slices


_CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)  # both kernels hold input channels on axis 2


def _why_not(model: keras.Model, stream: Stream, taps: dict[str, slice]) -> str | None:
    for name in stream.producers:
        if len(model.get_layer(name).get_weights()) != 4:
            return f"{name} has no gamma and beta to scale"
    for name in set(stream.members) - set(stream.producers):  # an add of the stream and another stage's tensor
        outside = [src for src in _sources(model.get_layer(name)) if src not in stream.members]
        if outside:
            return f"{name} also reads {', '.join(outside)}"
    for name in stream.consumers:
        layer = model.get_layer(name)
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            continue
        if isinstance(layer, keras.layers.Conv2D) and getattr(layer, "groups", 1) == 1:
            continue
        if isinstance(layer, keras.layers.GlobalAveragePooling2D) and name in taps:
            continue
        return f"read by {name} ({type(layer).__name__})"
    return None


def _divide_input_channels(layer, s: np.ndarray) -> None:
    weights = layer.get_weights()
    weights[0] = weights[0] / s[None, None, :, None]
    layer.set_weights(weights)


def _rescale_head_bn(model: keras.Model, columns: slice, s: np.ndarray) -> None:
    """The head's BatchNormalization sees s·x on `columns`: mean·s and (var + ε)·s² − ε keep its output exact."""
    bn = model.get_layer(f"{HEAD_NAME}_bn")
    gamma, beta, mean, var = bn.get_weights()
    mean[columns] = mean[columns] * s
    var[columns] = s**2 * (var[columns] + bn.epsilon) - bn.epsilon
    bn.set_weights([gamma, beta, mean, var])


def equalize_streams(model: keras.Model, images: np.ndarray, batch_size: int = 16) -> Equalized:
    """A copy of `model` whose residual streams have balanced channel ranges on `images` (module doc)."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    streams = residual_streams(clone)
    taps = _concat_slices(clone)
    result = Equalized(clone)
    usable = []
    for stream in streams:
        reason = _why_not(clone, stream, taps)
        if reason:
            result.skipped[stream.stage] = reason
        else:
            usable.append(stream)
    ranges = stream_ranges(clone, usable, images, batch_size) if usable else {}
    for stream in usable:
        r = np.maximum(ranges[stream.stage], 1e-6 * max(float(ranges[stream.stage].max()), 1e-12))
        s = (r.max() / r).astype(np.float32)
        for name in stream.producers:  # the stream is scaled where it is made ...
            bn = clone.get_layer(name)
            gamma, beta, mean, var = bn.get_weights()
            bn.set_weights([gamma * s, beta * s, mean, var])
        for name in stream.consumers:  # ... and every reader undoes it
            layer = clone.get_layer(name)
            if isinstance(layer, _CONVS):
                _divide_input_channels(layer, s)
            else:
                _rescale_head_bn(clone, taps[name], s)
        result.streams.append(stream.stage)
    return result
