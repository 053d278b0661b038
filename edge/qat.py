"""Quantization-aware training (TFMOT, 8-bit) of a trained classifier, ready for full-integer TFLite export.

    qat_model, info = quantize_for_training(model)          # fake-quant graph; `info` says what got quantized
    qat_model, summary = run_qat(model, x_train, y_train, x_val, y_val, cfg, run_dir / "stages/gate/qat",
                                 class_weights(y_train, 2, "balanced"))

Which layers get what (see also ../shared/notes/qat-efficientnet.md):
- layers the default 8-bit registry supports get its config (per-channel weight fake-quant for Conv2D, weight
  fake-quant for Dense, output fake-quant where TFLite has a quantized output, nothing for pass-through layers
  such as Dropout or Reshape). A BatchNormalization directly after a linear Conv2D/Dense counts as supported:
  TFMOT's layout transforms fold it with the convolution.
- DepthwiseConv2D gets `DepthwiseQuantizeConfig`: TFMOT's own config fake-quantizes depthwise kernels per
  tensor (it takes the kernel's last axis, the depth multiplier, as the channel axis), while TFLite quantizes them
  per channel; the BatchNorm after it is then handled here as TFMOT does for Conv2D. On the demo Lite2 cascade
  this raised INT8-vs-Keras agreement from 0.93/0.88 (gate/subtype) to 0.96/0.90.
- the rest (Rescaling, Normalization, the squeeze-excitation Multiply, a BatchNormalization after pooling as in
  our head) get `OutputQuantizeConfig`: no weight quantizer, one moving-average quantizer on the output. A no-op
  config there converts but then fails to prepare under XNNPACK and outputs constants without it.

The range trap: TFMOT's moving-average quantizers start at ±6 and move with decay 0.999, so a freshly quantized
model outputs the same garbage for every image and a handful of training steps barely moves it. `warm_up_ranges`
therefore runs a few training-mode batches (BatchNorm frozen, Dropout off) with the decay replaced by a running
mean (batch k weighs 1/(k+1)), so after it each range is the mean of the batches' ranges; fine-tuning then
continues with TFMOT's own decay. The input's range is all values seen, [0, 255] for real images, so the INT8
model's uint8 input is the pixels themselves (scale 1, zero point 0).

Fine-tuning trains what training trained (the head and the top `train.unfreeze_blocks` blocks, BatchNorm frozen),
and keeps the warmed-up model if no epoch beats its validation score. What it fits is `export.qat_target`:
"labels" — class-weighted cross-entropy on the training labels, scored by validation macro-F1; "float" —
distillation: cross-entropy against the float model's own softmax on the same training images (computed once,
inference mode, before QAT), no class weights, scored by the validation top-1 agreement of the fake-quant model
(inference mode) with the float model, which is what an INT8 export is checked on.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np

from neurocascade.hierarchy.checkpoint import PhaseCheckpoint, PhaseState
from neurocascade.eval.scores import macro_f1_of_probs
from neurocascade.hierarchy.engine import EpochBudget, epoch_seed, predict_batches, run_epochs
from neurocascade.config import Config
from neurocascade.io import atomic_write_bytes, write_json
from neurocascade.tf import keras, tf

import tensorflow_model_optimization as tfmot  # noqa: E402  (after neurocascade.tf: it needs Keras 2)
from tensorflow_model_optimization.python.core.quantization.keras import quant_ops  # noqa: E402
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (  # noqa: E402
    default_8bit_quantize_registry,
)

tfq = tfmot.quantization.keras
SCHEME = "tfmot-8bit+per-channel-depthwise/3"  # changes with the fake-quant graph or the QAT procedure
_FOLDABLE_INTO = ("Conv2D", "DepthwiseConv2D", "Dense")  # a linear one of these followed by BN is fused by TFMOT


class OutputQuantizeConfig(tfq.QuantizeConfig):
    """Leave weights and activations float, fake-quantize the output with a moving-average 8-bit range.

    For layers the default registry rejects. The output quantizer gives the converter a range for the tensor,
    which XNNPACK needs once the whole graph is integer.
    """

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [tfq.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    def get_config(self):
        return {}


class PassThroughConfig(OutputQuantizeConfig):
    """No fake-quant at all: a BatchNorm between a depthwise convolution and the ReLU whose range TFLite uses
    once the three are fused (what TFMOT's Conv+BN+ReLU transform does for the layers it handles itself)."""

    def get_output_quantizers(self, layer):
        return []


class DepthwiseWeightsQuantizer(tfq.quantizers.LastValueQuantizer):
    """Symmetric 8-bit per-channel fake-quant of a depthwise kernel (kh, kw, C, m), one range per output channel.

    TFMOT's own conv quantizer takes the kernel's last axis as the channel axis; for a depthwise kernel that is
    the depth multiplier (1), so every depthwise kernel is fake-quantized per tensor (upstream
    tensorflow/model-optimization#808), while TFLite quantizes it per channel. Reshaped to (kh, kw, 1, C·m) —
    TFLite's channel order — the last axis is the channel.
    """

    def __init__(self):
        super().__init__(num_bits=8, per_axis=True, symmetric=True, narrow_range=True)

    def build(self, tensor_shape, name, layer):
        channels = int(tensor_shape[-2]) * int(tensor_shape[-1])
        return {
            key: layer.add_weight(
                f"{name}_{key[:3]}", shape=(channels,), trainable=False, initializer=keras.initializers.Constant(value)
            )
            for key, value in (("min_var", -6.0), ("max_var", 6.0))
        }

    def __call__(self, inputs, training, weights, **kwargs):
        kh, kw, c, m = inputs.shape
        flat = tf.reshape(inputs, (kh, kw, 1, c * m))
        return tf.reshape(super().__call__(flat, training, weights, **kwargs), (kh, kw, c, m))


class DepthwiseQuantizeConfig(tfq.QuantizeConfig):
    """DepthwiseConv2D with per-channel weight fake-quant; its output is quantized here only when no BatchNorm
    follows (otherwise after the BatchNorm or the ReLU it folds into, as TFMOT does for Conv2D)."""

    def __init__(self, quantize_output: bool = True):
        self.quantize_output = quantize_output

    def get_weights_and_quantizers(self, layer):
        return [(layer.depthwise_kernel, DepthwiseWeightsQuantizer())]

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        layer.depthwise_kernel = quantize_weights[0]

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return OutputQuantizeConfig().get_output_quantizers(layer) if self.quantize_output else []

    def get_config(self):
        return {"quantize_output": self.quantize_output}


CUSTOM_OBJECTS = {
    cls.__name__: cls
    for cls in (OutputQuantizeConfig, PassThroughConfig, DepthwiseQuantizeConfig, DepthwiseWeightsQuantizer)
}


def quantize_scope():
    """The scope that deserialises a QAT model (TFMOT's wrappers plus the configs here)."""
    return tfq.quantize_scope(CUSTOM_OBJECTS)


def _inbound_layers(layer) -> list:
    nodes = getattr(layer, "_inbound_nodes", [])
    return [inbound for node in nodes for inbound in tf.nest.flatten(node.inbound_layers)]


def _outbound_layers(layer) -> list:
    return [node.outbound_layer for node in getattr(layer, "_outbound_nodes", [])]


def _is_linear(layer) -> bool:
    return keras.activations.serialize(getattr(layer, "activation", None)) == "linear"


def _is_relu(layer) -> bool:
    if isinstance(layer, keras.layers.ReLU):
        return True
    return isinstance(layer, keras.layers.Activation) and keras.activations.serialize(layer.activation) in (
        "relu",
        "relu6",
    )


def _folds_after_depthwise(bn) -> bool:
    """A BatchNormalization right after a linear DepthwiseConv2D (which TFLite folds into it)."""
    inbound = _inbound_layers(bn)
    return len(inbound) == 1 and isinstance(inbound[0], keras.layers.DepthwiseConv2D) and _is_linear(inbound[0])


def _default_supports(layer, registry) -> bool:
    """True when the default 8-bit scheme can quantize `layer` as it sits in its graph."""
    if isinstance(layer, keras.layers.BatchNormalization):
        inbound = _inbound_layers(layer)
        return len(inbound) == 1 and type(inbound[0]).__name__ in _FOLDABLE_INTO and _is_linear(inbound[0])
    return registry.supports(layer)


def _depthwise_config(layer):
    """Our config for a DepthwiseConv2D or the BatchNormalization after one (see `DepthwiseWeightsQuantizer`)."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        outbound = _outbound_layers(layer)
        folded = _is_linear(layer) and len(outbound) == 1 and isinstance(outbound[0], keras.layers.BatchNormalization)
        return DepthwiseQuantizeConfig(quantize_output=not folded)
    if isinstance(layer, keras.layers.BatchNormalization) and _folds_after_depthwise(layer):
        outbound = _outbound_layers(layer)
        return PassThroughConfig() if len(outbound) == 1 and _is_relu(outbound[0]) else OutputQuantizeConfig()
    return None


def quantize_for_training(model: keras.Model) -> tuple[keras.Model, dict]:
    """A fake-quantized copy of a flat functional `model`, and what was quantized how.

    `info`: per category the layer count and share of all non-input layers — "default" (the registry's config
    with at least one fake-quant op), "passthrough" (no fake-quant op of its own: a BatchNorm whose range is
    taken over by the activation after it once folded into its convolution, Dropout, ZeroPadding2D, Reshape),
    "custom" (`OutputQuantizeConfig`), "float" (left unwrapped) — plus the weight layers (Conv2D,
    DepthwiseConv2D, Dense) with fake-quantized weights and the custom and passthrough layers by class.
    `model` is not modified; the copy starts from its weights.
    """
    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    custom_names: set[str] = set()
    depthwise_names: set[str] = set()

    def annotate(layer):
        if isinstance(layer, keras.layers.InputLayer):
            return layer.__class__.from_config(layer.get_config())
        config = _depthwise_config(layer)
        if config is not None:
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                depthwise_names.add(layer.name)
            return tfq.quantize_annotate_layer(layer, config)
        if _default_supports(layer, registry):
            return tfq.quantize_annotate_layer(layer)
        custom_names.add(layer.name)
        return tfq.quantize_annotate_layer(layer, OutputQuantizeConfig())

    with quantize_scope():
        annotated = keras.models.clone_model(model, clone_function=annotate)
        qat_model = tfq.quantize_apply(annotated)
    return qat_model, _quantization_info(model, qat_model, custom_names, depthwise_names)


def _quantization_info(
    model: keras.Model, qat_model: keras.Model, custom_names: set[str], depthwise_names: set[str]
) -> dict:
    wrappers = {layer.layer.name: layer for layer in qat_model.layers if isinstance(layer, tfq.QuantizeWrapper)}
    counts = Counter()
    custom_classes, passthrough_classes = Counter(), Counter()
    weight_layers = weight_layers_quantized = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)):
            weight_layers += 1
        wrapper = wrappers.get(layer.name)
        if wrapper is None:
            counts["float"] += 1
        elif layer.name in custom_names:
            counts["custom"] += 1
            custom_classes[type(layer).__name__] += 1
        elif layer.name in depthwise_names:
            counts["depthwise_per_channel"] += 1
        elif wrapper._weight_vars or wrapper._quantize_activations or wrapper._output_quantizers:
            counts["default"] += 1
        else:
            counts["passthrough"] += 1
            passthrough_classes[type(layer).__name__] += 1
        if wrapper is not None and wrapper._weight_vars:
            weight_layers_quantized += 1
    total = sum(counts.values())
    cats = ("default", "depthwise_per_channel", "passthrough", "custom", "float")
    return {
        "layers": total,
        **{cat: counts[cat] for cat in cats},
        "share": {cat: round(counts[cat] / total, 4) if total else 0.0 for cat in cats},
        "custom_by_class": dict(sorted(custom_classes.items())),
        "passthrough_by_class": dict(sorted(passthrough_classes.items())),
        "weight_layers": weight_layers,
        "weight_layers_fake_quant": weight_layers_quantized,
        "custom_layers": sorted(custom_names),
    }


class QatCheckpoint(PhaseCheckpoint):
    """`PhaseCheckpoint` with the best weights as .npz: a QAT model cannot be saved as HDF5 weights.

    TFMOT's wrappers give several weights of one layer the same name, which h5py refuses ("name already exists").
    State, TF checkpoints and resume work as in training.
    """

    @property
    def best_path(self) -> Path:
        return self.dir / "best_weights.npz"

    def save_epoch(self, state: PhaseState, improved: bool) -> None:
        if improved:
            buf = io.BytesIO()
            np.savez(buf, *self.model.get_weights())
            atomic_write_bytes(self.best_path, buf.getvalue())
        state.checkpoint = self.manager.save()
        write_json(self.dir / "state.json", asdict(state))

    def restore_best(self) -> None:
        if self.best_path.exists():
            with np.load(self.best_path) as saved:
                self.model.set_weights([saved[f"arr_{k}"] for k in range(len(saved.files))])


def _qat_layers(qat_model: keras.Model):
    for layer in qat_model.layers:
        yield layer, (layer.layer if isinstance(layer, tfq.QuantizeWrapper) else layer)


def freeze_batchnorm(qat_model: keras.Model) -> None:
    """BatchNorm runs in inference mode (a frozen BN in tf_keras keeps its statistics even when training)."""
    for wrapper, inner in _qat_layers(qat_model):
        if isinstance(inner, keras.layers.BatchNormalization):
            wrapper.trainable = False


def qat_variables(qat_model: keras.Model, model: keras.Model, cfg: Config) -> tuple[list, list[str]]:
    """What QAT fine-tunes: what training fine-tuned — the head, plus, when training had a phase 2, the layers
    the saved float model marks trainable (the top `train.unfreeze_blocks` blocks, or `train.phase2_blocks` on
    images) — BatchNorm frozen.

    Returns (variables, layer names). An explicit list, because a TFMOT wrapper reports its quantized kernel as
    trainable whatever its `trainable` flag says. Training every layer instead overfitted the demo's ~400 clean
    images within one epoch (validation macro-F1 fell while the loss did).
    """
    phase2 = cfg.train.fine_tunes_backbone
    source = {layer.name: layer for layer in model.layers}
    variables, names, seen = [], [], set()
    for wrapper, inner in _qat_layers(qat_model):
        src = source.get(inner.name)
        if wrapper is inner or isinstance(inner, keras.layers.BatchNormalization) or src is None:
            continue
        if inner.name.startswith("head_") or (phase2 and src.trainable):
            names.append(inner.name)
            for v in inner.trainable_weights:
                if id(v) not in seen:
                    seen.add(id(v))
                    variables.append(v)
    return variables, names


def _train_step(qat_model: keras.Model, optimizer, variables: list, from_logits: bool = False, soft: bool = False):
    """One compiled step of class-weighted cross-entropy (Keras `class_weight` semantics) on `variables` only.

    `soft`: the targets are probability rows (distillation), not class indices.
    """
    loss_cls = keras.losses.CategoricalCrossentropy if soft else keras.losses.SparseCategoricalCrossentropy
    loss_fn = loss_cls(from_logits=from_logits)

    @tf.function
    def step(x, y, w):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, qat_model(x, training=True), sample_weight=w)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return step


@contextlib.contextmanager
def _running_mean_ranges():
    """Within: TFMOT's moving-average range update uses decay k/(k+1) for the k-th call of each variable.

    TFMOT hard-codes decay 0.999 in `MovingAverageQuantizer`; the module attribute it calls is swapped for the
    duration (eager calls only, so the swap is seen on every step) and always restored.
    """
    original = quant_ops.MovingAvgQuantize
    calls: dict[int, int] = {}

    def patched(inputs, min_var, max_var, *args, **kwargs):
        k = calls.get(id(min_var), 0)
        calls[id(min_var)] = k + 1
        kwargs["ema_decay"] = k / (k + 1.0)
        return original(inputs, min_var, max_var, *args, **kwargs)

    quant_ops.MovingAvgQuantize = patched
    try:
        yield calls
    finally:
        quant_ops.MovingAvgQuantize = original


@contextlib.contextmanager
def _dropout_off(qat_model: keras.Model):
    dropouts = [inner for _, inner in _qat_layers(qat_model) if isinstance(inner, keras.layers.Dropout)]
    rates = [d.rate for d in dropouts]
    for d in dropouts:
        d.rate = 0.0
    try:
        yield
    finally:
        for d, rate in zip(dropouts, rates):
            d.rate = rate


def warm_up_ranges(qat_model: keras.Model, images: np.ndarray, batches: int, batch_size: int, seed: int) -> int:
    """Set every activation range from `batches` training-mode batches of `images` (uint8 or float 0..255).

    BatchNorm stays in inference mode (`freeze_batchnorm`) and Dropout is off, so the ranges are those the
    exported model will see. Returns the number of batches run.
    """
    if batches <= 0 or len(images) == 0:
        return 0
    freeze_batchnorm(qat_model)
    order = np.random.default_rng(seed).permutation(len(images))
    n_run = 0
    with _running_mean_ranges(), _dropout_off(qat_model):
        for k in range(batches):
            idx = order[(k * batch_size) % len(order) :][:batch_size]
            if len(idx) == 0:
                idx = order[:batch_size]
            qat_model(tf.constant(images[np.sort(idx)], tf.float32), training=True)
            n_run += 1
    return n_run


def teacher_probabilities(model: keras.Model, x: np.ndarray, batch_size: int, from_logits: bool) -> np.ndarray:
    """The float model's softmax for `x` (inference mode), float32: the distillation targets."""
    out = predict_batches(model, x, batch_size)
    return (tf.nn.softmax(out).numpy() if from_logits else out).astype(np.float32)


def _agreement(reference: np.ndarray, out: np.ndarray) -> float:
    """Top-1 agreement of `out` with `reference` (probabilities or logits: only the arg-max counts)."""
    return float(np.mean(np.argmax(reference, 1) == np.argmax(out, 1))) if len(out) else 0.0


def _dataset(x: np.ndarray, y: np.ndarray, weights: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    """Shuffled batches cast to float32 one batch at a time (the uint8 set stays small in memory)."""
    ds = tf.data.Dataset.from_tensor_slices((x, y, weights)).shuffle(len(x), seed=seed, reshuffle_each_iteration=False)
    return ds.batch(batch_size).map(lambda a, b, w: (tf.cast(a, tf.float32), b, w))


def run_qat(
    model: keras.Model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    cfg: Config,
    directory: Path,
    class_weights: dict[int, float],
    stop_after_epochs: int | None = None,
    on_epoch=None,
    from_logits: bool = False,
    stage: str = "model",
) -> tuple[keras.Model, dict]:
    """Quantize `model`, warm its ranges up, fine-tune `cfg.export.qat_epochs` epochs; return the best QAT model.

    Fine-tunes the layers `qat_variables` names at `cfg.export.qat_lr` with `class_weights`. Images are uint8
    model inputs (N, S, S, 3), labels this model's class indices. Early stopping on validation
    macro-F1 (`cfg.train.patience`), starting from the warmed-up model's score, so fine-tuning is kept only if
    it beats it. With `cfg.export.qat_target` = "float" the targets are `model`'s own softmax on `x_train`
    (`class_weights` unused) and the score is the validation top-1 agreement with `model`; every record then
    carries both "val_agreement" and "val_macro_f1". Every epoch is checkpointed in `directory`
    (neurocascade.hierarchy.checkpoint): a rerun resumes, a finished one just reloads the best weights. `stop_after_epochs` interrupts like a kill (tests); `on_epoch(record)`
    reports progress. `from_logits`: `model` ends in logits (`neurocascade.edge.outputs.output_model`), not a softmax.
    `stage` names the model in its seeds (neurocascade.hierarchy.engine.epoch_seed, phases "qat-warmup" and "qat").
    """
    ex, n = cfg.export, int(model.output_shape[-1])
    distill = ex.qat_target == "float"
    t0 = time.perf_counter()
    qat_model, info = quantize_for_training(model)
    seconds_quantize = time.perf_counter() - t0
    freeze_batchnorm(qat_model)
    variables, trainable = qat_variables(qat_model, model, cfg)
    optimizer = keras.optimizers.Adam(ex.qat_lr)
    step = _train_step(qat_model, optimizer, variables, from_logits, soft=distill)
    ckpt = QatCheckpoint(Path(directory), qat_model, optimizer)
    state = ckpt.load_state()
    batch = cfg.train.batch_size
    seconds_teacher = 0.0
    if distill:  # the float model's own predictions: training targets and the validation reference
        t0 = time.perf_counter()
        targets = teacher_probabilities(model, x_train, batch, from_logits)
        reference_val = predict_batches(model, x_val, batch)
        seconds_teacher = time.perf_counter() - t0
        sample_w = np.ones(len(y_train), np.float32)
    else:
        targets = y_train.astype(np.int32)
        sample_w = np.array([class_weights.get(int(c), 1.0) for c in y_train], np.float32)

    def validate() -> dict:
        """The validation record fields ("val_agreement" selects the epoch when distilling, else "val_macro_f1")."""
        out = predict_batches(qat_model, x_val, batch)
        f1 = macro_f1_of_probs(y_val, out, n)
        return (
            {"val_agreement": _agreement(reference_val, out), "val_macro_f1": f1} if distill else {"val_macro_f1": f1}
        )

    if not state.history:  # fresh: warm the ranges up, score, and save that as the baseline to beat
        t0 = time.perf_counter()
        n_warm = warm_up_ranges(
            qat_model, x_train, ex.qat_warmup_batches, batch, epoch_seed(cfg.train.seed, stage, "qat-warmup")
        )
        scores = validate()
        state = PhaseState(best_score=scores["val_agreement" if distill else "val_macro_f1"], best_epoch=-1)
        seconds = time.perf_counter() - t0
        state.seconds += seconds
        state.history.append(
            {
                "epoch": 0,
                "loss": None,
                "val_macro_f1": scores["val_macro_f1"],
                "best": True,
                "seconds": round(seconds, 2),
                "warmup_batches": n_warm,
                **({"val_agreement": scores["val_agreement"]} if distill else {}),
            }
        )
        ckpt.save_epoch(state, improved=True)
    last: dict = {}

    def fit_epoch(epoch: int) -> tuple[float, dict]:
        shuffle_seed = epoch_seed(cfg.train.seed, stage, "qat", epoch)
        batches = _dataset(x_train, targets, sample_w, batch, shuffle_seed)
        loss = float(np.mean([float(step(x, y, w)) for x, y, w in batches]))
        if not distill:
            return loss, {}
        # scored here so that the record holds the true macro-F1 next to the agreement that selects the epoch
        last.update(validate())
        return loss, dict(last)

    def score() -> float:
        if distill:
            return last["val_agreement"]
        return macro_f1_of_probs(y_val, predict_batches(qat_model, x_val, batch), n)

    run_epochs(
        ckpt,
        state,
        ex.qat_epochs,
        cfg.train.patience,
        cfg.train.seed,
        stage,
        "qat",
        fit_epoch,
        score,
        on_epoch or (lambda record: None),
        EpochBudget(stop_after_epochs, "rerun the export to continue"),
    )
    best = state.history[state.best_epoch + 1] if 0 <= state.best_epoch + 1 < len(state.history) else {}
    summary = {
        "target": ex.qat_target,
        "quantization": info,
        "trained_layers": len(trainable),
        "epochs": state.epochs_done,
        "best_epoch": state.best_epoch + 1,
        "best_val_macro_f1": best.get("val_macro_f1", state.best_score) if distill else state.best_score,
        **({"best_val_agreement": state.best_score} if distill else {}),
        "warmup_batches": state.history[0].get("warmup_batches", 0),
        "seconds": round(state.seconds + seconds_quantize + seconds_teacher, 1),
        "seconds_quantize_apply": round(seconds_quantize, 1),
        **({"seconds_teacher": round(seconds_teacher, 1)} if distill else {}),
        "history": state.history,
    }
    return qat_model, summary
