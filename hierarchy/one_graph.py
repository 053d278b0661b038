"""The cascade as one graph: the gate's and the subtype model's heads on their one shared backbone.

With `model.backbone_from` (neither stage fine-tuning it further) the gate and the subtype model are two heads on
the same frozen backbone, yet the two-model export runs that backbone twice for every image the gate calls tumour.
`one_graph_model` puts the subtype head beside the gate's head on the gate's pooled features; its one output is
the cascade's soft four-class output in CLASSES order, P(k) = p·q_k for the subtypes and P(no tumour) = 1 − p
(`neurocascade.hierarchy.cascade.soft_probabilities`), from which τ's decision (p = 1 − P(no tumour)) and the
subtype's arg-max (that of p·q_k) follow. The float function is the two models' exactly; `export.one_graph`
exports it (`neurocascade.edge.export`), `neurocascade.edge.runtime.OneGraphCascade` runs it.

    why = backbone_difference(gate, subtype)   # None when they share one backbone
    model = one_graph_model(gate, subtype)     # image → (N, 4) probabilities
"""

from __future__ import annotations

import numpy as np

from neurocascade.hierarchy.stages import NO_TUMOUR, ONE_GRAPH
from neurocascade.models.head import HEAD_NAME, pooled_layer_name
from neurocascade.models.surgery import backbone_layers
from neurocascade.tf import keras, tf

SUBTYPE_HEAD = "subtype_head"  # the subtype model's head layers in the one graph (the gate's keep HEAD_NAME)
_DENSE_PART = ("bn", "dense", "dropout", "out")  # models.head._dense_part's layers, in order
# each stage's probabilities in the one graph: the output layer of its head (the export refits them one by one)
HEAD_OUTPUTS = {"gate": f"{HEAD_NAME}_out", "subtype": f"{SUBTYPE_HEAD}_out"}


def backbone_difference(gate: keras.Model, subtype: keras.Model) -> str | None:
    """Why the two models do not share one backbone (input, layers, weights, or the pooled features their heads
    read differ), or None when they do."""
    if tuple(gate.input_shape) != tuple(subtype.input_shape):
        return f"their inputs differ ({gate.input_shape} and {subtype.input_shape})"
    pooled = [model.get_layer(pooled_layer_name(model)).output_shape for model in (gate, subtype)]
    if pooled[0] != pooled[1]:
        return f"their heads read different pooled features ({pooled[0]} and {pooled[1]})"
    ours, theirs = backbone_layers(gate), backbone_layers(subtype)
    if [layer.name for layer in ours] != [layer.name for layer in theirs]:
        return "their backbones have different layers"
    for a, b in zip(ours, theirs):
        wa, wb = a.get_weights(), b.get_weights()
        if len(wa) != len(wb) or any(x.shape != y.shape or not np.array_equal(x, y) for x, y in zip(wa, wb)):
            return f"their backbones' weights differ (layer {a.name})"
    return None


class CascadeProbabilities(keras.layers.Layer):
    """[gate (N, 2): P(tumour), P(no tumour); subtype (N, 3)] → (N, 4) in CLASSES order: P(k) = p·q_k, P(no)."""

    def call(self, inputs):
        gate, subtype = inputs
        tumour = gate[:, :1] * subtype
        return tf.concat([tumour[:, :NO_TUMOUR], gate[:, 1:], tumour[:, NO_TUMOUR:]], axis=1)


def one_graph_model(gate: keras.Model, subtype: keras.Model) -> keras.Model:
    """The gate with the subtype model's head beside its own, on its pooled features (module doc); a ValueError
    when the two do not share one backbone."""
    why = backbone_difference(gate, subtype)
    if why:
        raise ValueError(f"the gate and the subtype model cannot be one graph: {why}")
    x = gate.get_layer(pooled_layer_name(gate)).output
    for part in _DENSE_PART:
        source = subtype.get_layer(f"{HEAD_NAME}_{part}")
        layer = type(source).from_config({**source.get_config(), "name": f"{SUBTYPE_HEAD}_{part}"})
        x = layer(x)
        layer.set_weights(source.get_weights())
    out = CascadeProbabilities(name="cascade_probabilities")([gate.output, x])
    return keras.Model(gate.input, out, name=ONE_GRAPH)
