"""Cut a flat functional model in two at a tensor: a frozen bottom and a trainable top sharing its layers.

Phase 2 trains only the top backbone blocks, so the frozen bottom's output can be computed once per
augmentation pass and cached; the top is then trained on the cached activations. Both halves reuse the
original layers (weights are shared, not copied), so training the top trains the full model.

    bottom, top = split_at(model, cut_tensor)
"""
from __future__ import annotations

from neurocascade.tf import keras


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def split_at(model: keras.Model, cut, until: str | None = None) -> tuple[keras.Model, keras.Model]:
    """(input → cut, cut → output) models sharing `model`'s layers. The cut must be the only tensor that
    crosses from the bottom to the top (a block boundary), else ValueError. With `until`, the top ends at
    that layer's output instead (e.g. the pooled features before the head)."""
    bottom = keras.Model(model.input, cut, name=f"{model.name}_bottom")
    new_input = keras.Input(shape=cut.shape[1:], name="cut_input", dtype=cut.dtype)
    mapped = {id(cut): new_input}
    bottom_layers = {id(layer) for layer in bottom.layers}
    for layer in model.layers:
        if id(layer) in bottom_layers or isinstance(layer, keras.layers.InputLayer):
            continue
        inputs = _as_list(layer.input)
        if not all(id(t) in mapped for t in inputs):
            missing = [t.name for t in inputs if id(t) not in mapped]
            raise ValueError(f"cannot cut {model.name} at {cut.name}: layer {layer.name} also reads {missing}")
        args = [mapped[id(t)] for t in inputs]
        out = layer(args if isinstance(layer.input, (list, tuple)) else args[0])
        for original, new in zip(_as_list(layer.output), _as_list(out)):
            mapped[id(original)] = new
    final = model.get_layer(until).output if until else model.output
    outputs = [mapped[id(t)] for t in _as_list(final)]
    top = keras.Model(new_input, outputs if isinstance(final, (list, tuple)) else outputs[0],
                      name=f"{model.name}_top")
    return bottom, top
