"""Phase 2's fine-tuning recipe: warm-up + cosine schedule, AdamW weight decay, label smoothing (issue 13)."""

from __future__ import annotations

import pytest

from neurocascade.hierarchy.train import phase2_learning_rate, phase2_optimizer
from neurocascade.config import load_config
from neurocascade.errors import ConfigError

from interrupted import flat_run_whole_and_resumed

RECIPE = (
    "train.phase2_schedule=cosine",
    "train.phase2_warmup_epochs=1",
    "train.phase2_weight_decay=0.05",
    "train.label_smoothing=0.1",
    "train.phase2_lr=1e-3",
)


def _lr(cfg, step: int) -> float:
    rate = phase2_learning_rate(cfg, steps_per_epoch=10)
    return float(rate(step)) if callable(rate) else float(rate)


def test_warm_up_then_cosine_over_the_phase(test_config_path):
    cfg = load_config(test_config_path, RECIPE + ("train.phase2_epochs=4",))
    opt = phase2_optimizer(cfg, steps_per_epoch=10)
    assert type(opt).__name__ == "AdamW" and float(opt.weight_decay) == pytest.approx(0.05)
    assert _lr(cfg, 0) == 0.0
    assert _lr(cfg, 5) == pytest.approx(5e-4)  # half-way up the one-epoch warm-up
    assert _lr(cfg, 10) == pytest.approx(1e-3)  # the peak, where the cosine starts
    assert _lr(cfg, 25) == pytest.approx(5e-4)  # half-way down the remaining three epochs
    assert _lr(cfg, 40) == pytest.approx(0.0, abs=1e-9)


def test_defaults_keep_the_constant_adam_of_before(test_config_path):
    cfg = load_config(test_config_path)
    opt = phase2_optimizer(cfg, steps_per_epoch=10)
    assert type(opt).__name__ == "Adam" and _lr(cfg, 0) == _lr(cfg, 1000) == pytest.approx(cfg.train.phase2_lr)


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.label_smoothing=0.5", "label_smoothing"),
        ("train.label_smoothing=nan", "label_smoothing"),
        ("train.phase2_weight_decay=-0.1", "phase2_weight_decay"),
        ("train.phase2_warmup_epochs=1", "phase2_warmup_epochs"),
    ],
)
def test_bad_recipe_values_are_refused(test_config_path, override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(test_config_path, (override,))


def test_recipe_run_resumed_mid_phase_2_equals_the_uninterrupted_one(test_config_path, tiny_runs, tmp_path):
    """The schedule counts optimizer steps, which the phase checkpoint keeps: a resumed phase 2 stays on the
    same curve, with the same weight decay and smoothed targets, and ends where the uninterrupted one does."""
    full, resumed, full_losses, resumed_losses = flat_run_whole_and_resumed(
        load_config(test_config_path, RECIPE), tiny_runs, tmp_path
    )
    assert full_losses == resumed_losses
    assert resumed["stages"]["flat"]["val_macro_f1"] == full["stages"]["flat"]["val_macro_f1"]
