"""`model.backbone_from`: a cascade whose gate and subtype start from the backbone a flat run fine-tuned on the same
training images (issue 13, lever 6: one whole-network fine-tuning per protocol instead of three)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurocascade.config import load_config
from neurocascade.data.dataset import load_dataset
from neurocascade.edge.keras_reference import TOLERANCE
from neurocascade.errors import UserError
from neurocascade.hierarchy import run as hierarchy_run
from neurocascade.hierarchy.engine import predict_batches
from neurocascade.models.surgery import backbone_layers
from neurocascade.hierarchy.run import train_models
from neurocascade.keras_io import load_keras_model


def _model(run, stage):
    manifest = json.loads((run / "manifest.json").read_text())
    return load_keras_model(run / "models" / f"{stage}.keras", manifest["models"][stage])


whole_model_passes: dict[str, list[int]] = {}  # run name -> the output width of each model predicted whole


@pytest.fixture(scope="module")
def source_and_shared(test_config_path, tiny_runs, tmp_path_factory):
    """A flat run from another initialisation (train.seed 1), then a cascade on its backbone (its models train their
    heads alone), then a cascade whose gate alone takes it while the subtype model fine-tunes on images, then one whose
    subtype model fine-tunes the taken backbone further."""
    base = tmp_path_factory.mktemp("backbone-from")
    data, cache = str(tiny_runs["data"]), base / "cache"  # not the session's: other tests count its entries

    def train(name, stages, *sets):
        whole_model_passes[name] = []

        def recording(model, x, batch_size):  # which models' validation went through the whole network
            whole_model_passes[name].append(int(model.output_shape[-1]))
            return predict_batches(model, x, batch_size)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(hierarchy_run, "predict_batches", recording)
            train_models(load_config(test_config_path, sets), stages, base / name, data=data, cache_root=cache)
        return base / name

    source = train("flat", ("flat",), "train.seed=1")
    shared = train("cascade", ("gate", "subtype"), f"model.backbone_from={source}")
    # as configs/results.toml trains it: the subtype model fine-tuned on images, the gate a head on the source
    gate_only = train(
        "gate-only",
        ("gate", "subtype"),
        f"model.backbone_from={source}",
        'model.backbone_from_stages=["gate"]',
        "train.phase2_data=images",
    )
    # the gate a head on the source's backbone, the subtype model fine-tuning that backbone further on images
    further = train(
        "further",
        ("gate", "subtype"),
        f"model.backbone_from={source}",
        'model.backbone_from_finetune=["subtype"]',
        "train.phase2_data=images",
    )
    return source, shared, gate_only, further


def test_the_gate_and_subtype_carry_the_source_runs_backbone_and_the_manifest_names_it(source_and_shared, tiny_runs):
    source, shared, *_ = source_and_shared
    flat = _model(source, "flat")
    for stage in ("gate", "subtype"):
        model = _model(shared, stage)
        for a, b in zip(backbone_layers(flat), backbone_layers(model), strict=True):
            for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
                np.testing.assert_array_equal(wa, wb)
    imagenet_gate = _model(tiny_runs["cascade"], "gate")  # the `weights` backbone (here a seeded random one)
    assert any(
        not np.array_equal(wa, wb)
        for a, b in zip(backbone_layers(flat), backbone_layers(imagenet_gate))
        for wa, wb in zip(a.get_weights(), b.get_weights())
    )
    manifest = json.loads((shared / "manifest.json").read_text())
    flat_sha = json.loads((source / "manifest.json").read_text())["models"]["flat"]
    assert manifest["weights"]["backbone_from"] == {
        "run": str(source),
        "stage": "flat",
        "sha256": flat_sha,
        "stages": ["gate", "subtype"],
    }
    summary = json.loads((shared / "summary.json").read_text())
    assert 0 <= summary["cascade"]["val_macro_f1"] <= 1
    assert all("phase2" not in summary["stages"][stage] for stage in ("gate", "subtype"))  # heads alone


def test_with_backbone_from_stages_the_other_models_keep_their_own_backbone_and_phase_2(source_and_shared):
    source, _, gate_only, _ = source_and_shared
    flat, gate, subtype = _model(source, "flat"), _model(gate_only, "gate"), _model(gate_only, "subtype")
    differs = False
    for a, b, c in zip(backbone_layers(flat), backbone_layers(gate), backbone_layers(subtype), strict=True):
        for wa, wb, wc in zip(a.get_weights(), b.get_weights(), c.get_weights()):
            np.testing.assert_array_equal(wa, wb)
            differs = differs or not np.array_equal(wa, wc)
    assert differs  # the subtype model's backbone is its own (the `weights` one, then its phase 2)
    summary = json.loads((gate_only / "summary.json").read_text())
    assert "phase2" not in summary["stages"]["gate"] and "phase2" in summary["stages"]["subtype"]
    weights = json.loads((gate_only / "manifest.json").read_text())["weights"]
    assert weights["backbone_from"]["stages"] == ["gate"]


def test_with_backbone_from_finetune_the_subtype_model_fine_tunes_the_taken_backbone_further(source_and_shared):
    source, *_, further = source_and_shared
    flat, gate = _model(source, "flat"), _model(further, "gate")
    for a, b in zip(backbone_layers(flat), backbone_layers(gate), strict=True):
        for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_array_equal(wa, wb)
    # phase 2 ran on the subtype model (it keeps phase 1's weights unless an epoch beat them, so weights may not move)
    summary = json.loads((further / "summary.json").read_text())
    assert "phase2" not in summary["stages"]["gate"] and "phase2" in summary["stages"]["subtype"]
    weights = json.loads((further / "manifest.json").read_text())["weights"]
    assert weights["backbone_from"]["stages"] == ["gate", "subtype"]


def test_a_head_on_the_taken_backbone_is_scored_from_the_cached_activations(
    source_and_shared, test_config_path, tiny_runs
):
    """A gate with no phase 2 on the source's backbone: its validation probabilities come from the cached cut (no
    whole-network pass, twice with a temperature), and they are what the saved model outputs, to the tolerance the
    export checks them with; a model that fine-tuned on images is still predicted whole."""
    *_, gate_only, further = source_and_shared
    assert whole_model_passes["gate-only"] and whole_model_passes["further"]
    assert set(whole_model_passes["gate-only"]) == set(whole_model_passes["further"]) == {3}  # the subtype's only
    x_val = load_dataset(load_config(test_config_path), str(tiny_runs["data"])).images("val")
    for run in (gate_only, further):
        saved = np.load(run / "val_predictions.npz")["gate"]
        np.testing.assert_allclose(predict_batches(_model(run, "gate"), x_val, 32), saved, atol=TOLERANCE)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (['model.backbone_from_finetune=["subtype"]'], "needs model.backbone_from"),
        (
            [
                "model.backbone_from=runs/x",
                'model.backbone_from_stages=["gate"]',
                'model.backbone_from_finetune=["subtype"]',
            ],
            "'subtype' is not in backbone_from_stages",
        ),
    ],
)
def test_backbone_from_finetune_is_checked(test_config_path, sets, message):
    with pytest.raises(UserError, match=message):
        load_config(test_config_path, sets)


def test_its_activations_are_cached_apart_from_the_weights_backbones(source_and_shared):
    keys = [json.loads(p.read_text()) for p in (source_and_shared[0].parent / "cache").glob("*/key.json")]
    taken = [k["weights"]["backbone_from"] for k in keys if "backbone_from" in k["weights"]]
    assert taken and all(t == {"stage": "flat", "sha256": t["sha256"]} for t in taken)  # the model, not its path
    assert any("backbone_from" not in k["weights"] for k in keys)


def test_a_source_that_is_not_a_one_model_run_on_this_split_is_refused(test_config_path, tiny_runs, tmp_path):
    def train(source, *more):
        cfg = load_config(test_config_path, (f"model.backbone_from={source}", *more))
        train_models(cfg, ("gate",), tmp_path / "out", data=str(tiny_runs["data"]), cache_root=tmp_path / "cache")

    with pytest.raises(UserError, match="not a finished training run"):
        train(tmp_path / "nowhere")
    with pytest.raises(UserError, match="name a run of one model"):
        train(tiny_runs["cascade"])
    with pytest.raises(UserError, match="another split"):
        train(tiny_runs["flat"], "data.split_seed=1")
    with pytest.raises(UserError, match="built otherwise"):
        train(tiny_runs["flat"], "model.backbone=EfficientNetLite0")
    assert not (tmp_path / "out" / "config.toml").exists()  # refused before the run recorded anything
