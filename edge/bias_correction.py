"""Correct the systematic shift of the INT8 backbone's pooled features in the exported model's head.

Full-integer rounding does not only add noise to the pooled features the head reads: it shifts their mean. On the
frozen Lite2 multi-scale features of protocol C seed 0 (320 px, PTQ) the shift is 0.12–0.53 of each feature's
spread over the images, depending on the tap, and it is the same on training and validation images (correlation
0.95–0.99 per tap); a head trained on float features reads it as signal. The head's first layer is a
BatchNormalization of those features, so subtracting the shift is exact in float: its moving mean moves by the
shift measured on the calibration images (training images, never validation). Only the INT8 model gets the moved
mean; the Keras model and the float32 TFLite, the reference the export checks against, stay as trained.

    corrected, shift = correct_head_bias(model, int8_bytes, calibration_images)
    # convert `corrected` with the same calibration: the backbone's ranges, so its features, come out the same

`shift_key` says when a shift measured for one model serves another (the one graph takes its gate's).
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass

import numpy as np

from neurocascade.hierarchy.one_graph import SUBTYPE_HEAD
from neurocascade.models.head import HEAD_NAME, pooled_layer_name, pooled_model
from neurocascade.models.surgery import weights_sha256
from neurocascade.tf import keras


@dataclass(frozen=True)
class HeadShift:
    """The mean INT8 − float pooled feature on the calibration images, and its size in units of their spread."""

    shift: np.ndarray
    relative: float  # median over features of |shift| / the feature's standard deviation over the images

    def summary(self) -> dict:
        return {"features": int(self.shift.size), "median_shift_over_std": round(self.relative, 4)}


def pooled_tensor(details: list[dict], layer: str) -> dict:
    """The tensor of `details` (an interpreter's `get_tensor_details()`) that is the Keras layer `layer`'s output.

    The converter names a layer's output tensor after its op (".../head_concat/concat", ".../head_gap/Mean"); a
    layer name matches one tensor, or the graph is not one this module knows.
    """
    pattern = re.compile(rf"(?:^|/){re.escape(layer)}/(?:concat|Mean)$")
    found = [d for d in details if pattern.search(d["name"])]
    if len(found) != 1:
        names = ", ".join(d["name"] for d in found) or "none"
        raise ValueError(f"expected one TFLite tensor for layer {layer!r}, found {len(found)}: {names}")
    return found[0]


def int8_pooled_features(int8_bytes: bytes, images: np.ndarray, layer: str) -> np.ndarray:
    """The dequantized output of `layer` in the full-integer model, one row per image (uint8 input)."""
    from ai_edge_litert.interpreter import Interpreter

    from neurocascade.edge.quiet import quiet_litert
    from neurocascade.edge.runtime import quantize_input

    with quiet_litert(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")  # read one tensor, on purpose
        interpreter = Interpreter(model_content=int8_bytes, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    tensor = pooled_tensor(interpreter.get_tensor_details(), layer)
    scale, zero = tensor["quantization"]
    entry = interpreter.get_input_details()[0]
    rows = []
    for image in images:
        interpreter.set_tensor(entry["index"], quantize_input(image[None], entry))
        interpreter.invoke()
        raw = interpreter.get_tensor(tensor["index"])[0].astype(np.float32)
        rows.append((raw - zero) * scale if scale else raw)
    return np.stack(rows)


def measure_head_shift(model: keras.Model, int8_bytes: bytes, images: np.ndarray, batch_size: int = 32) -> HeadShift:
    """The mean INT8 − float pooled feature of `model` on `images`, `int8_bytes` being `model` converted to full
    integer with `images` as calibration."""
    layer = pooled_layer_name(model)
    float_rows = pooled_model(model).predict(images.astype(np.float32), batch_size=batch_size, verbose=0)
    int8_rows = int8_pooled_features(int8_bytes, images, layer)
    shift = (int8_rows - float_rows).mean(axis=0)
    spread = float_rows.std(axis=0)
    relative = float(np.median(np.abs(shift)[spread > 0] / spread[spread > 0])) if (spread > 0).any() else 0.0
    return HeadShift(shift.astype(np.float32), relative)


def shifted_head(model: keras.Model, shift: HeadShift) -> keras.Model:
    """A copy of `model` whose head BatchNormalization(s) subtract `shift` from the pooled features they read."""
    corrected = keras.models.clone_model(model)
    corrected.set_weights(model.get_weights())
    for bn in head_batchnorms(corrected):  # the one pooled tensor feeds them all: one shift serves each
        gamma, beta, mean, variance = bn.get_weights()
        bn.set_weights([gamma, beta, mean + shift.shift, variance])
    return corrected


def shift_key(model: keras.Model, images: np.ndarray) -> str:
    """What the shift depends on, for one set of `export.float_ops`: the backbone up to the pooled features and the
    calibration images. Models that agree on both (a cascade's gate and its one graph, whose backbone is the
    gate's) have the same INT8 pooled features bit for bit, so one measurement serves them all."""
    return f"{weights_sha256(pooled_model(model))}:{hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()}"


def correct_head_bias(
    model: keras.Model, int8_bytes: bytes, images: np.ndarray, batch_size: int = 32
) -> tuple[keras.Model, HeadShift]:
    """A copy of `model` whose head BatchNormalization subtracts the INT8 shift of its pooled features.

    `int8_bytes` is `model` converted to full integer with `images` as calibration; converting the copy with the
    same images gives the same backbone, whose shifted features the copy's head now reads as the float head
    reads the float ones.
    """
    shift = measure_head_shift(model, int8_bytes, images, batch_size)
    return shifted_head(model, shift), shift


def head_batchnorms(model: keras.Model) -> list:
    """The head BatchNormalizations that read the pooled features: the head's, and in a cascade exported as one
    graph (`neurocascade.hierarchy.one_graph`) the subtype head's beside it."""
    names = {layer.name for layer in model.layers}
    return [model.get_layer(f"{head}_bn") for head in (HEAD_NAME, SUBTYPE_HEAD) if f"{head}_bn" in names]
