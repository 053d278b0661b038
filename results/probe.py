"""What the multi-scale head buys, on validation only: phase-1 heads on the last map's features vs all taps.

A finished multi-scale run's cached pooled features hold the single-scale ones too (the head concatenates the
taps shallow first and the pooled last map last), so both variants train on the very same cached rows, split
and recipe — the stage's own phase 1 (`hierarchy.train.run_phase`) — at the cost of a few head trainings.

    python -m results.probe runs/results/C-seed0/cascade [--data DIR]    # prints and writes probe.json
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from data.dataset import load_dataset
from models.build import build_classifier
from models.weights import WeightsSource
from hierarchy.features import ActivationCache, activation_key, cache_key
from hierarchy.stages import STAGES
from hierarchy.train import EpochBudget, Reporter, build_stage_head, run_phase
from neurocascade.config import load_config
from neurocascade.io import write_json
from neurocascade.tf import keras

DEFAULT_CACHE = Path("runs/.cache")


def pooled_features(run: Path, data: str | None, cache_root: Path) -> tuple[list[np.ndarray], np.ndarray, np.ndarray,
                                                                              np.ndarray, int]:
    """(pooled rows per training pass, validation rows, train labels, val labels, last map width) of `run`."""
    cfg = load_config(run / "config.toml")
    manifest = json.loads((run / "manifest.json").read_text())
    ds = load_dataset(cfg, data or manifest["dataset"]["root"], pixels=False)
    cache = ActivationCache(cache_root / cache_key(activation_key(cfg, manifest["weights"], manifest["cut"])))
    hashes = {role: [ds.scans[k].sha256 for k in ds.indices(role)] for role in ("train", "val")}

    def rows(name: str, role: str) -> np.ndarray:
        missing = [h for h in hashes[role] if not cache.path(name, h).exists()]
        if missing:
            raise SystemExit(f"{run}: {len(missing)} cached rows of {name} missing; train the run first")
        return cache.get(name, hashes[role], compute=lambda positions: None)

    passes = ["pooled-pass-clean"] + [f"pooled-pass-aug{k}" for k in range(1, cfg.train.aug_passes + 1)]
    template = build_classifier(cfg.model, 2, cfg.data.image_size, WeightsSource("none"))
    last = template.get_layer("head_gap").output_shape[-1]
    return [rows(p, "train") for p in passes], rows("pooled-pass-clean", "val"), ds.labels("train"), \
        ds.labels("val"), last


def probe(run: Path, data: str | None = None, cache_root: Path = DEFAULT_CACHE) -> dict:
    """Best phase-1 validation macro-F1 per stage with the last map's features and with every tap."""
    cfg = load_config(run / "config.toml")
    train, val, y4, y4_val, last = pooled_features(run, data, cache_root)
    variants = {"last map": slice(train[0].shape[1] - last, None), "multi-scale": slice(None)}
    out: dict = {"run": str(run), "features": {name: len(range(train[0].shape[1])[cols])
                                               for name, cols in variants.items()}, "val_macro_f1": {}}
    for stage_name in ("gate", "subtype", "flat"):
        stage = STAGES[stage_name]
        mask, y = stage.select(y4)
        val_mask, y_val = stage.select(y4_val)
        for name, cols in variants.items():
            x = [p[mask][:, cols] for p in train]
            head = build_stage_head(stage.name, x[0].shape[1], len(stage.classes), cfg)
            with tempfile.TemporaryDirectory() as tmp:
                state = run_phase("phase1", stage, head, keras.optimizers.Adam(cfg.train.phase1_lr),
                                  cfg.train.phase1_epochs, cfg.train.patience, Path(tmp), x, y,
                                  val[val_mask][:, cols], y_val, cfg, Reporter(), EpochBudget(None), baseline=False)
            out["val_macro_f1"].setdefault(stage_name, {})[name] = round(state.best_score, 4)
            print(f"{run.name} {stage_name:8s} {name:12s} val macro-F1 {state.best_score:.4f}", flush=True)
    write_json(run / "probe.json", out)
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    data = args[args.index("--data") + 1] if "--data" in args else None
    probe(Path(args[0]), data)
