"""`train-cascade` and `train-flat`: config → data → cached backbone activations → trained models → run dir.

A run directory holds the effective config, a manifest (dataset fingerprint and split hashes, dedupe
counts, package versions, seed, weights source, wall time per phase), per-epoch history (CSV and JSON) per
model and phase, the best models (`models/<stage>.keras`), validation predictions and, for a cascade, the
gate threshold τ. The frozen backbone's activations live in `runs/.cache/<key>/`, one file per image and
pass, shared by every run with the same preprocessing, backbone, cut and augmentation, whatever its split —
so `train-flat` after `train-cascade` reuses them, and so does another protocol on the same images.

    summary = train_models(cfg, ("gate", "subtype"), Path("runs/cascade"))
"""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import numpy as np

from neurocascade.data.augment import Augmenter
from neurocascade.data.dataset import PreparedData, load_dataset
from neurocascade.data.layout import CLASSES
from neurocascade.data.pipeline import class_weights
from neurocascade.data.split import group_folds
from neurocascade.hierarchy.artifacts import RunManifest, Tau, TrainingSummary
from neurocascade.hierarchy.backbone_source import cache_weights, copy_backbone_from, load_backbone_source
from neurocascade.hierarchy.bottom_cache import RowsAbove
from neurocascade.hierarchy.cluster import WorkerRole, worker_cache, worker_output, worker_role
from neurocascade.hierarchy.cascade import choose_tau, hard_predictions, soft_probabilities, tumour_called
from neurocascade.hierarchy.crossfit import out_of_fold_scores
from neurocascade.hierarchy.features import (
    ActivationCache,
    activation_key,
    as_float32,
    augment_by_content,
    cache_key,
    cut_name,
    pack_rows,
    take_rows,
    unpack_rows,
)
from neurocascade.hierarchy.ownership import (
    RUN_RECORD,
    check_resume,
    claim_run,
    config_difference,
    dataset_record,
    run_record,
    write_image_list,
)
from neurocascade.hierarchy.stages import NO_TUMOUR, STAGES, StageSpec
from neurocascade.hierarchy.temperature import apply_temperature, fit_temperature
from neurocascade.eval.scores import macro_f1_of_probs, macro_f1_score
from neurocascade.hierarchy.engine import EpochBudget, predict_batches
from neurocascade.hierarchy.train import Reporter, StageData, replicated, train_stage
from neurocascade.models.build import backbone_blocks, build_classifier, cut_below_top_blocks, extra_tap_layers
from neurocascade.models.head import pooled_layer_name, scale_output_logits
from neurocascade.models.registry import get_backbone
from neurocascade.models.surgery import copy_backbone, split_at
from neurocascade.models.weights import WeightsSource, resolve_weights
from neurocascade.config import Config, ModelConfig, load_config, to_toml
from neurocascade.errors import ConfigError, UserError
from neurocascade.io import atomic_write_text, sha256_file, write_json
from neurocascade.paths import cache_root as default_cache_root, weight_dirs
from neurocascade.tf import keras, tf

PACKAGES = (
    "tensorflow",
    "tf-keras",
    "tensorflow-model-optimization",
    "ai-edge-litert",
    "numpy",
    "scikit-learn",
    "albumentations",
    "imagehash",
    "pydicom",
)


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_config(out: Path, cfg: Config | None, resume: bool) -> Config:
    """The config to train with: `cfg` for a new run; on resume the run's own, which `cfg` (if given) must equal.

    Call it holding the run's lock (neurocascade.hierarchy.ownership.claim_run), which also refuses a non-empty folder
    for a new run.
    """
    saved = out / "config.toml"
    if resume:
        if not saved.exists():
            raise UserError(f"{out}: nothing to resume (no config.toml); start the run without --resume")
        own = load_config(saved)
        if cfg is not None and (diff := config_difference(cfg, own)):
            raise UserError(
                f"{out}: --resume with another config: {diff}; resume without --config to use the run's own"
            )
        return own
    if cfg is None:
        raise UserError(f"{out}: a new run needs a config")
    return cfg


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The configured tf.distribute strategy: this machine's default device, mirrored GPUs, or a cluster."""
    if name == "mirrored":
        # With no GPU, mirror over the logical CPU devices (one unless configured): how tests exercise it.
        devices = (
            None if tf.config.list_logical_devices("GPU") else [d.name for d in tf.config.list_logical_devices("CPU")]
        )
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def cut_tensors(model: keras.Model, cfg: Config) -> list:
    """What crosses from the frozen bottom to the trained top of a cached phase 2: the cut below the top
    `unfreeze_blocks` backbone blocks (`neurocascade.models.build.cut_below_top_blocks`)."""
    n = cfg.train.unfreeze_blocks
    blocks = backbone_blocks(model, get_backbone(cfg.model.backbone))
    if n > len(blocks):
        raise ConfigError(f"train.unfreeze_blocks = {n}: {cfg.model.backbone} has only {len(blocks)} blocks")
    return cut_below_top_blocks(model, cfg.model, n)


