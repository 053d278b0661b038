"""What an exported model outputs: softmax probabilities, or the logits before the softmax.

    export_model = output_model(model, "logits")    # the same layers, the last Dense without its softmax
    p = softmax(dequantized_logits)                  # numpy only: the LiteRT runtime applies it in float

Why logits: a full-integer softmax outputs uint8 probabilities in steps of 1/256 (largest 255/256), so a gate
threshold τ above 0.996 cannot be expressed and nearby thresholds collapse onto one step. INT8 logits keep the
quantization error in logit space, where a step moves a probability p by about p(1 − p)·scale: fine exactly where
τ and the cascade's product P(tumour)·P(subtype) need it. Asking the converter for a float32 output instead
(`inference_output_type=tf.float32`) does not help: it only dequantizes the int8 softmax, still k/256.

No TensorFlow at import: `neurocascade.edge.runtime` uses `softmax` and `OUTPUTS` on the device.
"""

from __future__ import annotations

import numpy as np

from neurocascade.config import EXPORT_OUTPUTS as OUTPUTS  # export.output; the sidecar's "output" (schema 2)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (shifted by the row max, so large logits cannot overflow)."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def output_model(model, output: str):
    """`model` as exported for `output`: itself for "probabilities"; for "logits" the same graph up to its last
    Dense, which is rebuilt with a linear activation and the same weights (the layers before it are shared)."""
    if output not in OUTPUTS:
        raise ValueError(f"unknown export output {output!r}; expected one of {', '.join(OUTPUTS)}")
    if output == "probabilities":
        return model
    from neurocascade.tf import keras

    last = model.layers[-1]
    if not isinstance(last, keras.layers.Dense) or keras.activations.serialize(last.activation) != "softmax":
        raise ValueError(f"{model.name}: the last layer {last.name!r} is not a Dense softmax; cannot export logits")
    logits = keras.layers.Dense(last.units, activation=None, dtype="float32", name=f"{last.name}_logits")
    y = logits(last.input)
    logits.set_weights(last.get_weights())
    return keras.Model(model.inputs, y, name=f"{model.name}_logits")
