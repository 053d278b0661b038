"""`cli.py eval`: score a cascade run (and a flat run, and ensembles) on the same images, side by side.

Reads what training and export wrote — the run's config, manifest, `models/*.keras` or `export/*.tflite`
and `tau.json` — re-loads the dataset the run was trained on, refuses a dataset whose paths, labels, pixels
(the run's `images.csv`) or split differ, predicts the chosen split with the chosen backend, and writes `report.json`, `report.md` and the
figures to `runs/NAME/eval/<split>-<backend>/`, the same report as one self-contained `report.html`
(`neurocascade.eval.html_report`; the confident errors with Grad-CAM overlays for Keras, occlusion maps for LiteRT), with
`predictions.csv` (every image's labels, probabilities, gate score and τ: `neurocascade.eval.predictions`).

    report, out_dir = evaluate(Path("runs/cascade"), flat=Path("runs/flat"), split="test", backend="keras")
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from neurocascade.data.audit import audit_digest
from neurocascade.data.dataset import PreparedData, load_dataset
from neurocascade.data.layout import CLASSES
from neurocascade.eval.figures import error_sheet
from neurocascade.eval.html_report import write_report_html
from neurocascade.eval.predictions import write_predictions
from neurocascade.eval.report import build_report, report_figures, report_markdown, save_report
from neurocascade.hierarchy.artifacts import RunManifest, Tau
from neurocascade.hierarchy.cascade import soft_probabilities
from neurocascade.hierarchy.ownership import content_fingerprint, image_difference, image_rows, read_image_list
from neurocascade.hierarchy.stages import NO_TUMOUR, ONE_GRAPH
from neurocascade.config import Config, load_config
from neurocascade.errors import UserError
from neurocascade.io import check_writable

BACKENDS = ("keras", "tflite-float", "tflite-int8")
TFLITE_SUFFIX = {"tflite-float": "float32", "tflite-int8": "int8"}
EXPLANATION = {"keras": "Grad-CAM", "tflite-float": "occlusion", "tflite-int8": "occlusion"}


def read_run(run: Path) -> tuple[Config, dict]:
    """The config and manifest of a finished training run, or a one-line error saying what is missing."""
    for name in ("config.toml", "manifest.json"):
        if not (run / name).is_file():
            raise UserError(f"{run}: not a finished training run (no {name})")
    return load_config(run / "config.toml"), RunManifest.read(run / "manifest.json")


def check_same_data(
    run: Path, manifest: RunManifest, ds: PreparedData, warn: Callable[[str], None] | None = None
) -> None:
    """Refuse to score a run on data other than what it was trained and split on: the same paths, labels and
    split, and the same pixels (the file hashes the loader computed, against the run's record of them).

    A run from before runs recorded content cannot be checked for it: `warn` is told so.
    """
    trained = manifest.dataset
    recorded = read_image_list(run)
    if recorded is not None and (diff := image_difference(recorded, image_rows(ds))):
        raise UserError(f"{run}: not the data the run was trained on ({diff}); evaluate with that data")
    if trained["fingerprint"] != ds.fingerprint:
        raise UserError(
            f"{run}: dataset fingerprint {ds.fingerprint} differs from the run's {trained['fingerprint']} "
            "(other images or labels); evaluate with the data the run was trained on"
        )
    if "content" in trained and trained["content"] != content_fingerprint(ds):
        raise UserError(
            f"{run}: same image paths and labels as the run's, other image content (content "
            f"fingerprint {content_fingerprint(ds)}, the run has {trained['content']}); evaluate with "
            "the data the run was trained on"
        )
    if "content" not in trained and warn is not None:
        warn(
            f"{run}: the run records no image content (made before runs did): only paths, labels and the split "
            "are checked, not that the pixels are the ones it was trained on"
        )
    if trained["split_hashes"] != ds.split_hashes():
        raise UserError(f"{run}: the train/val/test split differs from the run's; same data, different split config")


def load_stage_model(run: Path, stage: str, manifest: RunManifest | None = None):
    """`run/models/<stage>.keras` via the safe loader, checked against the sha256 the run's manifest records.

    An eval needs each model twice (predictions, then the errors' Grad-CAM) and a load costs seconds, so each
    (file, sha256) is loaded and verified once per process: what is returned always has the manifest's sha256.
    """
    if manifest is None:
        manifest = read_run(run)[1]
    return _load_once(str((run / "models" / f"{stage}.keras").resolve()), manifest.model_sha256(stage))


@functools.lru_cache(maxsize=8)
def _load_once(path: str, sha256: str | None):
    from neurocascade.keras_io import load_keras_model

    return load_keras_model(Path(path), sha256)


def _tflite_predict(path: Path, images: np.ndarray) -> np.ndarray:
    """LiteRT probabilities (rows renormalised by the runtime), in float64 for the metrics' sum check."""
    from neurocascade.edge.runtime import load_model

    probs = np.asarray(load_model(path).predict_proba(images), np.float64)
    return probs / probs.sum(axis=1, keepdims=True)


def stage_probabilities(
    run: Path, stage: str, images: np.ndarray, backend: str, manifest: RunManifest | None = None
) -> np.ndarray:
    """One trained model's class probabilities on `images` with the chosen backend (`manifest`: the run's,
    read from `run` when not given)."""
    if backend == "keras":
        model = load_stage_model(run, stage, manifest)
        return model.predict(images.astype(np.float32), batch_size=32, verbose=0)
    path = run / "export" / f"{stage}.{TFLITE_SUFFIX[backend]}.tflite"
    if not path.is_file():
        raise UserError(f"{path}: not exported; run `python cli.py export --run {run}` first")
    from neurocascade.edge.manifest import verify_export

    verify_export(path.parent)  # the whole export as the manifest lists it, before loading anything
    return _tflite_predict(path, images)


def run_predictions(run: Path, manifest: RunManifest, images: np.ndarray, backend: str) -> dict:
    """Inputs for `build_report`: p_tumour/q_subtype/tau for a cascade run, probs for a flat run."""
    stages = manifest.stages
    if "gate" in stages:
        tau = Tau.read(run / "tau.json").tau
        gate = stage_probabilities(run, "gate", images, backend, manifest)
        subtype = stage_probabilities(run, "subtype", images, backend, manifest)
        return {"p_tumour": gate[:, 0], "q_subtype": subtype, "tau": tau}
    return {"probs": stage_probabilities(run, "flat", images, backend, manifest)}


def four_class(pred: dict) -> np.ndarray:
    """Four-class probabilities of either kind of run (the cascade's soft combination)."""
    return pred["probs"] if "probs" in pred else soft_probabilities(pred["p_tumour"], pred["q_subtype"])


def evaluate(
    run: Path,
    flat: Path | None = None,
    split: str = "test",
    backend: str = "keras",
    data: str | None = None,
    ensemble: Sequence[Path] = (),
    explain: Callable | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[dict, Path]:
    """Score `run` (and `flat`, and the soft-vote `ensemble`) on `split`; write the report; return it.

    `warn(message)` gets what is worth saying but not refusing (a run too old to check the data's content).
    `explain(name, run, images, errors, backend)` gives the errors' heat maps (`explain_errors`) or None.
    """
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    cfg, manifest = read_run(run)
    out_dir = run / "eval" / f"{split}-{backend}"
    check_writable(out_dir / "report.json")  # before the data and the models, not after
    ds = load_dataset(cfg, data or manifest.dataset["root"], pixels=True)
    check_same_data(run, manifest, ds, warn)
    idx = ds.indices(split)
    if len(idx) == 0:
        raise UserError(f"{run}: the {split} split is empty")
    images, y_true = ds.images(split), ds.labels(split)
    paths = [str(Path(ds.samples[k].path).relative_to(ds.root)) for k in idx]

    runs = scored_runs(run, manifest, flat)
    members = [(path, read_run(path)[1]) for path in ensemble]
    for path, man in [*runs.values(), *members]:
        if path != run:  # the run itself was checked above, before the split was read
            check_same_data(path, man, ds, warn)
    models = score_runs(runs, members, images, y_true, paths, backend)

    meta = {
        "protocol": ds.split["protocol"],
        "protocol_name": ds.split["protocol_name"],
        "split": split,
        "backend": backend,
        "dataset": ds.root,
        "fingerprint": ds.fingerprint,
        "images": int(len(idx)),
        "runs": {name: str(path) for name, (path, _) in runs.items()},
        "ensemble": [str(p) for p in ensemble],
    }
    report = build_report(models, cfg.eval, meta, audit=audit_digest(ds.audit, ds.split))
    figures = report_figures(report, out_dir)
    figures.update(error_sheets(report, runs, images, backend, out_dir, explain))
    markdown = report_markdown(report, figures)
    save_report(report, markdown, out_dir)
    write_report_html(markdown, out_dir)
    write_predictions({**models, **one_graph_predictions(run, manifest, images, y_true, paths, backend)}, out_dir)
    return report, out_dir


def one_graph_predictions(
    run: Path, manifest: RunManifest, images: np.ndarray, y_true: np.ndarray, paths: list[str], backend: str
) -> dict[str, dict]:
    """{"one_graph": …} for the predictions CSV of a LiteRT evaluation of a cascade whose export has the cascade as
    one graph (`export.one_graph`), else {}: its labels and probabilities beside the two models', which the report
    scores, so that `neurocascade.eval.agreement` compares them with Keras image by image."""
    export = run / "export"
    if backend == "keras" or "gate" not in manifest.stages or not (export / f"{ONE_GRAPH}.json").is_file():
        return {}
    from neurocascade.edge.runtime import OneGraphCascade

    model = OneGraphCascade.load(export, TFLITE_SUFFIX[backend])  # verifies the export against its manifest
    pred = model.predict(images)
    p_tumour = 1.0 - pred.probs[:, NO_TUMOUR]
    return {
        ONE_GRAPH: {
            "y_true": y_true,
            "paths": paths,
            "probs": pred.probs,
            "y_pred": pred.labels,
            "p_tumour": p_tumour,
            "tau": model.tau,
        }
    }


def scored_runs(run: Path, manifest: RunManifest, flat: Path | None) -> dict[str, tuple[Path, RunManifest]]:
    """{"cascade" or "flat": (run, manifest)}, plus {"flat": …} for `flat`: the models a report scores."""
    runs = {"cascade" if "gate" in manifest.stages else "flat": (run, manifest)}
    if flat is not None:
        runs["flat"] = (flat, read_run(flat)[1])
    return runs


def score_runs(
    runs: dict[str, tuple[Path, RunManifest]],
    ensemble: Sequence[tuple[Path, RunManifest]],
    images: np.ndarray,
    y_true: np.ndarray,
    paths: list[str],
    backend: str,
) -> dict[str, dict]:
    """`build_report`'s models: every run's predictions on `images`, and the soft vote of `ensemble`'s runs."""
    models = {
        name: {"y_true": y_true, "paths": paths, **run_predictions(path, man, images, backend)}
        for name, (path, man) in runs.items()
    }
    if ensemble:
        members = [four_class(run_predictions(path, man, images, backend)) for path, man in ensemble]
        models["ensemble"] = {"y_true": y_true, "paths": paths, "probs": np.mean(members, axis=0)}
    return models


def error_sheets(
    report: dict,
    runs: dict[str, tuple[Path, RunManifest]],
    images: np.ndarray,
    backend: str,
    out_dir: Path,
    explain: Callable | None = None,
) -> dict[str, str]:
    """Write each model's contact sheet of its most confident errors, with `explain`'s heat maps when it gives
    them (`explain_errors`); {caption: file name} for the report."""
    figures = {}
    for name, section in report["models"].items():
        errors = section["most_confident_errors"]
        if not errors:
            continue
        heat = explain(name, runs.get(name, (None,))[0], images, errors, backend) if explain else None
        items = [
            {
                "image": images[e["index"]],
                "true": e["true"],
                "predicted": e["predicted"],
                "probability": e["probability"],
                "path": e["path"],
                **({"heatmap": heat[i]} if heat is not None else {}),
            }
            for i, e in enumerate(errors)
        ]
        error_sheet(items, out_dir / f"errors-{name}.png")
        overlay = (
            f"{EXPLANATION[backend]} overlay of the model that made each error"
            if heat is not None
            else "no overlay (an ensemble is not one model to explain)"
            if name not in runs
            else "no overlay"
        )
        figures[f"Most confident errors: {name} — {overlay}"] = f"errors-{name}.png"
    return figures


def explain_errors(
    name: str, run: Path | None, images: np.ndarray, errors: list[dict], backend: str
) -> np.ndarray | None:
    """Heat maps of the model that made each error — for a cascade the gate for a tumour called no_tumor, else
    the subtype model — by Grad-CAM with Keras, by occlusion with LiteRT (no gradients there); None for an
    ensemble, which is no single run."""
    if run is None:
        return None
    cfg, manifest = read_run(run)
    chosen = images[[e["index"] for e in errors]]
    predicted = [CLASSES.index(e["predicted"]) for e in errors]
    if backend == "keras":
        from neurocascade.eval.gradcam import grad_cam

        def stage_heat(stage: str, x: np.ndarray, k: list[int]) -> np.ndarray:
            return grad_cam(load_stage_model(run, stage, manifest), x, k)
    else:
        from neurocascade.edge.runtime import load_model
        from neurocascade.eval.occlusion import occlusion_map

        def stage_heat(stage: str, x: np.ndarray, k: list[int]) -> np.ndarray:
            model = load_model(run / "export" / f"{stage}.{TFLITE_SUFFIX[backend]}.tflite")
            return occlusion_map(model.predict_proba, x, k, cfg.eval.occlusion_grid)

    if name == "flat":
        return stage_heat("flat", chosen, predicted)
    no_tumour = CLASSES.index("no_tumor")
    parts = (
        ("gate", [i for i, p in enumerate(predicted) if p == no_tumour], lambda i: 1),  # gate: no_tumor is 1
        ("subtype", [i for i, p in enumerate(predicted) if p != no_tumour], lambda i: predicted[i]),
    )
    heat = None
    for stage, rows, target in parts:
        if rows:
            part = stage_heat(stage, chosen[rows], [target(i) for i in rows])
            heat = np.zeros((len(chosen), *part.shape[1:]), np.float32) if heat is None else heat
            heat[rows] = part
    return heat
