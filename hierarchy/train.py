"""Two-phase training of one model (gate, subtype or flat) on cached frozen-backbone activations.

Phase 1: the backbone frozen, only the head trained, on pooled features of the clean and augmented passes.
Phase 2: the top `unfreeze_blocks` backbone blocks unfrozen at a low learning rate (BatchNorm kept in
inference mode), trained on the cached activations at the cut below them; or, with `train.phase2_data =
"images"`, the whole model (its top `phase2_blocks` blocks, all by default) on a fresh augmentation of every
training image each epoch, which is what makes fine-tuning learn (issue 13) — with `train.phase2_cache_bottom`
the frozen part's output for each draw read from the activation cache (neurocascade.hierarchy.bottom_cache).
Both phases: class weights, early stopping on validation macro-F1 (of the epoch-wise weight average with
`train.weight_average`, which is then what is kept), the best weights restored; phase 2 starts from phase 1's
best and keeps it if no phase-2 epoch beats it. Every epoch is checkpointed (neurocascade.hierarchy.checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import numpy as np

from neurocascade.data.pipeline import class_weights
from neurocascade.eval.scores import macro_f1_of_probs
from neurocascade.hierarchy.averaging import WeightAverage, averaged
from neurocascade.hierarchy.bottom_cache import BottomRows, CachedDraws
from neurocascade.hierarchy.checkpoint import PhaseCheckpoint, PhaseState
from neurocascade.hierarchy.engine import EpochBudget, TrainingInterrupted, epoch_seed, predict_batches, run_epochs  # noqa: F401 (re-exported)
from neurocascade.data.augment import Augmenter
from neurocascade.hierarchy.features import as_float32, augment_by_content, take_rows
from neurocascade.hierarchy.mixup import mix_rows
from neurocascade.hierarchy.stages import StageSpec
from neurocascade.models.head import build_head_model, transfer_head_weights
from neurocascade.models.surgery import split_at
from neurocascade.config import Config
from neurocascade.tf import keras, tf


class Reporter:
    """Progress callbacks; the CLI draws them with rich, the Python API may ignore them."""

    def phase_start(self, stage: str, phase: str, total: int, done: int) -> None: ...

    def epoch_end(self, stage: str, phase: str, record: dict) -> None: ...

    def phase_end(self, stage: str, phase: str, state: PhaseState) -> None: ...


@dataclass
class StageData:
    """Inputs of one stage: pooled features and cut activations per cached pass, labels; the images themselves
    (uint8) and their content hashes when phase 2 trains on images."""

    pooled: list[np.ndarray]  # per training pass (clean first), all training images
    cut: list[np.ndarray | list[np.ndarray]]  # per pass: the top's input, or inputs (cut and pooled taps)
    pooled_val: np.ndarray
    cut_val: np.ndarray | list[np.ndarray]
    y4: np.ndarray
    y4_val: np.ndarray
    images: np.ndarray | None = None
    images_val: np.ndarray | None = None
    hashes: list[str] | None = None
    hashes_val: list[str] | None = None
    bottom_cache: Path | None = None  # where `train.phase2_cache_bottom` keeps its rows (the activation cache's root)


@dataclass(frozen=True)
class FreshAugmentation:
    """Training images drawn anew every epoch: epoch e sees each image augmented with a seed of (seed, e, its
    content hash), so a resumed phase draws what an uninterrupted one would, whatever the order of the rows."""

    images: np.ndarray  # uint8 (N, H, W, 3)
    hashes: list[str]
    augmenter: Augmenter
    seed: int

    def draw(self, epoch: int) -> np.ndarray:
        return augment_by_content(self.augmenter, self.images, self.hashes, self.seed, epoch)


PREDICT_BATCH = 32
"""Rows per call when scoring validation each epoch: `Model.predict`'s default, which scored it before."""


def build_stage_head(stage: str, in_dim: int, n_classes: int, cfg: Config, synchronized: bool = False) -> keras.Model:
    """The stage's fresh head, its initial weights seeded by the stage's name (see epoch_seed); `synchronized`:
    global-batch BatchNormalization statistics (see neurocascade.models.head)."""
    keras.utils.set_random_seed(epoch_seed(cfg.train.seed, stage, "init"))
    m = cfg.model
    return build_head_model(
        in_dim, n_classes, m.head_units, m.dropout, synchronized=synchronized, noise=m.feature_noise
    )


