"""`cli.py eval --external`: score a trained run (Keras, or its LiteRT export) on a user's own labelled images.

"External" images often are not: public brain-MRI sets are copied into one another (re-encoded, resized,
mirrored), and a model scored on copies of its training images looks better than it is. So first the copy
audit: every external image is hashed as `audit-data` hashes (`neurocascade.data.audit`, with the run's `[audit]`
settings) and compared with the images the run was fitted on — its training split, reloaded from the data it
was trained on and checked against its `images.csv`. Then every metric with its 95% CI, on all images and on
those with no copy in training, side by side. Everything goes to `RUN/eval/external-<name>-<backend>/`
(report.json for all images, report-no-copy.json, copy-audit.json, report.md and report.html with both side by
side, figures, predictions.csv with each image's copy), never over the run's own reports.

    report, out_dir = evaluate_external(Path("runs/cascade"), Path("~/scans/site-b"), flat=Path("runs/flat"))
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from neurocascade.data.audit import KINDS, copy_counts, find_pairs, strongest_copies
from neurocascade.data.dataset import PreparedData, load_dataset, scan_readable
from neurocascade.data.external import discover_external
from neurocascade.data.layout import CLASSES, Sample
from neurocascade.data.scan import FileScan
from neurocascade.eval.external_text import external_markdown
from neurocascade.eval.html_report import write_report_html
from neurocascade.eval.predictions import write_predictions
from neurocascade.hierarchy.artifacts import RunManifest
from neurocascade.eval.report import build_report, report_figures, save_report
from neurocascade.eval.report_file import EvalReport
from neurocascade.eval.run import BACKENDS, check_same_data, error_sheets, read_run, score_runs, scored_runs
from neurocascade.config import Config, load_config
from neurocascade.errors import UserError
from neurocascade.io import check_writable, write_json

NO_COPY = "none"
NO_COPY_FILE = "report-no-copy.json"  # the no-copy images' report, beside report.json (all images)
AUDIT_FILE = "copy-audit.json"
COPY_COLUMNS = ("copy_in_training", "training_copy", "copy_distance_bits")


def external_name(source: Path) -> str:
    """The folder name a set's results go under: its folder's (or manifest's) name, filesystem-safe."""
    stem = source.stem if source.suffix.lower() == ".csv" else source.name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "data"


def output_folder(run: Path, source: Path, name: str | None, backend: str) -> Path:
    """`run/eval/external-<name>-<backend>`, refused when it holds the report of another external set."""
    out_dir = run / "eval" / f"external-{name or external_name(source)}-{backend}"
    previous = out_dir / "report.json"
    if previous.is_file():
        try:
            was = json.loads(previous.read_text())["meta"]["dataset"]
        except (OSError, ValueError, KeyError, TypeError):
            was = None
        if was != str(source.resolve()):
            raise UserError(
                f"{out_dir}: holds the report of {was or 'another data set'}; name this one with --external-name NAME"
            )
    check_writable(previous)
    return out_dir


def load_external(
    source: Path, cfg: Config, warn: Callable[[str], None]
) -> tuple[list[Sample], list[FileScan], Path, list[dict]]:
    """The readable external images with their scans (hashes and model input as the run prepares them), the
    folder their paths are relative to, and the unreadable ones ({path, reason}: named through `warn`)."""
    samples, base = discover_external(source)
    readable, scans, skipped = scan_readable(samples, cfg, source, base, warn)
    return readable, scans, base, skipped


def training_data(
    runs: Sequence[tuple[Path, RunManifest]],
    data: str | None,
    hash_size: int,
    warn: Callable[[str], None] | None = None,
) -> list[PreparedData]:
    """Each distinct data set the runs were trained on, hashed (no pixels) and checked to be the run's own."""
    loaded: dict[tuple, PreparedData] = {}
    out: list[PreparedData] = []
    for run, manifest in runs:
        cfg = load_config(run / "config.toml")
        if cfg.audit.hash_size != hash_size:
            raise UserError(
                f"{run}: hashes images with audit.hash_size {cfg.audit.hash_size}, the first run with "
                f"{hash_size}; evaluate runs with the same [audit] settings together"
            )
        source = data or manifest.dataset["root"]
        if not Path(source).exists():
            raise UserError(
                f"{run}: its training data {source} is not there; the copy audit compares the external "
                "images with the images the run was trained on: pass --data with them"
            )
        key = (str(source), repr(cfg.data), repr(cfg.audit))
        if key not in loaded:
            ds = load_dataset(cfg, source, pixels=False, warn=warn)
            loaded[key] = ds
            out.append(ds)
        check_same_data(run, manifest, loaded[key], warn)
    return out


def copy_audit(
    samples: Sequence[Sample],
    scans: Sequence[FileScan],
    base: Path,
    trained: Sequence[PreparedData],
    threshold: int,
    mirror: bool,
) -> tuple[list[dict], dict]:
    """Each external image's strongest copy among the training images ({kind, training_copy, distance,
    training_label}), and the audit's summary: counts per class and kind, the copies, label conflicts."""
    train: dict[tuple[str, str], tuple[FileScan, str]] = {}  # (root, relative path) → scan, label
    for ds in trained:
        for k in ds.indices("train"):
            rel = Path(ds.samples[k].path).relative_to(ds.root).as_posix()
            train[(ds.root, rel)] = (ds.scans[k], ds.samples[k].label)
    keys = list(train)
    everything = [train[key][0] for key in keys] + list(scans)
    n_train = len(keys)
    targets = list(range(n_train, len(everything)))
    pairs = find_pairs(everything, threshold, mirror=mirror)
    best = strongest_copies(targets, range(n_train), pairs)
    within = Counter(p.kind for p in pairs if p.kind != "none" and p.i >= n_train)  # i < j: both external
    rows = []
    for t in targets:
        if t in best:
            source, pair = best[t]
            rows.append(
                {
                    "kind": pair.kind,
                    "training_copy": keys[source][1],
                    "distance": pair.distance,
                    "training_label": train[keys[source]][1],
                }
            )
        else:
            rows.append({"kind": NO_COPY, "training_copy": "", "distance": None, "training_label": ""})
    labels = [s.label for s in samples]
    kinds = {k: r["kind"] for k, r in enumerate(rows) if r["kind"] != NO_COPY}
    counts = copy_counts(range(len(samples)), labels, kinds, CLASSES)
    copies = [
        {"path": Path(s.path).relative_to(base).as_posix(), "label": s.label, **r}
        for s, r in zip(samples, rows)
        if r["kind"] != NO_COPY
    ]
    summary = {
        "compared_with": "the training split of each scored run (the images its weights were fitted on)",
        "training_data": sorted({ds.source for ds in trained}),
        "training_images": n_train,
        "threshold_bits": threshold,
        "mirror": mirror,
        "external_with_copy_in_train": counts,
        "label_conflicts": sum(1 for c in copies if c["label"] != c["training_label"]),
        "copy_pairs_within_external": {kind: within.get(kind, 0) for kind in KINDS},
        "copies": copies,
    }
    return rows, summary


def subset(models: dict[str, dict], keep: np.ndarray) -> dict[str, dict]:
    """The same models restricted to the images `keep` selects (every per-image array and list)."""
    out = {}
    for name, spec in models.items():
        out[name] = {
            k: (v if k == "tau" else [v[i] for i in keep] if isinstance(v, list) else np.asarray(v)[keep])
            for k, v in spec.items()
        }
    return out


def evaluate_external(
    run: Path,
    external: Path,
    flat: Path | None = None,
    backend: str = "keras",
    data: str | None = None,
    ensemble: Sequence[Path] = (),
    name: str | None = None,
    explain: Callable | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[dict, Path]:
    """Copy-audit `external` against the runs' training images, score it on all images and on those with no
    copy in training, and write the reports; returns the all-images report with "copy_audit" and "no_copy"
    (written apart: report.json, copy-audit.json, report-no-copy.json).

    `data`: where the runs' training data is, when not where they were trained from.
    """
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    say = warn or (lambda message: None)
    cfg, manifest = read_run(run)
    external = Path(external)
    out_dir = output_folder(run, external, name, backend)
    runs = scored_runs(run, manifest, flat)
    members = [(path, read_run(path)[1]) for path in ensemble]
    samples, scans, base, skipped = load_external(external, cfg, say)
    trained = training_data([*runs.values(), *members], data, cfg.audit.hash_size, warn)
    rows, audit = copy_audit(samples, scans, base, trained, cfg.audit.near_threshold, cfg.audit.mirror)
    audit["unreadable"] = [{"path": os.path.relpath(s["path"], base), "reason": s["reason"]} for s in skipped]

    images = np.stack([s.pixels for s in scans])
    y_true = np.array([CLASSES.index(s.label) for s in samples], dtype=np.int32)
    paths = [Path(s.path).relative_to(base).as_posix() for s in samples]
    models = score_runs(runs, members, images, y_true, paths, backend)
    split = trained[0].split
    meta = {
        "protocol": "external",
        "protocol_name": f"{external_name(external)}, scored with a model trained under "
        f"protocol {split['protocol']} ({split['protocol_name']})",
        "split": "all images",
        "backend": backend,
        "dataset": str(external.resolve()),
        "images": len(samples),
        "runs": {n: str(p) for n, (p, _) in runs.items()},
        "ensemble": [str(p) for p in ensemble],
    }
    every = build_report(models, cfg.eval, meta)
    keep = np.array([k for k, r in enumerate(rows) if r["kind"] == NO_COPY], dtype=np.int64)
    no_copy = (
        build_report(subset(models, keep), cfg.eval, {**meta, "split": "no copy in training", "images": int(len(keep))})
        if len(keep)
        else None
    )
    report = {**every, "no_copy": no_copy, "copy_audit": audit}

    out_dir.mkdir(parents=True, exist_ok=True)
    figures = report_figures(every, out_dir)
    figures.update(error_sheets(every, runs, images, backend, out_dir, explain))
    markdown = external_markdown(report, figures)
    save_report(every, markdown, out_dir)  # report.json: the all-images report, as every eval writes it
    stale = out_dir / NO_COPY_FILE
    if no_copy is not None:
        EvalReport.from_json(no_copy, stale).write(stale)
    elif stale.exists():
        stale.unlink()  # a previous run's, of a set that had images without copies then
    write_json(out_dir / AUDIT_FILE, audit)
    write_report_html(markdown, out_dir)
    columns = dict(
        zip(
            COPY_COLUMNS,
            (
                [r["kind"] for r in rows],
                [r["training_copy"] for r in rows],
                ["" if r["distance"] is None else r["distance"] for r in rows],
            ),
        )
    )
    write_predictions(models, out_dir, extra=columns)
    return report, out_dir
