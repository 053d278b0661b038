"""The quantized model's precision (`export.quantization`): int8 activations, or 16-bit activations with 8-bit weights.

    mode, reason = choose_mode({"int8": {...}, "int16x8": {...}, "float32": {...}}, min_agreement=0.98)

"int8" is the full-integer model (uint8 input and output). "int16x8" (TFLite's
`EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8`) keeps the int8 weights, so the file is about as
small, but every activation gets 65,536 levels instead of 256: a ReLU6 map or the multi-scale head's one shared
concatenation scale loses ~256× less to rounding. Its ends are int16 (the converter allows int16 or float32 there;
the runtime quantizes the 0..255 pixels with the input's scale). The price is speed: LiteRT has no XNNPACK int16
kernels, so it runs on the reference kernels, which can be slower than float32.

"auto" lets each model earn it: the int8 model is kept when it reaches `export.min_agreement` on validation;
otherwise the int16x8 model is converted too and chosen only if it agrees better and is not slower than the
float32 model at 1 thread (the project's target: quantized never slower than float32). The reason is recorded.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from neurocascade.edge.bench import summarize_timings, time_calls
from neurocascade.edge.converter import keras_converter


def integer_converter(model: Any, representative: Callable, mode: str = "int8"):
    """The calibrated full-integer converter of a mode: "int8" (uint8 ends) or "int16x8" (int16 ends, TF's only
    integer ends for 16-bit activations)."""
    from neurocascade.tf import tf

    ops, ends = {
        "int8": (tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.uint8),
        "int16x8": (tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8, tf.int16),
    }[mode]
    converter = keras_converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [ops]
    converter.inference_input_type = converter.inference_output_type = ends
    return converter


def convert_int16x8(model: Any, representative: Callable) -> bytes:
    """16-bit activations, 8-bit weights, int16 input and output."""
    return integer_converter(model, representative, "int16x8").convert()


def latency_ms(predict: Callable[[np.ndarray], object], images: np.ndarray) -> float:
    """Median milliseconds per image of `predict` on `images`, one image at a time after one warm-up call (as
    edge-bench times a model)."""
    batches = [images[i : i + 1] for i in range(len(images))]
    return summarize_timings(time_calls(predict, batches, runs=len(batches), warmup=1))["p50_ms"]


def wants_int16x8(int8_agreement: float | None, min_agreement: float) -> bool:
    """Whether "auto" converts the int16x8 model too: only when the int8 model misses the agreement target."""
    return int8_agreement is not None and int8_agreement < min_agreement


def choose_mode(candidates: Mapping[str, Mapping[str, Any]], min_agreement: float) -> tuple[str, str]:
    """The mode "auto" keeps and why, from each converted mode's `agreement` (validation top-1 vs Keras) and `ms`
    (1 thread; "float32" gives the float model's). Without an int16x8 candidate the int8 model stands."""
    int8 = candidates["int8"]
    if int8["agreement"] is None:
        return "int8", "no validation images to measure agreement on"
    if int8["agreement"] >= min_agreement:
        return "int8", f"int8 agreement {int8['agreement']} >= min_agreement {min_agreement}"
    wide = candidates.get("int16x8")
    if wide is None:
        return "int8", "int16x8 not converted"
    if wide["agreement"] <= int8["agreement"]:
        return "int8", f"int16x8 agreement {wide['agreement']} not above int8's {int8['agreement']}"
    floor = candidates["float32"]["ms"]
    if wide["ms"] > floor:
        return "int8", (
            f"int16x8 agrees better ({wide['agreement']} vs {int8['agreement']}) but is slower than "
            f"float32 ({wide['ms']} vs {floor} ms at 1 thread)"
        )
    return "int16x8", (
        f"int8 agreement {int8['agreement']} < {min_agreement}; int16x8 {wide['agreement']} at "
        f"{wide['ms']} ms, float32 {floor} ms (1 thread)"
    )
