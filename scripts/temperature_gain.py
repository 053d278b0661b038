#!/usr/bin/env python
"""What `train.temperature_scaling` does to finished runs' calibration, on validation only (issue 13).

For each protocol folder (holding `cascade/` and `flat/`, as `make results` writes them) it splits the validation
images in two at random, fits each model's temperature on one half (`fit_temperature`, as training does on the
whole of validation) and measures the top-label ECE (10 bins) on the other half, before and after; 20 splits,
means. The cascade is scored on its soft four-class probabilities, from the scaled gate and subtype model.
Decisions do not move (arg-max and the gate threshold are invariant), so only calibration is reported.

    python scripts/temperature_gain.py runs/results/C-seed0 runs/results/B [...] [--splits 20]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def gain(protocol: Path, splits: int) -> dict:
    from neurocascade.eval.calibration import expected_calibration_error
    from neurocascade.hierarchy.cascade import soft_probabilities
    from neurocascade.hierarchy.stages import STAGES
    from neurocascade.hierarchy.temperature import apply_temperature, fit_temperature

    preds = {
        **np.load(protocol / "cascade" / "val_predictions.npz"),
        **np.load(protocol / "flat" / "val_predictions.npz"),
    }
    y4 = preds["y_true"]
    rng = np.random.default_rng(0)
    ece = {name: [] for name in ("gate", "subtype", "flat", "cascade")}
    temperatures = {name: [] for name in ("gate", "subtype", "flat")}

    def measured(y: np.ndarray, p: np.ndarray) -> float:
        return expected_calibration_error(y, p, 10)["ece"]

    for _ in range(splits):
        fit_half = rng.random(len(y4)) < 0.5
        scaled = {}
        for name in temperatures:
            mask, y = STAGES[name].select(y4)
            t = fit_temperature(preds[name][mask & fit_half], y[fit_half[mask]]) or 1.0
            temperatures[name].append(t)
            scaled[name] = apply_temperature(preds[name], t)
            held = mask & ~fit_half
            ece[name].append(
                (measured(y[~fit_half[mask]], preds[name][held]), measured(y[~fit_half[mask]], scaled[name][held]))
            )
        held = ~fit_half
        before = soft_probabilities(preds["gate"][held, 0], preds["subtype"][held])
        after = soft_probabilities(scaled["gate"][held, 0], scaled["subtype"][held])
        ece["cascade"].append((measured(y4[held], before), measured(y4[held], after)))
    return {
        "ece_before_after": {
            k: [round(float(np.mean([v[i] for v in vs])), 3) for i in (0, 1)] for k, vs in ece.items()
        },
        "temperature_median": {k: round(float(np.median(v)), 2) for k, v in temperatures.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocols", nargs="+", type=Path)
    parser.add_argument("--splits", type=int, default=20)
    args = parser.parse_args()
    for protocol in args.protocols:
        print(protocol, json.dumps(gain(protocol, args.splits)), flush=True)


if __name__ == "__main__":
    main()
