"""`model.backbone_from`: the stages' backbone taken from another finished run's fine-tuned model.

Fine-tuning the whole network on fresh augmentation is what lifts the models (issue 13), and it costs minutes per
epoch per model on this CPU. A cascade whose gate and subtype start from the backbone the flat model fine-tuned on
the same training images needs one such fine-tuning per protocol instead of three: its heads then train on the
cached activations of that backbone. The source must be a finished run on the same data and split — its backbone
has seen this run's training images and nothing else — and its backbone layers must be this run's, one for one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from neurocascade.config import Config, ModelConfig, load_config
from neurocascade.errors import UserError
from neurocascade.hierarchy.artifacts import RunManifest
from neurocascade.hierarchy.ownership import data_difference
from neurocascade.models.surgery import copy_backbone
from neurocascade.tf import keras


def load_backbone_source(cfg: Config, ds) -> tuple[keras.Model, dict]:
    """The model named by `model.backbone_from` (a finished one-model run on `ds`'s data and split) and its
    record for the manifest and the activation cache key: run, stage, sha256."""
    from neurocascade.keras_io import load_keras_model

    run = Path(cfg.model.backbone_from)
    key = f"model.backbone_from = {cfg.model.backbone_from}"
    for name in ("config.toml", "manifest.json"):
        if not (run / name).is_file():
            raise UserError(f"{key}: not a finished training run (no {name})")
    manifest = RunManifest.read(run / "manifest.json")
    if len(manifest.stages) != 1:
        raise UserError(f"{key}: the run trained {', '.join(manifest.stages)}; name a run of one model (train-flat)")
    if load_config(run / "config.toml").model.backbone_from:
        raise UserError(f"{key}: that run's backbone came from another run itself; name the run that fine-tuned it")
    if diff := data_difference(run, manifest.dataset, ds):
        raise UserError(
            f"{key}: that run was trained {diff}; its backbone must have seen this run's training images only"
        )
    (stage,) = manifest.stages
    sha256 = manifest.model_sha256(stage)
    if sha256 is None:
        raise UserError(f"{key}: the run records no model hash (made before runs did); retrain it")
    model = load_keras_model(run / "models" / f"{stage}.keras", sha256)
    return model, {"run": str(run), "stage": stage, "sha256": sha256}


def copy_backbone_from(source: keras.Model, target: keras.Model, where: str) -> None:
    """Give `target` the backbone weights of `source`; a model built otherwise (another backbone or extra
    backbones; the head and its taps may differ) is a one-line error, not a silent mismatch."""
    if not copy_backbone(source, target):
        raise UserError(
            f"{where}: its model is built otherwise than this run's (another backbone or extra backbones); "
            "train the source with the same model settings"
        )


def cache_weights(weights: Mapping, model: ModelConfig) -> dict:
    """The weights record a group's activation cache is keyed by: the run's `weights`, with the source run's backbone
    only for a group that takes it (`model`: the group's config), by its model's hash, not by where that run is
    (a relative and an absolute path to it are one cache) nor which stages share it."""
    out = {k: v for k, v in weights.items() if k != "backbone_from"}
    if model.backbone_from:
        out["backbone_from"] = {k: v for k, v in weights["backbone_from"].items() if k not in ("stages", "run")}
    return out