def run_phase(
    name: str,
    stage: StageSpec,
    model: keras.Model,
    optimizer,
    epochs: int,
    patience: int,
    directory: Path,
    train_inputs: list | FreshAugmentation,
    y: np.ndarray,
    val_inputs: np.ndarray | list[np.ndarray],
    y_val: np.ndarray,
    cfg: Config,
    reporter: Reporter,
    budget: EpochBudget,
    baseline: bool,
) -> PhaseState:
    """Epoch loop with early stopping and per-epoch checkpoints; leaves `model` at its best weights.

    `train_inputs`: the cached passes (epoch e trains on pass e mod their number), or draws anew each epoch (of
    the images, or of the top part's rows from the cached bottom).
    """
    n = len(stage.classes)
    smoothing, alpha = cfg.train.label_smoothing, cfg.train.mixup_alpha
    if smoothing or alpha:  # Keras smooths only one-hot targets; class weights still apply (by each row's argmax)
        model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(label_smoothing=smoothing))
        targets = np.eye(n, dtype=np.float32)[y]
    else:
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
        targets = y
    average = WeightAverage(model, cfg.train.weight_average) if cfg.train.weight_average else None
    ckpt = PhaseCheckpoint(directory, model, optimizer, average)
    state = ckpt.load_state()
    if state.epochs_done == 0 and not state.done and baseline:
        # Phase 2 must beat phase 1's result, which is where it starts: keep that as the best so far.
        state.best_score = macro_f1_of_probs(y_val, predict_batches(model, val_inputs, PREDICT_BATCH), n)
        tmp = ckpt.dir / ".best_tmp.h5"
        model.save_weights(str(tmp))
        tmp.replace(ckpt.best_path)
    weights = class_weights(y, n, cfg.train.class_weight)

    def fit_epoch(epoch: int) -> tuple[float, dict]:
        # Dropout's random op is stateful and its seed is frozen into the train function when that is
        # traced: an uninterrupted phase traced it at its first epoch and then continued the op's stream,
        # a resumed one traced it at the epoch it resumed with another seed. Retracing every epoch makes
        # each epoch's dropout masks a function of the epoch's seed alone (issue 14, item 6).
        model.train_function = None
        loss, extra = train_one_epoch(epoch)
        if average:
            average.update()
        return loss, extra

    def train_one_epoch(epoch: int) -> tuple[float, dict]:
        """One epoch's training: on a fresh draw of the images, or on one cached pass (mixed up if configured)."""
        if isinstance(train_inputs, (FreshAugmentation, CachedDraws)):
            rng = np.random.default_rng(epoch_seed(cfg.train.seed, stage.name, f"{name}-order", epoch))
            return fit_in_batches(model, train_inputs.draw(epoch), targets, weights, cfg.train.batch_size, rng), {
                "draw": epoch
            }
        k = epoch % len(train_inputs)
        x, fit_targets, weighting = as_float32(train_inputs[k]), targets, {"class_weight": weights}
        if alpha:  # fresh blends every epoch, seeded by the epoch like everything else in it
            rng = np.random.default_rng(epoch_seed(cfg.train.seed, stage.name, f"{name}-mixup", epoch))
            row_weights = np.array([weights[c] for c in y], np.float32)
            x, fit_targets, row_weights = mix_rows(x, targets, row_weights, alpha, rng)
            weighting = {"sample_weight": row_weights}
        fit = model.fit(x, fit_targets, batch_size=cfg.train.batch_size, epochs=1, verbose=0, shuffle=True, **weighting)
        return float(fit.history["loss"][0]), {"pass": k}

    def score() -> float:
        """Validation macro-F1 of what the phase keeps: the weight average when there is one."""
        with averaged(average):
            return macro_f1_of_probs(y_val, predict_batches(model, val_inputs, PREDICT_BATCH), n)

    reporter.phase_start(stage.name, name, epochs, state.epochs_done)
    run_epochs(
        ckpt,
        state,
        epochs,
        patience,
        cfg.train.seed,
        stage.name,
        name,
        fit_epoch,
        score,
        lambda record: reporter.epoch_end(stage.name, name, record),
        budget,
    )
    reporter.phase_end(stage.name, name, state)
    return state


def fit_in_batches(
    model: keras.Model,
    images: np.ndarray | list[np.ndarray],
    targets: np.ndarray,
    class_weight: dict,
    batch_size: int,
    rng: np.random.Generator,
) -> float:
    """One epoch over `images` (uint8 images, or the top part's rows) in `rng`'s order, cast to float32 a batch at
    a time; the epoch's mean loss.

    Not `model.fit` on the epoch's array: each epoch's retraced train function kept its own float32 copy of it
    (2.7 GB at 320 px), and a whole-model phase 2 on the real data grew past 22 GB by its fourth epoch (OOM-killed).
    """
    model.reset_metrics()
    loss = float("nan")
    order = rng.permutation(len(targets))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        loss = model.train_on_batch(
            as_float32(take_rows(images, rows)), targets[rows], class_weight=class_weight, reset_metrics=False
        )
    return float(loss)


