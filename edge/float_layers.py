"""Named layers of an INT8 model left in float (`export.float_layers`): the debugger's node denylist.

    nodes = denylisted_nodes(calibrated_tflite, ["stem_conv", "block1a_dwconv"])
    quantized = mlir_quantize(calibrated_tflite, denylisted_ops=..., denylisted_nodes=nodes)

`export.float_ops` keeps every op of a type in float; this keeps a few chosen ops, the ones `quant-debug` ranks
worst, so the rest of the backbone stays integer. A TFLite op is named by its output tensor, whose name lists the
Keras layers folded into it ("model/block1a_activation/Relu6;model/block1a_bn/FusedBatchNormV3;
model/block1a_dwconv/depthwise"): an op is kept in float when any of those layer names is one of `layers`, so
"block1a_dwconv" or "block1a_bn" name the same fused op. A name that matches no op is a user's mistake (a typo
would otherwise quantize everything silently) and is refused in one line.
"""

from __future__ import annotations

from typing import Sequence

from neurocascade.errors import UserError


def layer_names(tensor_name: str) -> set[str]:
    """Every path component of every ";"-joined part of a TFLite tensor name (the Keras layers fused into its op)."""
    return {piece for part in tensor_name.split(";") for piece in part.split("/")}


def denylisted_nodes(calibrated: bytes, layers: Sequence[str]) -> list[str]:
    """The output tensor names of the ops of `calibrated` (a calibrate-only TFLite model) that `layers` name."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(calibrated))
    wanted, found, nodes = set(layers), set(), []
    for graph in model.subgraphs:
        for op in graph.operators:
            for index in op.outputs:
                name = graph.tensors[index].name
                name = name.decode() if isinstance(name, bytes) else str(name)
                hit = layer_names(name) & wanted
                if hit:
                    found |= hit
                    nodes.append(name)
    missing = sorted(wanted - found)
    if missing:
        raise UserError(
            f"export.float_layers: no op of the model comes from {', '.join(missing)} "
            "(use the layer names `quant-debug` prints)"
        )
    return nodes
