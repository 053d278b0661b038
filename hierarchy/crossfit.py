"""A gate threshold that holds: τ from out-of-fold gate scores over the whole training part.

One validation fold of ~400 images holds ~300 tumours, so the τ reaching 0.97 sensitivity on it rests on
its ~9 lowest-scoring tumours and delivered 0.94–0.97 on test (docs/RESULTS.md). Cross-fitting scores every
training image with a gate head that did not see it: k heads, each trained (phase 1, the stage's own recipe
on the cached pooled features) on k − 1 grouped folds, each scoring the fold it left out. τ is chosen on those
out-of-fold scores — several times as many tumours, none of them validation images — and the validation
split stays free to check it: the sensitivity the final gate reaches there at that τ is reported beside it.

    scores = out_of_fold_scores(STAGES["gate"], data, folds, cfg, run / "stages" / "gate-tau", reporter, budget)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurocascade.hierarchy.stages import StageSpec
from neurocascade.hierarchy.engine import EpochBudget
from neurocascade.hierarchy.train import Reporter, StageData, build_stage_head, run_phase
from neurocascade.config import Config
from neurocascade.tf import keras


def out_of_fold_scores(
    stage: StageSpec,
    data: StageData,
    folds: np.ndarray,
    cfg: Config,
    directory: Path,
    reporter: Reporter,
    budget: EpochBudget,
) -> np.ndarray:
    """P(positive class 0) of `stage` for every training image of the stage, from the head that left its fold out.

    `folds` gives each training image (all of `data.y4`'s rows) its fold. Early stopping uses the validation
    split, as the final model's phase 1 does; the returned scores are in the order of the stage's rows.
    """
    mask, y = stage.select(data.y4)
    val_mask, y_val = stage.select(data.y4_val)
    fold = folds[mask]
    pooled = [p[mask] for p in data.pooled]
    scores = np.full(len(y), np.nan)
    for k in np.unique(fold):
        fit = fold != k
        head = build_stage_head(stage.name, pooled[0].shape[1], len(stage.classes), cfg)
        run_phase(
            f"tau-fold{k}",
            stage,
            head,
            keras.optimizers.Adam(cfg.train.phase1_lr),
            cfg.train.phase1_epochs,
            cfg.train.patience,
            directory / f"fold{k}",
            [p[fit] for p in pooled],
            y[fit],
            data.pooled_val[val_mask],
            y_val,
            cfg,
            reporter,
            budget,
            baseline=False,
        )
        scores[~fit] = head.predict(pooled[0][~fit].astype(np.float32), verbose=0)[:, 0]
    return scores
