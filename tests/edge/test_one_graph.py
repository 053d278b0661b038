"""`export.one_graph`: a cascade whose gate and subtype are heads on one backbone, exported as one graph, gives the
two-model cascade's float function and decisions in one backbone pass (issue 13, lever 6)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurocascade.config import load_config
from neurocascade.data.dataset import load_dataset
from neurocascade.errors import ConfigError, UserError
from neurocascade.hierarchy.cascade import hard_predictions, soft_probabilities
from neurocascade.hierarchy.stages import ONE_GRAPH
from neurocascade.keras_io import load_keras_model

from .conftest import EXPORT_SETTINGS, TRAIN_SETTINGS, tiny_classifier, tiny_registered

ONE_GRAPH_EXPORT = ["export.qat=false", "export.one_graph=true", "export.bias_correction=true"]


def _models(run):
    manifest = json.loads((run / "manifest.json").read_text())
    return {s: load_keras_model(run / "models" / f"{s}.keras", manifest["models"][s]) for s in ("gate", "subtype")}


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory, test_config_path, phantom_root):
    """A flat run, then a cascade whose gate and subtype are heads on its backbone, exported with the one graph."""
    from neurocascade.edge.export import export_run
    from neurocascade.hierarchy.run import train_models

    base = tmp_path_factory.mktemp("one-graph")

    def train(name, stages, *sets):
        cfg = load_config(test_config_path, [*TRAIN_SETTINGS, *EXPORT_SETTINGS, "export.after_training=false", *sets])
        with tiny_registered():
            train_models(cfg, stages, base / name, data=str(phantom_root), cache_root=base / "cache")
        return base / name

    flat = train("flat", ("flat",))
    cascade = train("cascade", ("gate", "subtype"), f"model.backbone_from={flat}")
    report = export_run(cascade, overrides=ONE_GRAPH_EXPORT)
    return cascade, report, phantom_root


def _validation_images(run, root):
    cfg = load_config(run / "config.toml")
    ds = load_dataset(cfg, str(root), pixels=True)
    return ds.images("val"), ds.labels("val")


def test_the_one_graph_is_the_two_models_soft_output(shared_run):
    from neurocascade.hierarchy.one_graph import backbone_difference, one_graph_model

    run, _, root = shared_run
    models = _models(run)
    assert backbone_difference(models["gate"], models["subtype"]) is None
    x, _ = _validation_images(run, root)
    x = x.astype(np.float32)
    p = models["gate"].predict(x, verbose=0)[:, 0]
    q = models["subtype"].predict(x, verbose=0)
    got = one_graph_model(models["gate"], models["subtype"]).predict(x, verbose=0)
    np.testing.assert_allclose(got, soft_probabilities(p, q), atol=1e-6)


def test_two_backbones_are_not_one_graph():
    from neurocascade.hierarchy.one_graph import backbone_difference, one_graph_model

    gate, subtype = tiny_classifier(2), tiny_classifier(3)  # two initialisations
    assert "weights differ" in backbone_difference(gate, subtype)
    with pytest.raises(ValueError, match="cannot be one graph"):
        one_graph_model(gate, subtype)


def test_an_export_of_a_cascade_on_two_backbones_is_refused_before_any_work(trained_runs, monkeypatch):
    import neurocascade.edge.export as export
    from neurocascade.edge.export import export_run

    # this session cascade's two models kept their one initial backbone (no phase-2 epoch beat phase 1): as if not
    monkeypatch.setattr(export, "backbone_difference", lambda gate, subtype: "their backbones' weights differ")
    monkeypatch.setattr(export, "_convert_stage", lambda *a, **k: pytest.fail("converted before the refusal"))
    with pytest.raises(UserError, match="export.one_graph needs a gate and subtype on one backbone") as err:
        export_run(trained_runs["cascade"], overrides=["export.qat=false", "export.one_graph=true"])
    assert "\n" not in str(err.value)
    assert not any(p.name.startswith("export.tmp") for p in trained_runs["cascade"].iterdir())


@pytest.mark.parametrize("setting", ["export.qat=true", "export.equalize=true", 'export.output="logits"'])
def test_one_graph_is_post_training_with_probabilities(test_config_path, setting):
    with pytest.raises(ConfigError, match="one_graph: post-training only"):
        load_config(test_config_path, ["export.qat=false", "export.one_graph=true", setting])


def test_the_export_writes_it_beside_the_two_models_and_scores_it_as_the_cascade(shared_run):
    from neurocascade.edge.manifest import read_manifest

    run, report, _ = shared_run
    export = run / "export"
    assert read_manifest(export).stages == ("gate", "subtype", ONE_GRAPH)
    for name in ("one_graph.json", "one_graph.int8.tflite", "one_graph.float32.tflite"):
        assert (export / name).is_file()
    entry = report["models"][ONE_GRAPH]
    assert entry["n_val"] == report["models"]["cascade"]["n_val"]
    assert entry["keras_macro_f1"] == report["models"]["cascade"]["keras_macro_f1"]  # the same Keras cascade at τ
    assert 0 <= entry["int8_top1_agreement"] <= 1 and 0 <= entry["tau_decision_agreement"] <= 1
    assert entry["head_bias_correction"]["features"] > 0
    assert json.loads((export / "agreement.json").read_text())["models"][ONE_GRAPH] == entry


def test_its_runtime_gives_the_two_model_cascades_labels_in_one_pass(shared_run):
    from neurocascade.edge.runtime import Cascade, OneGraphCascade

    run, _, root = shared_run
    x, _ = _validation_images(run, root)
    one = OneGraphCascade.load(run / "export", "float32")
    two = Cascade.load(run / "export", "float32")
    got, want = one.predict(x), two.predict(x, subtype_for_all=True)
    assert one.tau == two.tau
    np.testing.assert_allclose(got.probs, want.probs, atol=1e-5)
    p = 1 - got.probs[:, 3]
    near = np.abs(p - one.tau) < 1e-5  # a float32 rounding away from τ could flip these, none else
    assert (got.labels == want.labels)[~near].all()
    assert got.stages == [(ONE_GRAPH,)] * len(x)
    int8 = OneGraphCascade.load(run / "export").predict(x)
    assert int8.probs.shape == (len(x), 4)
    np.testing.assert_array_equal(int8.labels, hard_predictions(1 - int8.probs[:, 3], int8.probs[:, :3], one.tau))


def test_both_heads_take_the_pooled_features_shift(shared_run):
    from neurocascade.edge.bias_correction import head_batchnorms
    from neurocascade.hierarchy.one_graph import one_graph_model

    run, _, _ = shared_run
    models = _models(run)
    assert [bn.name for bn in head_batchnorms(one_graph_model(models["gate"], models["subtype"]))] == [
        "head_bn",
        "subtype_head_bn",
    ]
    assert [bn.name for bn in head_batchnorms(models["gate"])] == ["head_bn"]


def test_edge_bench_times_the_one_graph_too(shared_run):
    from neurocascade.edge.bench import run_bench

    run, _, _ = shared_run
    report = run_bench(run / "export", None, threads=[1], runs=2, warmup=0)
    timed = {(r["stage"], r["variant"]) for r in report["models"]}
    assert {(ONE_GRAPH, "int8"), (ONE_GRAPH, "float32")} <= timed


def test_predict_runs_the_one_graph_when_the_export_has_it(shared_run):
    from neurocascade.edge.predict import predict_paths
    from neurocascade.edge.runtime import OneGraphCascade

    run, _, root = shared_run
    paths = sorted(str(p) for p in (root / "Testing").rglob("*.png"))[:6]
    rows = predict_paths(run / "export", paths)
    assert [row["stages"] for row in rows] == [[ONE_GRAPH]] * len(paths)
    assert all(None not in row["probabilities"].values() for row in rows)  # every image's subtypes known
    tau = OneGraphCascade.load(run / "export").tau
    for row in rows:
        called = row["gate"]["p_tumour"] >= tau
        assert row["gate"]["tau"] == pytest.approx(tau)
        assert (row["label"] != "no_tumor") == called


def test_the_bundle_readme_counts_what_predict_loads(shared_run, tmp_path):
    import tarfile

    from neurocascade.edge.bundle import write_bundle

    run, _, _ = shared_run
    with tarfile.open(write_bundle(run, tmp_path / "edge.tar.gz")) as tar:
        readme = next(m for m in tar.getmembers() if m.name.endswith("/README.md"))
        text = tar.extractfile(readme).read().decode()
        names = {m.name.split("/", 1)[1] for m in tar.getmembers()}
    assert "it loads one_graph in one process" in text
    assert {"export/one_graph.int8.tflite", "export/one_graph.json"} <= names


def test_a_litert_evaluation_writes_the_one_graph_beside_the_cascade_and_agreement_compares_it(shared_run):
    import csv

    from sklearn.metrics import f1_score

    from neurocascade.eval.agreement import prediction_agreement
    from neurocascade.eval.run import evaluate

    run, _, root = shared_run
    _, keras_dir = evaluate(run, split="test", backend="keras", data=str(root))
    report, int8_dir = evaluate(run, split="test", backend="tflite-int8", data=str(root))
    assert set(report["models"]) == {"cascade"}  # the report scores the two models; the CSV carries the one graph
    with (int8_dir / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    with (keras_dir / "predictions.csv").open() as f:
        keras_rows = list(csv.DictReader(f))
    assert {"one_graph_label", "one_graph_p_no_tumor", "one_graph_gate_p_tumour", "one_graph_tau"} <= set(rows[0])
    for row in rows:  # its label follows its own score and τ, as predict decides it
        called = float(row["one_graph_gate_p_tumour"]) >= float(row["one_graph_tau"])
        assert (row["one_graph_label"] != "no_tumor") == called
    agreement = prediction_agreement(keras_dir / "predictions.csv", int8_dir / "predictions.csv")["models"]
    same = [k["cascade_label"] == r["one_graph_label"] for k, r in zip(keras_rows, rows)]
    assert agreement["one_graph"]["top1_agreement"] == round(sum(same) / len(same), 4)
    assert agreement["one_graph"]["n"] == len(rows) and 0 <= agreement["one_graph"]["tau_decision_agreement"] <= 1
    assert "one_graph_label" not in keras_rows[0]  # Keras has no one graph: the cascade is its float function
    true, called = [r["true_label"] for r in rows], [r["one_graph_label"] for r in rows]
    assert agreement["one_graph"]["macro_f1"] == pytest.approx(f1_score(true, called, average="macro"))


def test_the_one_graph_takes_its_gates_head_shift_which_its_own_conversion_gives_bit_for_bit(shared_run):
    """The export measures the INT8 features' shift once for the gate and the one graph (edge/export.py
    `_head_shift`): their backbone is one, so a conversion of each gives the same INT8 pooled features."""
    from neurocascade.edge.bias_correction import measure_head_shift, shift_key
    from neurocascade.edge.calibration import representative
    from neurocascade.edge.export import convert_int8
    from neurocascade.hierarchy.one_graph import one_graph_model

    run, report, root = shared_run
    models = _models(run)
    graph = one_graph_model(models["gate"], models["subtype"])
    images = _validation_images(run, root)[0][:16].astype(np.float32)
    assert shift_key(graph, images) == shift_key(models["gate"], images) != shift_key(graph, images[1:])
    own, gate = (
        measure_head_shift(m, convert_int8(m, representative(images)), images) for m in (graph, models["gate"])
    )
    np.testing.assert_array_equal(own.shift, gate.shift)
    assert report["models"][ONE_GRAPH]["head_bias_correction"] == report["models"]["gate"]["head_bias_correction"]


def test_a_refitted_one_graph_reads_its_gates_int8_features_and_refits_both_heads(shared_run, tmp_path, monkeypatch):
    """With `export.head_refit_epochs` the one graph's heads are refitted on the INT8 features of its gate's
    backbone under the gate's calibration: the same features, computed once for both. The three refits' targets,
    each Keras model's probabilities on its training images, come from one float backbone pass."""
    import shutil

    import neurocascade.edge.export as export

    cascade, _, _ = shared_run
    run = tmp_path / "cascade"
    shutil.copytree(cascade, run)
    computed: list[int] = []
    features = export.int8_pooled_features

    def spy(data, images, layer):
        computed.append(len(images))
        return features(data, images, layer)

    float_passes: list[np.ndarray] = []  # the images each float pass over images read
    predict = export.predict_batches

    def spy_predict(model, x, batch_size):
        if np.ndim(x) == 4:
            float_passes.append(x)
        return predict(model, x, batch_size)

    fits: list[dict] = []  # gate, subtype, one graph
    refit_heads = export.refit_heads

    def spy_refit(model, stage_fits, *args):
        fits.append(stage_fits)
        return refit_heads(model, stage_fits, *args)

    monkeypatch.setattr(export, "int8_pooled_features", spy)
    monkeypatch.setattr(export, "predict_batches", spy_predict)
    monkeypatch.setattr(export, "refit_heads", spy_refit)
    refit = ['export.float_ops=["FULLY_CONNECTED"]', "export.head_refit_epochs=2"]
    report = export.export_run(run, overrides=[*ONE_GRAPH_EXPORT, *refit])
    refitted = {name for name, entry in report["models"].items() if "head_refit" in entry}
    assert refitted == {"gate", "subtype", ONE_GRAPH}
    assert report["models"][ONE_GRAPH]["head_refit"]["images"] == report["models"]["gate"]["head_refit"]["images"]
    assert len(computed) == 2  # the gate's training images, the subtype's tumours; the one graph took the gate's
    (x_train,) = float_passes  # one float pass for the three refits
    models = _models(run)
    x = x_train.astype(np.float32)
    gate_p = models["gate"].predict(x, verbose=0)
    ((gate_rows, gate_targets),), ((_, subtype_targets),) = (list(f.values()) for f in fits[:2])
    np.testing.assert_allclose(gate_targets, gate_p, atol=1e-5)
    # the one graph's heads refitted as their models are: the gate's on every image, the subtype's on the tumours
    graph = fits[2]
    assert set(graph) == {"head_out", "subtype_head_out"}
    np.testing.assert_array_equal(graph["head_out"][0], gate_rows)  # the gate's INT8 features: its draw
    np.testing.assert_allclose(graph["head_out"][1], gate_p, atol=1e-5)
    rows, q = graph["subtype_head_out"]
    assert len(rows) == len(q) == len(subtype_targets) == report["models"]["subtype"]["head_refit"]["images"] < len(x)
    tumours = [int(np.flatnonzero((gate_rows == row).all(axis=1))[0]) for row in rows]
    np.testing.assert_allclose(q, models["subtype"].predict(x[tumours], verbose=0), atol=1e-5)


