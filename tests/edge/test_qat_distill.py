"""QAT against the float model's own predictions (`export.qat_target = "float"`, distillation) vs the labels.

Run on the tiny test backbone (conftest.py); one end-to-end export of the tiny cascade checks what the sidecar
and the checkpoint key record.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from neurocascade.config import load_config
from neurocascade.edge.export import export_run, qat_key
from neurocascade.edge.outputs import output_model
from neurocascade.edge.qat import run_qat, teacher_probabilities
from neurocascade.errors import ConfigError

SETTINGS = ["export.qat_epochs=2", "export.qat_warmup_batches=2", "train.batch_size=8"]
SHA = "0" * 64
OLD_RECORD_KEYS = {"epoch", "loss", "val_macro_f1", "best", "seconds"}  # an epoch's record before qat_target


def _data():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8), rng.integers(0, 3, 16)
    xv, yv = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), rng.integers(0, 3, 8)
    return x, y, xv, yv


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.argmax(a, 1) == np.argmax(b, 1)))


def test_labels_stay_the_default_with_the_same_records_and_checkpoint_key(tmp_path, test_config_path):
    cfg = load_config(test_config_path, SETTINGS)
    assert cfg.export.qat_target == "labels"
    # the default's key is the key of checkpoints written before the setting existed; "float" discards them
    explicit = qat_key(load_config(test_config_path, [*SETTINGS, 'export.qat_target="labels"']), SHA)
    assert qat_key(cfg, SHA) == explicit and "qat_target" not in explicit["export"]
    distill = qat_key(load_config(test_config_path, [*SETTINGS, 'export.qat_target="float"']), SHA)
    assert distill != explicit and distill["export"]["qat_target"] == "float"


def test_labels_mode_records_as_before(tmp_path, test_config_path, make_tiny_classifier):
    cfg = load_config(test_config_path, SETTINGS)
    x, y, xv, yv = _data()
    _, summary = run_qat(make_tiny_classifier(), x, y, xv, yv, cfg, tmp_path / "qat", {0: 1.0, 1: 2.0, 2: 0.5})
    assert summary["target"] == "labels" and "best_val_agreement" not in summary and "seconds_teacher" not in summary
    assert summary["history"][0].keys() == OLD_RECORD_KEYS | {"warmup_batches"}
    assert all(r.keys() == OLD_RECORD_KEYS for r in summary["history"][1:])
    assert summary["best_val_macro_f1"] == max(r["val_macro_f1"] for r in summary["history"])


@pytest.mark.parametrize("output", ["probabilities", "logits"])
def test_float_target_distills_and_keeps_the_most_faithful_epoch(
    tmp_path, test_config_path, make_tiny_classifier, output
):
    cfg = load_config(test_config_path, [*SETTINGS, 'export.qat_target="float"', "export.qat_lr=1e-3"])
    x, y, xv, yv = _data()
    model = output_model(make_tiny_classifier(), output)
    logits = output == "logits"
    original = [w.copy() for w in model.get_weights()]
    reference = model(xv.astype(np.float32), training=False).numpy()
    qat_model, summary = run_qat(model, x, y, xv, yv, cfg, tmp_path / "a", {0: 1.0, 1: 1.0, 2: 1.0}, from_logits=logits)
    history = summary["history"]
    assert summary["target"] == "float" and summary["epochs"] == 2 and [r["epoch"] for r in history] == [0, 1, 2]
    assert all(0.0 <= r["val_agreement"] <= 1.0 and 0.0 <= r["val_macro_f1"] <= 1.0 for r in history)
    best = history[summary["best_epoch"]]
    assert best["best"] and summary["best_val_agreement"] == best["val_agreement"]
    assert best["val_agreement"] == max(r["val_agreement"] for r in history)  # the warm-up is the baseline to beat
    assert summary["best_val_macro_f1"] == best["val_macro_f1"]
    # the kept model is the best epoch's, scored against the float model in inference mode
    assert _agreement(reference, qat_model(xv.astype(np.float32), training=False).numpy()) == best["val_agreement"]
    assert all(np.array_equal(a, b) for a, b in zip(original, model.get_weights()))  # the teacher is untouched
    # no class weights: any weights give the same training
    _, other = run_qat(model, x, y, xv, yv, cfg, tmp_path / "b", {0: 50.0, 1: 0.0, 2: 0.1}, from_logits=logits)
    np.testing.assert_allclose(
        [r["loss"] or 0.0 for r in other["history"]], [r["loss"] or 0.0 for r in history], rtol=1e-5
    )


def test_teacher_targets_are_the_float_softmax_with_or_without_logits(make_tiny_classifier):
    model = make_tiny_classifier()
    x = np.random.default_rng(1).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    probs = teacher_probabilities(model, x, 4, from_logits=False)
    from_logits = teacher_probabilities(output_model(model, "logits"), x, 4, from_logits=True)
    assert probs.dtype == np.float32 and probs.shape == (10, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(from_logits, probs, atol=1e-5)


def test_a_bad_target_is_a_one_line_config_error(test_config_path):
    with pytest.raises(ConfigError) as err:
        load_config(test_config_path, ['export.qat_target="soft"'])
    assert "export.qat_target: 'soft', expected one of labels, float" in str(err.value)
    assert "\n" not in str(err.value)


def test_float_target_export_records_the_target(trained_runs, tmp_path):
    """The flat run (one model: half the cost of the cascade) exported with QAT on the float model."""
    run = tmp_path / "flat"
    shutil.copytree(trained_runs["flat"], run, ignore=shutil.ignore_patterns("export*", "quant-debug"))
    lines: list[str] = []
    report = export_run(run, progress=lines.append, overrides=['export.qat_target="float"'])
    assert report["method"] == "qat"
    qat = json.loads((run / "export" / "flat.json").read_text())["qat"]
    assert qat["target"] == "float" and 0.0 <= qat["best_val_agreement"] <= 1.0
    assert json.loads(Path(run / "stages" / "flat" / "qat" / "key.json").read_text())["export"]["qat_target"] == "float"
    assert any("target float" in line for line in lines) and any("val agreement" in line for line in lines)
