#!/usr/bin/env python
"""What `train.tau_confidence` does to a finished cascade run's gate, on validation only (issue 13 item 5).

Rebuilds the out-of-fold gate scores from the run's saved fold heads (stages/gate-tau/fold*) and cached pooled rows,
checks that the point rule gives back the τ the run chose when it ran without a margin, then reports the validation
tumour sensitivity and specificity of the run's final gate at the point-rule τ and at the margin's τ.

    python scripts/tau_margin.py runs/results/C-seed0/cascade [...] [--data DIR] [--confidence 0.95]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def _rates(p: np.ndarray, tumour: np.ndarray, tau: float) -> tuple[float, float]:
    return round(float(np.mean(p[tumour] >= tau)), 4), round(float(np.mean(p[~tumour] < tau)), 4)


def margin(run: Path, data: str | None, confidence: float) -> dict:
    from neurocascade.config import load_config
    from neurocascade.data.dataset import load_dataset
    from neurocascade.data.split import group_folds
    from neurocascade.hierarchy.artifacts import Tau
    from neurocascade.hierarchy.cascade import choose_tau
    from neurocascade.hierarchy.stages import NO_TUMOUR
    from neurocascade.hierarchy.temperature import apply_temperature
    from neurocascade.hierarchy.train import build_stage_head
    from neurocascade.paths import cache_root
    from neurocascade.results.probe import pooled_features

    cfg = load_config(run / "config.toml")
    rows, y, y_val = pooled_features(run, data, cache_root())
    ds = load_dataset(cfg, data or cfg.data.root, pixels=False)
    folds = group_folds(y, ds.groups[ds.indices("train")], cfg.train.tau_folds, cfg.data.split_seed)
    x = rows["gate"].train[0].astype(np.float32)  # the clean pass, as the cross-fit scored it
    scores = np.full(len(y), np.nan)
    for k in np.unique(folds):
        head = build_stage_head("gate", x.shape[1], 2, cfg)
        head.load_weights(str(run / "stages" / "gate-tau" / f"fold{k}" / "best_weights.h5"))
        scores[folds == k] = head.predict(x[folds == k], verbose=0)[:, 0]
    temperature = json.loads((run / "summary.json").read_text())["stages"]["gate"].get("temperature", 1.0)
    if temperature != 1.0:  # train.temperature_scaling: τ is chosen on the fold scores moved onto the scaled gate
        scores = apply_temperature(scores, temperature, binary=True)
    tumour, target = y != NO_TUMOUR, cfg.train.target_sensitivity
    point, bounded = choose_tau(scores, tumour, target), choose_tau(scores, tumour, target, confidence)
    p_val, tumour_val = np.load(run / "val_predictions.npz")["gate"][:, 0], y_val != NO_TUMOUR
    return {
        "run_tau": Tau.read(run / "tau.json").tau,
        "point_tau": point,
        "margin_tau": bounded,
        "out_of_fold_sensitivity_at_margin_tau": round(float(np.mean(scores[tumour] >= bounded)), 4),
        "validation_sensitivity_specificity_point": _rates(p_val, tumour_val, point),
        "validation_sensitivity_specificity_margin": _rates(p_val, tumour_val, bounded),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data")
    parser.add_argument("--confidence", type=float, default=0.95)
    args = parser.parse_args()
    for run in args.runs:
        print(run, json.dumps(margin(run, args.data, args.confidence)), flush=True)


if __name__ == "__main__":
    main()
