"""Cut a flat functional model in two at a tensor: a frozen bottom and a trainable top sharing its layers.

Phase 2 trains only the top backbone blocks, so the frozen bottom's output can be computed once per
augmentation pass and cached; the top is then trained on the cached activations. Both halves reuse the
original layers (weights are shared, not copied), so training the top trains the full model.

    bottom, top = split_at(model, cut_tensor)

`copy_backbone` is the other operation on a built model: a backbone's weights given to another model of the same
builder (a stage from the template whose activations are cached, a stage from another run's fine-tuned model);
`weights_sha256` names what a model (or a half of one) computes, for a cache or a measurement keyed by it.
"""

from __future__ import annotations

import hashlib

import numpy as np

from neurocascade.tf import keras


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def split_at(model: keras.Model, cut, until: str | None = None) -> tuple[keras.Model, keras.Model]:
    """(input → cut, cut → output) models sharing `model`'s layers. `cut` is one tensor or a list (a block
    boundary plus, for a multi-scale head, pooled taps below it): together they must be every tensor that
    crosses from the bottom to the top, else ValueError. With `until`, the top ends at that layer's output
    instead (e.g. the pooled features before the head)."""
    cuts = _as_list(cut)
    single = len(cuts) == 1  # one tensor in a list is the same as one tensor: single input and output
    bottom = keras.Model(model.input, cuts[0] if single else cuts, name=f"{model.name}_bottom")
    new_inputs = [
        keras.Input(shape=c.shape[1:], name="cut_input" if single else f"cut_input_{i}", dtype=c.dtype)
        for i, c in enumerate(cuts)
    ]
    mapped = {id(c): new for c, new in zip(cuts, new_inputs)}
    bottom_layers = {id(layer) for layer in bottom.layers}
    for layer in model.layers:
        if id(layer) in bottom_layers or isinstance(layer, keras.layers.InputLayer):
            continue
        inputs = _as_list(layer.input)
        if not all(id(t) in mapped for t in inputs):
            missing = [t.name for t in inputs if id(t) not in mapped]
            raise ValueError(
                f"cannot cut {model.name} at {[c.name for c in cuts]}: layer {layer.name} also reads {missing}"
            )
        args = [mapped[id(t)] for t in inputs]
        out = layer(args if isinstance(layer.input, (list, tuple)) else args[0])
        for original, new in zip(_as_list(layer.output), _as_list(out)):
            mapped[id(original)] = new
    final = model.get_layer(until).output if until else model.output
    outputs = [mapped[id(t)] for t in _as_list(final)]
    top = keras.Model(
        new_inputs[0] if single else new_inputs,
        outputs if isinstance(final, (list, tuple)) else outputs[0],
        name=f"{model.name}_top",
    )
    return bottom, top


def backbone_layers(model: keras.Model, skip_prefixes: tuple[str, ...] = ()) -> list:
    """The layers with weights outside the head (and outside the `skip_prefixes` sub-backbones), in build order:
    what a backbone copy maps one to one — two models of one builder share no layer names, only positions."""
    skip = ("head_", *skip_prefixes)
    return [layer for layer in model.layers if layer.weights and not layer.name.startswith(skip)]


def copy_backbone(source: keras.Model, target: keras.Model, skip_prefixes: tuple[str, ...] = ()) -> bool:
    """Give `target` the backbone weights of `source` (whose layers under `skip_prefixes` `target` was built
    without); False, and nothing copied, when the two backbones are built otherwise (layer count or shapes)."""
    sources, targets = backbone_layers(source, skip_prefixes), backbone_layers(target)
    pairs = list(zip(sources, targets))
    if len(sources) != len(targets) or any(
        [tuple(w.shape) for w in a.weights] != [tuple(w.shape) for w in b.weights] for a, b in pairs
    ):
        return False
    for a, b in pairs:
        b.set_weights(a.get_weights())
    return True


def weights_sha256(model: keras.Model) -> str:
    """A hash of every weight of `model`, in its order: the key of what the model computes, whatever built or
    loaded it (a cache of its outputs, a measurement on them)."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()
