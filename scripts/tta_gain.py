#!/usr/bin/env python
"""What test-time flip would do to finished runs, on validation only (issue 13, lever 4).

Each image's probabilities averaged with its mirror image's (left-right; training already flips at random,
`augment.hflip`). For each protocol folder (holding `cascade/` and `flat/`, as `make results` writes them) the Keras
models run on the validation images and on their mirror images; the flat model is scored by arg-max, the cascade at
a τ chosen on the same validation scores as training chooses it (`train.target_sensitivity`, `train.tau_confidence`),
with and without the flip, so both sides select τ alike. The unflipped side is checked against the run's own
validation predictions and τ. Test is not read.

    python scripts/tta_gain.py runs/results/C-seed0 [...] --data ../shared/data/sartaj-brain-mri
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _probs(run: Path, x: np.ndarray, batch_size: int) -> dict[str, dict[str, np.ndarray]]:
    """Each model of `run`: its validation probabilities without and with the flip, and seconds per pass."""
    from neurocascade.hierarchy.artifacts import RunManifest
    from neurocascade.hierarchy.engine import predict_batches
    from neurocascade.keras_io import load_keras_model

    manifest = RunManifest.read(run / "manifest.json")
    out = {}
    for stage in manifest.stages:
        model = load_keras_model(run / "models" / f"{stage}.keras", manifest.model_sha256(stage))
        t0 = time.perf_counter()
        plain = predict_batches(model, x, batch_size)
        seconds = time.perf_counter() - t0
        mirrored = predict_batches(model, x[:, :, ::-1], batch_size)
        out[stage] = {"plain": plain, "flip": (plain + mirrored) / 2, "seconds": seconds}
    return out


def gain(protocol: Path, data: str) -> dict:
    from neurocascade.config import load_config
    from neurocascade.data.dataset import load_dataset
    from neurocascade.eval.scores import macro_f1_score, tumour_sensitivity, tumour_specificity
    from neurocascade.hierarchy.artifacts import Tau
    from neurocascade.hierarchy.cascade import choose_tau, hard_predictions
    from neurocascade.hierarchy.stages import NO_TUMOUR

    cfg = load_config(protocol / "cascade" / "config.toml")
    ds = load_dataset(cfg, data, pixels=True)
    x, y4 = ds.images("val"), ds.labels("val")
    bs = cfg.train.batch_size
    probs = {**_probs(protocol / "cascade", x, bs), **_probs(protocol / "flat", x, bs)}
    saved = {
        **np.load(protocol / "cascade" / "val_predictions.npz"),
        **np.load(protocol / "flat" / "val_predictions.npz"),
    }
    tumour = y4 != NO_TUMOUR
    result: dict = {"n_val": int(len(y4))}
    for side in ("plain", "flip"):
        p, q = probs["gate"][side][:, 0], probs["subtype"][side]
        tau = choose_tau(p, tumour, cfg.train.target_sensitivity, cfg.train.tau_confidence)
        labels = hard_predictions(p, q, tau)
        result[side] = {
            "flat": round(macro_f1_score(y4, probs["flat"][side].argmax(1), 4), 4),
            "cascade": round(macro_f1_score(y4, labels, 4), 4),
            "tau": round(tau, 4),
            "sensitivity": round(tumour_sensitivity(y4, None, labels), 4),
            "specificity": round(tumour_specificity(y4, None, labels), 4),
        }
    result["plain_matches_run"] = {
        "probs_max_abs_diff": round(
            max(float(np.abs(probs[s]["plain"] - saved[s]).max()) for s in ("gate", "subtype", "flat")), 6
        ),
        "run_tau": round(Tau.read(protocol / "cascade" / "tau.json").tau, 4),
    }
    result["seconds_per_pass"] = {s: round(v["seconds"], 1) for s, v in probs.items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocols", nargs="+", type=Path)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    for protocol in args.protocols:
        print(protocol, json.dumps(gain(protocol, args.data)), flush=True)


if __name__ == "__main__":
    main()