def test_the_one_graphs_choices_score_its_decisions_at_tau_not_its_arg_max(shared_run):
    """Precision and calibration draw are chosen on what predict returns: four-class labels at τ. A model that
    gives P(no tumour) 0.3 keeps the arg-max's subtype but, under τ 0.9, is called no tumour."""
    from dataclasses import replace

    from neurocascade.edge.export import _Export

    run, report, _ = shared_run
    entry = report["models"][ONE_GRAPH]
    chosen = entry["candidates"][entry["quantization"]]["agreement"]
    assert chosen == entry["int8_top1_agreement"]  # the decisions' agreement the entry reports (calibration
    # "auto" compares the draws by the same `agreement`)
    keras_p = np.array([[0.05, 0.05, 0.0, 0.9], [0.8, 0.1, 0.05, 0.05]])  # no tumour; glioma above τ
    edge_p = np.array([[0.05, 0.05, 0.0, 0.9], [0.5, 0.1, 0.1, 0.3]])  # no tumour; P(tumour) 0.7 < τ
    job = _Export(run, None, None, "cascade", 0.9, run, {}, print)
    assert job.agreement("flat", keras_p, edge_p) == 1.0  # arg-max agrees on both
    graph = replace(job, one_graph_labels=hard_predictions(1 - keras_p[:, 3], keras_p[:, :3], 0.9))
    assert graph.agreement(ONE_GRAPH, keras_p, edge_p) == 0.5
    assert graph.agreement("gate", keras_p, edge_p) == 1.0  # the other models keep their top-1
