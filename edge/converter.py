"""The TFLite converter every export, quantization mode and `quant-debug` starts from.

`tf.lite.TFLiteConverter.from_keras_model` first saves the Keras model as a SavedModel, and tf_keras traces every
layer's call again for it: 35 s of a Lite2 model's 40-s float32 conversion, and half of an INT8 one, on this
2-core machine, six conversions per cascade export. Saving only the model's inference call and its variables
(a `tf.Module`, no Keras layers to trace) takes seconds and gives the same file: the same signature
(`serving_default`, input `image`, output named after the model's), the same tensor names and the same numbers.

    converter = keras_converter(model)            # then set optimizations, representative_dataset, ... as usual
    data = converter.convert()

The SavedModel lives in a temporary folder owned by the converter: it is read again by `convert()` and removed
when the converter is garbage-collected.
"""

from __future__ import annotations

import tempfile
from typing import Any


def keras_converter(model: Any):
    """A `tf.lite.TFLiteConverter` of `model`'s inference call (training=False), from a SavedModel of that call."""
    from neurocascade.tf import tf

    spec = tf.TensorSpec(model.input.shape, model.input.dtype, name=model.input_names[0])
    call = tf.function(lambda image: {model.output_names[0]: model(image, training=False)})
    module = tf.Module()
    module.weights = list(model.variables)  # tracked, so saved; the Keras layers themselves are not
    folder = tempfile.TemporaryDirectory(prefix="neurocascade-convert-")
    tf.saved_model.save(module, folder.name, signatures={"serving_default": call.get_concrete_function(spec)})
    converter = tf.lite.TFLiteConverter.from_saved_model(folder.name)
    converter._neurocascade_folder = folder  # noqa: SLF001 (kept alive with the converter, which reads it again)
    return converter
