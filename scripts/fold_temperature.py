#!/usr/bin/env python
"""A finished run as `train.temperature_scaling` would have left it: a copy with each model's temperature folded in.

For measuring what the scaling does downstream (the INT8 export, evaluation) on a run trained without it, without
training again: the copy's models get the temperature fitted on the run's own validation predictions
(`fit_temperature`, as training does), its manifest the new model hashes, `val_predictions.npz` the scaled
probabilities and `tau.json` the τ moved onto the scaled gate (the same calls). The copy leaves out `export/` and
`eval/`. Then, e.g.: `python cli.py export --run COPY --set export.qat=false`.

    python scripts/fold_temperature.py runs/results/C-seed0/cascade /tmp/ts/C0/cascade
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def fold(run: Path, copy: Path) -> dict[str, float]:
    from neurocascade.hierarchy.stages import STAGES
    from neurocascade.hierarchy.temperature import apply_temperature, fit_temperature
    from neurocascade.io import sha256_file
    from neurocascade.models.head import scale_output_logits
    from neurocascade.tf import keras

    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("export", "eval"))
    preds = dict(np.load(copy / "val_predictions.npz"))
    manifest = json.loads((copy / "manifest.json").read_text())
    temperatures = {}
    for stage in manifest["models"]:
        mask, y = STAGES[stage].select(preds["y_true"])
        temperatures[stage] = t = fit_temperature(preds[stage][mask], y) or 1.0
        path = copy / "models" / f"{stage}.keras"
        model = keras.models.load_model(str(path), compile=False)
        scale_output_logits(model, t)
        model.save(str(path))
        manifest["models"][stage] = sha256_file(path)
        preds[stage] = apply_temperature(preds[stage], t).astype(np.float32)
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    np.savez_compressed(copy / "val_predictions.npz", **preds)
    if (copy / "tau.json").exists():
        tau = json.loads((copy / "tau.json").read_text())
        tau["tau"] = float(apply_temperature(tau["tau"], temperatures["gate"], binary=True))
        (copy / "tau.json").write_text(json.dumps(tau, indent=2))
    return temperatures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("copy", type=Path)
    args = parser.parse_args()
    print(args.copy, json.dumps(fold(args.run, args.copy)), flush=True)


if __name__ == "__main__":
    main()