def train_stage(
    stage: StageSpec,
    model: keras.Model,
    cut,
    data: StageData,
    cfg: Config,
    directory: Path,
    reporter: Reporter,
    budget: EpochBudget,
    strategy: tf.distribute.Strategy,
) -> tuple[keras.Model, dict]:
    """Train `model` (a fresh classifier for `stage`) in two phases; returns its top part and phase states.

    The top part (cut → probabilities) shares the model's layers, so it is also how validation and test
    activations from the cache are scored — unless phase 2 trained on images, which moves the frozen part too.
    """
    mask, y = stage.select(data.y4)
    val_mask, y_val = stage.select(data.y4_val)
    n = len(stage.classes)
    with strategy.scope():
        head = build_stage_head(stage.name, data.pooled[0].shape[1], n, cfg, synchronized=replicated(strategy))
        opt1 = keras.optimizers.Adam(cfg.train.phase1_lr)
    phase1 = run_phase(
        "phase1",
        stage,
        head,
        opt1,
        cfg.train.phase1_epochs,
        cfg.train.patience,
        directory / "phase1",
        [p[mask] for p in data.pooled],
        y,
        data.pooled_val[val_mask],
        y_val,
        cfg,
        reporter,
        budget,
        baseline=False,
    )
    transfer_head_weights(head, model)
    states = {"phase1": phase1}
    _, top = split_at(model, cut)
    if cfg.train.fine_tunes_backbone:
        from neurocascade.models.build import backbone_blocks, set_trainable_top_blocks
        from neurocascade.models.registry import get_backbone

        spec = get_backbone(cfg.model.backbone)
        if cfg.train.phase2_data == "images":
            blocks = cfg.train.phase2_blocks or len(backbone_blocks(model, spec))
            trained, train_inputs, val_inputs = model, _fresh_images(stage, data, mask, cfg), data.images_val[val_mask]
            if cfg.train.phase2_cache_bottom:  # the same draws, the frozen part's rows from the cache
                rows = BottomRows.at(model, cfg, blocks, _required(data.bottom_cache, "bottom_cache"))
                hashes_val = [h for h, keep in zip(_required(data.hashes_val, "hashes_val"), val_mask) if keep]
                trained, train_inputs = rows.top, CachedDraws(rows, train_inputs)
                val_inputs = rows.clean(val_inputs, hashes_val)
        else:
            blocks, trained = cfg.train.unfreeze_blocks, top
            train_inputs, val_inputs = [take_rows(c, mask) for c in data.cut], take_rows(data.cut_val, val_mask)
        set_trainable_top_blocks(model, spec, blocks)
        with strategy.scope():
            opt2 = phase2_optimizer(cfg, steps_per_epoch=-(-int(mask.sum()) // cfg.train.batch_size))
        states["phase2"] = run_phase(
            "phase2",
            stage,
            trained,
            opt2,
            cfg.train.phase2_epochs,
            cfg.train.phase2_patience or cfg.train.patience,
            directory / "phase2",
            train_inputs,
            y,
            val_inputs,
            y_val,
            cfg,
            reporter,
            budget,
            baseline=True,
        )
    return top, {k: _phase_summary(v) for k, v in states.items()}


def _required(value, name: str):
    """`value`, which `train.phase2_cache_bottom` needs in StageData."""
    if value is None:
        raise ValueError(f"train.phase2_cache_bottom needs StageData.{name}")
    return value


def _fresh_images(stage: StageSpec, data: StageData, mask: np.ndarray, cfg: Config) -> FreshAugmentation:
    """The stage's training images for phase 2 on images, augmented anew each epoch with the config's ranges."""
    if data.images is None or data.images_val is None or data.hashes is None:
        raise ValueError('phase2_data = "images" needs StageData.images, images_val and hashes')
    hashes = [h for h, keep in zip(data.hashes, mask, strict=True) if keep]
    seed = epoch_seed(cfg.train.seed, stage.name, "phase2-images")
    return FreshAugmentation(data.images[mask], hashes, Augmenter(cfg.augment), seed)


def replicated(strategy: tf.distribute.Strategy) -> bool:
    """Whether `strategy` splits each batch over several replicas: then the head's BatchNormalization must
    all-reduce its statistics for training to equal one process's (tests/hierarchy/test_multi_worker.py)."""
    return strategy.num_replicas_in_sync > 1


def phase2_learning_rate(cfg: Config, steps_per_epoch: int):
    """Phase 2's rate: `phase2_lr`, or a linear warm-up to it then a cosine to 0 over the phase. The schedule
    counts optimizer steps, which the phase checkpoint keeps, so a resumed phase continues on the same curve."""
    t = cfg.train
    if t.phase2_schedule == "constant":
        return t.phase2_lr
    warmup = t.phase2_warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else t.phase2_lr,
        decay_steps=max((t.phase2_epochs - t.phase2_warmup_epochs) * steps_per_epoch, 1),
        warmup_target=t.phase2_lr if warmup else None,
        warmup_steps=warmup,
    )


def phase2_optimizer(cfg: Config, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam on phase2_learning_rate, AdamW when `phase2_weight_decay` is set (decay decoupled from the loss)."""
    lr = phase2_learning_rate(cfg, steps_per_epoch)
    if cfg.train.phase2_weight_decay:
        return keras.optimizers.AdamW(lr, weight_decay=cfg.train.phase2_weight_decay)
    return keras.optimizers.Adam(lr)


def _phase_summary(state: PhaseState) -> dict:
    return {
        "epochs": state.epochs_done,
        "best_epoch": state.best_epoch + 1,
        "best_val_macro_f1": state.best_score,
        "seconds": round(state.seconds, 1),
        "history": state.history,
    }