def _stage_inputs(data: StageData, template: keras.Model, shared: Config, stage_model: ModelConfig) -> StageData:
    """The run's cached inputs as one stage's model sees them: a stage built without the run's extra backbones
    (`model.extra_backbone_stages`) drops their pooled taps from the cut (they follow its first tensor) and their
    columns from the pooled rows (the head concatenates them first)."""
    if stage_model.extra_backbones == shared.model.extra_backbones:
        return data
    extra = extra_tap_layers(template, shared.model.extra_backbones)
    n, width = len(extra), sum(int(layer.output.shape[-1]) for layer in extra)

    def cut(x: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        kept = [x[0], *x[1 + n :]]
        return kept[0] if len(kept) == 1 else kept

    return replace(
        data,
        pooled=[p[:, width:] for p in data.pooled],
        cut=[cut(x) for x in data.cut],
        pooled_val=data.pooled_val[:, width:],
        cut_val=cut(data.cut_val),
    )


CUT_SEPARATOR = " | "
"""Between the cuts of a run's backbone groups in its manifest (`model.backbone_size` on some of its models)."""


def _write_history(directory: Path, stage: str, phases: dict) -> None:
    rows = [{"stage": stage, "phase": phase, **record} for phase, info in phases.items() for record in info["history"]]
    write_json(directory / "history.json", rows)
    buf = io.StringIO()
    if rows:
        # every phase's fields: a phase 2 on images records its draw where a cached one records its pass
        writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(directory / "history.csv", buf.getvalue())


def _save_model(model: keras.Model, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    model.save(str(tmp))
    tmp.replace(path)


def _activations(
    cfg: Config,
    ds: PreparedData,
    template: keras.Model,
    cuts: list,
    weights_info: dict,
    cache_root: Path,
    progress_factory,
    label: str = "backbone activations (cached)",
) -> tuple[list, list[np.ndarray], object, np.ndarray]:
    """Cut activations and pooled features of every training pass and of validation, via the shared cache.

    The cache key leaves out the split (rows are per image content hash), so every protocol and split seed
    on the same data shares it; it keeps everything that changes an image's pixels or activations.
    """
    bottom, pooled_model = split_at(template, cuts, until=pooled_layer_name(template))
    key_parts = activation_key(cfg, weights_info, cut_name(cuts))
    if cfg.train.phase1_cache_bottom:  # rows from another graph differ in float rounding: a cache of their own
        key_parts["through_bottom_cache"] = cfg.train.phase2_blocks
    shapes = [tuple(c.shape[1:]) for c in cuts]
    cache_dir = cache_root / cache_key(key_parts)
    cache = ActivationCache(cache_dir, key_parts)
    augmenter = Augmenter(cfg.augment)
    batch = cfg.train.batch_size

    above: RowsAbove | None = None  # set once the template's weights are the cache's (below)

    def bottom_rows(images: np.ndarray, hashes: list[str], k: int):
        def augment(chunk: np.ndarray, chunk_hashes: list[str]) -> np.ndarray:
            # augmented pass: each image seeded by its content, so the row fits any split
            return augment_by_content(augmenter, chunk, chunk_hashes, cfg.train.seed, k) if k else chunk

        def compute(positions: np.ndarray) -> np.ndarray:
            chunk, chunk_hashes = images[positions], [hashes[p] for p in positions]
            if above:  # the frozen part's rows of this pass from the bottom cache, the blocks above it run here
                return above.rows(f"pass-aug{k}" if k else "clean", chunk, chunk_hashes, augment)
            # uint8 as it is: the model casts to float32 itself (see BottomRows.rows)
            return pack_rows(bottom.predict(augment(chunk, chunk_hashes), batch_size=batch, verbose=0))

        return compute

    def pooled_rows(acts):
        return lambda positions: pooled_model.predict(take_rows(acts, positions), batch_size=batch, verbose=0)

    hashes = {role: [ds.scans[k].sha256 for k in ds.indices(role)] for role in ("train", "val")}
    x_train, x_val = ds.images("train"), ds.images("val")
    passes = ["pass-clean"] + [f"pass-aug{k}" for k in range(1, cfg.train.aug_passes + 1)]
    total = len(x_train) * len(passes) + len(x_val)
    cut_train, pooled_train = [], []
    waiting = "waiting for another training that fills the same activation cache"
    with cache.exclusive(lambda: progress_factory(waiting, None)):
        init = cache_dir / "init_weights.h5"
        if init.exists():
            template.load_weights(str(init))
        else:
            tmp = cache_dir / ".init_tmp.h5"
            template.save_weights(str(tmp))
            tmp.replace(init)
        above = RowsAbove.of(template, cfg, cuts, cache_root)
        with progress_factory(label, total) as (advance, _):
            for k, name in enumerate(passes):
                rows = cache.get(name, hashes["train"], bottom_rows(x_train, hashes["train"], k), advance)
                cut_train.append(unpack_rows(rows, shapes))
            rows = cache.get("pass-clean", hashes["val"], bottom_rows(x_val, hashes["val"], 0), advance)
            cut_val = unpack_rows(rows, shapes)
        for name, acts in zip(passes, cut_train):
            pooled_train.append(cache.get(f"pooled-{name}", hashes["train"], pooled_rows(acts)))
        pooled_val = cache.get("pooled-pass-clean", hashes["val"], pooled_rows(cut_val))
    return cut_train, pooled_train, cut_val, pooled_val


def train_models(
    cfg: Config | None,
    stages: tuple[str, ...],
    out: Path,
    data: str | None = None,
    resume: bool = False,
    reporter: Reporter | None = None,
    progress_factory=None,
    cache_root: Path | None = None,
    stop_after_epochs: int | None = None,
) -> dict:
    """Train `stages` (("gate", "subtype") or ("flat",)) into run dir `out`; returns the summary dict.

    The run folder is this process's while it trains (neurocascade.hierarchy.ownership): a second training into it is
    refused. On `resume`, `cfg` None means the run's own config; a given one must equal it, and the data must
    be the data the run started on. `stop_after_epochs` interrupts after that many epochs in this call, as a
    kill would (for tests). With `train.strategy = "multi_worker"` every worker calls this with the same
    arguments and only the chief writes `out` (neurocascade.hierarchy.cluster).
    """
    out = Path(out)
    role = run_role(cfg, out, resume)
    with worker_output(out, role) as run_dir, claim_run(run_dir, resume):
        return _train_models(
            cfg,
            stages,
            run_dir,
            data,
            resume,
            reporter,
            progress_factory,
            worker_cache(cache_root or default_cache_root(), role),
            stop_after_epochs,
        )


def run_role(cfg: Config | None, out: Path, resume: bool) -> WorkerRole:
    """This process's role in training `out`: from TF_CONFIG for a multi_worker run (on resume, the run's own
    config says which), else the only worker. Only the chief's `out` is written (neurocascade.hierarchy.cluster)."""
    saved = out / "config.toml"
    if cfg is None and resume and saved.is_file():
        cfg = load_config(saved)
    if cfg is None or cfg.train.strategy != "multi_worker":
        return WorkerRole()
    role = worker_role(os.environ.get("TF_CONFIG"))
    if resume and role.count > 1:
        raise UserError(
            f"{out}: --resume of a multi_worker run is not supported (only the chief keeps checkpoints); "
            "start a new run"
        )
    return role


def _train_models(
    cfg: Config | None,
    stages: tuple[str, ...],
    out: Path,
    data: str | None,
    resume: bool,
    reporter: Reporter | None,
    progress_factory,
    cache_root: Path,
    stop_after_epochs: int | None,
) -> dict:
    """`train_models` holding the run's lock: the steps below, in order."""
    from contextlib import nullcontext

    reporter = reporter or Reporter()
    progress_factory = progress_factory or (lambda desc, total: nullcontext((lambda n=1: None, lambda t: None)))
    cfg = run_config(out, cfg, resume)
    started = time.perf_counter()
    keras.utils.set_random_seed(cfg.train.seed)
    if cfg.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = make_strategy(cfg.train.strategy)
    source, weights_info = _weights(cfg)  # first: a missing ImageNet file fails in a second, not after the data

    t0 = time.perf_counter()
    ds = load_dataset(cfg, data, pixels=True)
    seconds = {"data": round(time.perf_counter() - t0, 1)}
    if resume:
        check_resume(out, stages, ds)
    t0 = time.perf_counter()
    # Outside the strategy: the frozen part runs on each worker alone, so a worker whose activations are cached
    # never waits in a collective for one that computes them (the stage models copy its weights by value).
    # One template and cache per image size the backbones see (`model.backbone_size`), shared by its stages;
    # each carries the extras if any of its stages does.
    groups = [
        (group, replace(cfg, model=cfg.model.for_stages(group)))
        for group in cfg.model.backbone_groups(stages, cfg.data.image_size)
    ]
    templates = [_build_template(shared, source) for _, shared in groups]
    sourced = [shared.model.backbone_from != "" for _, shared in groups]
    if any(sourced):  # a fine-tuned backbone from another run, before anything is cached or recorded
        backbone, found = load_backbone_source(cfg, ds)
        for template in (t for t, s in zip(templates, sourced) if s):
            copy_backbone_from(backbone, template, f"model.backbone_from = {cfg.model.backbone_from}")
        del backbone
        taking = [name for (group, _), s in zip(groups, sourced) if s for name in group]
        weights_info["backbone_from"] = {**found, "stages": taking}
    cuts = [cut_tensors(template, shared) for template, (_, shared) in zip(templates, groups)]
    _record_start(out, cfg, ds, stages, resume)
    data_of: dict[str, StageData] = {}
    template_of: dict[str, tuple[keras.Model, tuple[str, ...]]] = {}
    for (group, shared), template, group_cuts in zip(groups, templates, cuts):
        size = shared.model.resized_size(cfg.data.image_size) or cfg.data.image_size
        label = f"backbone activations at {size} px (cached)" if len(groups) > 1 else "backbone activations (cached)"
        cut_train, pooled_train, cut_val, pooled_val = _activations(
            shared,
            ds,
            template,
            group_cuts,
            cache_weights(weights_info, shared.model),
            cache_root,
            progress_factory,
            label,
        )
        group_data = StageData(pooled_train, cut_train, pooled_val, cut_val, ds.labels("train"), ds.labels("val"))
        if cfg.train.phase2_data == "images":  # phase 2 trains on the images themselves, drawn anew each epoch
            hashes = {role: [ds.scans[k].sha256 for k in ds.indices(role)] for role in ("train", "val")}
            group_data = replace(
                group_data,
                images=ds.images("train"),
                images_val=ds.images("val"),
                hashes=hashes["train"],
                hashes_val=hashes["val"],
                bottom_cache=cache_root,
            )
        for name in group:
            data_of[name] = _stage_inputs(group_data, template, shared, cfg.model.for_stages((name,)))
            template_of[name] = (template, shared.model.extra_backbones)
    seconds["activations"] = round(time.perf_counter() - t0, 1)

    budget = EpochBudget(stop_after_epochs)
    summary: dict = {"stages": {}, "protocol": ds.split["protocol"], "protocol_name": ds.split["protocol_name"]}
    val_probs: dict[str, np.ndarray] = {}
    model_sha: dict[str, str] = {}  # what eval and export check a model file against before loading it
    for name in stages:
        summary["stages"][name], val_probs[name], model_sha[name], seconds[name] = _train_one(
            STAGES[name], cfg, source, *template_of[name], data_of[name], out, reporter, budget, strategy
        )
    if {"gate", "subtype"} <= set(stages):
        gate_temperature = summary["stages"]["gate"].get("temperature", 1.0)
        summary["cascade"] = _cascade_summary(
            cfg, ds, data_of["gate"], val_probs, gate_temperature, out, reporter, budget
        )
    np.savez_compressed(out / "val_predictions.npz", y_true=ds.labels("val"), **val_probs)
    seconds["total"] = round(time.perf_counter() - started, 1)
    _write_manifest(
        out, cfg, ds, stages, weights_info, CUT_SEPARATOR.join(map(cut_name, cuts)), model_sha, seconds, resume
    )
    summary["seconds"] = seconds
    summary["weights"] = weights_info
    written = TrainingSummary.from_json(summary, out / "summary.json")  # checked as written
    written.write(out / "summary.json")
    return written.to_json()  # what the file holds, so a caller and a later reader see the same summary


def _weights(cfg: Config) -> tuple[WeightsSource, dict]:
    """The backbone's ImageNet weights (the folders of `neurocascade.paths.weight_dirs`) and their record."""
    spec = get_backbone(cfg.model.backbone)
    source = resolve_weights(
        spec,
        cfg.model.weights,
        weight_dirs(cfg.model.weights_dir),
        cfg.model.allow_download,
        cfg.model.weights_fallback,
    )
    return source, {"kind": source.kind, "path": source.path, "md5": source.md5, "warning": source.warning}


def _record_start(out: Path, cfg: Config, ds: PreparedData, stages: tuple[str, ...], resume: bool) -> None:
    """Config, image list and start record, unless a resumed run has them.

    Only once weights, data and cut are known good: a wrong path, missing or unreadable weights or a cut the
    backbone does not have leave no half-made run directory behind. The start record says what this run is
    before its first epoch, so an interrupted run's resume is checked.
    """
    if resume and (out / RUN_RECORD).exists():
        return
    if not resume:
        atomic_write_text(out / "config.toml", to_toml(cfg))
    write_image_list(out, ds)
    run_record(cfg, ds, stages).write(out / RUN_RECORD)


def _train_one(
    stage: StageSpec,
    cfg: Config,
    source: WeightsSource,
    template: keras.Model,
    template_extras: tuple[str, ...],
    data: StageData,
    out: Path,
    reporter: Reporter,
    budget: EpochBudget,
    strategy: tf.distribute.Strategy,
) -> tuple[dict, np.ndarray, str, float]:
    """Train one stage and save it: (its summary entry, validation probabilities, model sha256, seconds)."""
    cfg = replace(cfg, model=cfg.model.for_stages((stage.name,)))
    if cfg.model.backbone_from and stage.name not in cfg.model.backbone_from_finetune:
        cfg = replace(cfg, train=replace(cfg.train, phase2_epochs=0))  # the source run fine-tuned it: a head alone
    with strategy.scope():
        model = build_classifier(cfg.model, len(stage.classes), cfg.data.image_size, source, replicated(strategy))
    _copy_backbone(template, model, tuple(x for x in template_extras if x not in cfg.model.extra_backbones))
    directory = out / "stages" / stage.name
    top, phases = train_stage(stage, model, cut_tensors(model, cfg), data, cfg, directory, reporter, budget, strategy)
    _write_history(directory, stage.name, phases)

    def validation_probabilities() -> np.ndarray:
        """What the model outputs on validation: from the cached cut, unless phase 2 moved the frozen part (a
        cascade's heads on another run's fine-tuned backbone have no phase 2: four backbone passes saved)."""
        if cfg.train.phase2_data == "images" and cfg.train.fine_tunes_backbone:
            return predict_batches(model, data.images_val, cfg.train.batch_size)
        return top.predict(as_float32(data.cut_val), batch_size=cfg.train.batch_size, verbose=0)

    probs = validation_probabilities()
    mask, y = stage.select(data.y4_val)
    scaled = {}
    if cfg.train.temperature_scaling:
        temperature = fit_temperature(probs[mask], y)
        scaled["temperature"] = temperature or 1.0  # no interior optimum: left as trained (T = 1)
        if temperature:
            scale_output_logits(model, temperature)
            # `top` shares the model's layers: predicting again gives what the saved model outputs
            probs = validation_probabilities()
    path = out / "models" / f"{stage.name}.keras"
    _save_model(model, path)
    weights = class_weights(stage.select(data.y4)[1], len(stage.classes), cfg.train.class_weight)
    entry = {
        "classes": list(stage.classes),
        "class_weights": {c: round(weights[k], 4) for k, c in enumerate(stage.classes)},
        "val_macro_f1": macro_f1_of_probs(y, probs[mask], len(stage.classes)),
        **{k: {kk: vv for kk, vv in v.items() if kk != "history"} for k, v in phases.items()},
        **scaled,
    }
    return entry, probs, sha256_file(path), round(sum(v["seconds"] for v in phases.values()), 1)


def _cascade_summary(
    cfg: Config,
    ds: PreparedData,
    data: StageData,
    val_probs: dict[str, np.ndarray],
    gate_temperature: float,
    out: Path,
    reporter: Reporter,
    budget: EpochBudget,
) -> dict:
    """τ chosen and written to tau.json; the cascade's validation scores at it."""
    p_val = val_probs["gate"][:, 0]
    tau, chosen_on = _choose_gate_tau(cfg, ds, data, p_val, gate_temperature, out, reporter, budget)
    cascade = _cascade_on_validation(p_val, val_probs["subtype"], data.y4_val, tau)
    cascade["tau_chosen_on"] = chosen_on
    Tau(tau, cfg.train.target_sensitivity, chosen_on).write(out / "tau.json")
    return cascade


def _write_manifest(
    out: Path,
    cfg: Config,
    ds: PreparedData,
    stages: tuple[str, ...],
    weights_info: dict,
    cut: str,
    model_sha: dict[str, str],
    seconds: dict,
    resume: bool,
) -> None:
    """manifest.json, written last: its presence means the run finished."""
    RunManifest(
        stages=tuple(stages),
        dataset={
            **dataset_record(ds),
            "protocol": ds.split["protocol"],
            "protocol_name": ds.split["protocol_name"],
            "counts": ds.split["counts"],
            "dropped_as_copies_of_test": ds.split.get("dropped_as_copies_of_test"),
            "skipped_unreadable": len(ds.skipped),
        },
        seed=cfg.train.seed,
        weights=weights_info,
        cut=cut,
        models=model_sha,
        packages=package_versions(),
        seconds=seconds,
        resumed=resume,
    ).write(out / "manifest.json")


def _build_template(cfg: Config, source) -> keras.Model:
    """The classifier every stage copies its backbone from; a weights file Keras cannot read is a one-line error
    (it is the user's file: h5py and Keras would raise with a traceback)."""
    try:
        return build_classifier(cfg.model, len(CLASSES), cfg.data.image_size, source)
    except (OSError, ValueError) as exc:
        if source.kind != "file":
            raise
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{source.path}: not usable as {cfg.model.backbone} weights ({reason})") from None


def _copy_backbone(template: keras.Model, model: keras.Model, dropped_extras: tuple[str, ...] = ()) -> None:
    """Give a stage model the template's backbone weights, so the cached activations are its own. A stage built
    without some of the template's extra backbones (`dropped_extras`, `model.extra_backbone_stages`) skips theirs."""
    if not copy_backbone(template, model, tuple(f"{name}_" for name in dropped_extras)):
        raise RuntimeError(f"{model.name}: its backbone does not match the template's layer for layer")


def _choose_gate_tau(
    cfg: Config,
    ds: PreparedData,
    data: StageData,
    p_val: np.ndarray,
    temperature: float,
    out: Path,
    reporter: Reporter,
    budget: EpochBudget,
) -> tuple[float, str]:
    """τ for the target sensitivity: on out-of-fold training scores with `train.tau_folds`, else on validation.

    The fold heads are not temperature-scaled; their scores are moved by the final gate's temperature (a monotone
    map), so τ calls exactly the images it would have called without scaling.
    """
    target, k, confidence = cfg.train.target_sensitivity, cfg.train.tau_folds, cfg.train.tau_confidence
    bound = f", {confidence:.0%} lower confidence bound of the sensitivity" if confidence else ""
    if not k:
        return choose_tau(p_val, data.y4_val != NO_TUMOUR, target, confidence), f"validation{bound}"
    folds = group_folds(data.y4, ds.groups[ds.indices("train")], k, cfg.data.split_seed)
    scores = out_of_fold_scores(STAGES["gate"], data, folds, cfg, out / "stages" / "gate-tau", reporter, budget)
    scaled = f", at the gate's temperature {temperature:.4g}" if temperature != 1.0 else ""
    if scaled:
        scores = apply_temperature(scores, temperature, binary=True)
    return (
        choose_tau(scores, data.y4 != NO_TUMOUR, target, confidence),
        f"out-of-fold gate scores of the training part ({k} grouped folds){bound}{scaled}",
    )


def _cascade_on_validation(p_tumour: np.ndarray, q: np.ndarray, y4: np.ndarray, tau: float) -> dict:
    """The cascade's four-class validation scores at τ, and the tumour sensitivity τ reaches there."""
    is_tumour = y4 != NO_TUMOUR
    hard = hard_predictions(p_tumour, q, tau)
    called = tumour_called(p_tumour, tau)
    return {
        "tau": tau,
        "val_macro_f1": macro_f1_score(y4, hard, len(CLASSES)),
        "val_soft_macro_f1": macro_f1_of_probs(y4, soft_probabilities(p_tumour, q), len(CLASSES)),
        "val_tumour_sensitivity": float(called[is_tumour].mean()) if is_tumour.any() else None,  # undefined
        "val_tumour_specificity": float((~called[~is_tumour]).mean()) if (~is_tumour).any() else None,
    }
