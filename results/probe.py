"""What a lever buys, on validation only, from a finished run's cached rows, at the cost of a few head trainings.

`probe`: phase-1 heads on the last map's features vs all taps (the multi-scale head).
`probe_recipes`: phase-1 heads under config variants (label smoothing, dropout, head width, rate), on one or
more runs (split seeds), every variant on the same rows, split and seeds.

A finished multi-scale run's cached pooled features hold the single-scale ones too (the head concatenates the
taps shallow first and the pooled last map last), so both variants train on the very same cached rows, split
and recipe — the stage's own phase 1 (`neurocascade.hierarchy.train.run_phase`) — at the cost of a few head trainings.

    python -m neurocascade.results.probe runs/results/C-seed0/cascade [--data DIR]    # prints and writes probe.json
    python -m neurocascade.results.probe --recipes runs/results/C-seed0/cascade runs/results/C-seed1/cascade \
        --variant ls0.1=train.label_smoothing=0.1 --variant wide=model.head_units=512,model.dropout=0.5 \
        --out runs/probe-recipes.json
"""

from __future__ import annotations

import functools
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from neurocascade.data.dataset import load_dataset
from neurocascade.models.build import build_classifier, extra_tap_layers
from neurocascade.models.weights import WeightsSource
from neurocascade.hierarchy.artifacts import RunManifest
from neurocascade.hierarchy.features import ActivationCache, activation_key, cache_key
from neurocascade.hierarchy.stages import STAGES
from neurocascade.eval.scores import macro_f1_of_probs
from neurocascade.hierarchy.engine import EpochBudget
from neurocascade.hierarchy.train import Reporter, build_stage_head, run_phase
from neurocascade.config import ModelConfig, load_config
from neurocascade.errors import ConfigError
from neurocascade.io import write_json
from neurocascade.paths import cache_root as default_cache_root
from neurocascade.tf import keras


def pooled_features(
    run: Path, data: str | None, cache_root: Path
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray, int]:
    """(pooled rows per training pass, validation rows, train labels, val labels, last map width) of `run`; the
    rows hold the extra backbones' columns first when a stage of the run carries them (`extra_columns`)."""
    cfg = load_config(run / "config.toml")
    manifest = RunManifest.read(run / "manifest.json")
    if len(cfg.model.backbone_groups(manifest.stages, cfg.data.image_size)) > 1:
        raise SystemExit(
            f"{run}: its models' backbones see different image sizes (model.backbone_size), so their "
            "rows are in two caches; the probe reads one: probe a run of one size"
        )
    cfg = replace(cfg, model=cfg.model.for_stages(manifest.stages))  # what the run's shared cache was built for
    ds = load_dataset(cfg, data or manifest.dataset["root"], pixels=False)
    cache = ActivationCache(cache_root / cache_key(activation_key(cfg, dict(manifest.weights), manifest.cut)))
    hashes = {role: [ds.scans[k].sha256 for k in ds.indices(role)] for role in ("train", "val")}

    def rows(name: str, role: str) -> np.ndarray:
        missing = [h for h in hashes[role] if not cache.path(name, h).exists()]
        if missing:
            raise SystemExit(f"{run}: {len(missing)} cached rows of {name} missing; train the run first")
        return cache.get(name, hashes[role], compute=lambda positions: None)

    passes = ["pooled-pass-clean"] + [f"pooled-pass-aug{k}" for k in range(1, cfg.train.aug_passes + 1)]
    template = build_classifier(cfg.model, 2, cfg.data.image_size, WeightsSource("none"))
    last = template.get_layer("head_gap").output_shape[-1]
    return (
        [rows(p, "train") for p in passes],
        rows("pooled-pass-clean", "val"),
        ds.labels("train"),
        ds.labels("val"),
        last,
    )


def probe(run: Path, data: str | None = None, cache_root: Path | None = None) -> dict:
    """Best phase-1 validation macro-F1 per stage with the last map's features and with every tap."""
    cfg = load_config(run / "config.toml")
    train, val, y4, y4_val, last = pooled_features(run, data, cache_root or default_cache_root())
    variants = {"last map": slice(train[0].shape[1] - last, None), "multi-scale": slice(None)}
    out: dict = {
        "run": str(run),
        "features": {name: len(range(train[0].shape[1])[cols]) for name, cols in variants.items()},
        "val_macro_f1": {},
    }
    for stage_name in ("gate", "subtype", "flat"):
        rows, rows_val = stage_rows(stage_name, cfg, run, train, val)
        for name, cols in variants.items():
            score, _ = _phase1_head(stage_name, cfg, [p[:, cols] for p in rows], rows_val[:, cols], y4, y4_val)
            out["val_macro_f1"].setdefault(stage_name, {})[name] = round(score, 4)
            print(f"{run.name} {stage_name:8s} {name:12s} val macro-F1 {score:.4f}", flush=True)
    write_json(run / "probe.json", out)
    return out


@functools.lru_cache(maxsize=8)
def extra_columns(model: ModelConfig, image_size: int) -> int:
    """How many leading columns of the pooled rows the extra backbones of `model` fill (their taps come first);
    cached, as every head of a probe asks and the answer needs a built model."""
    if not model.extra_backbones:
        return 0
    template = build_classifier(model, 2, image_size, WeightsSource("none"))
    return sum(int(layer.output.shape[-1]) for layer in extra_tap_layers(template, model.extra_backbones))


def stage_rows(
    stage_name: str, cfg, run: Path, train: list[np.ndarray], val: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """The pooled rows of `run` as the stage's model sees them: without the extra backbones' columns for a stage
    that `model.extra_backbone_stages` leaves out when the run's cache holds them."""
    run_stages = RunManifest.read(run / "manifest.json").stages
    if not cfg.model.for_stages(run_stages).extra_backbones or cfg.model.for_stages((stage_name,)).extra_backbones:
        return train, val
    skip = extra_columns(cfg.model, cfg.data.image_size)
    return [p[:, skip:] for p in train], val[:, skip:]


def _phase1_head(
    stage_name: str, cfg, train: list[np.ndarray], val: np.ndarray, y4: np.ndarray, y4_val: np.ndarray
) -> tuple[float, np.ndarray]:
    """The stage's best phase-1 validation macro-F1 under `cfg`, as training runs it, and its validation
    probabilities (rows of the stage's validation images)."""
    stage = STAGES[stage_name]
    mask, y = stage.select(y4)
    val_mask, y_val = stage.select(y4_val)
    x = [p[mask] for p in train]
    head = build_stage_head(stage.name, x[0].shape[1], len(stage.classes), cfg)
    with tempfile.TemporaryDirectory() as tmp:
        state = run_phase(
            "phase1",
            stage,
            head,
            keras.optimizers.Adam(cfg.train.phase1_lr),
            cfg.train.phase1_epochs,
            cfg.train.patience,
            Path(tmp),
            x,
            y,
            val[val_mask],
            y_val,
            cfg,
            Reporter(),
            EpochBudget(None),
            baseline=False,
        )
    return state.best_score, head.predict(val[val_mask], verbose=0)


def _label(run: Path) -> str:
    return f"{run.parent.name}/{run.name}"


def probe_recipes(
    runs: list[Path],
    variants: dict[str, list[str]],
    data: str | None = None,
    cache_root: Path | None = None,
    seeds: int = 1,
    stages: tuple[str, ...] = ("gate", "subtype", "flat"),
) -> dict:
    """Phase-1 validation macro-F1 per variant (config overrides on each run's own config), stage and run,
    averaged over `seeds` head seeds (`train.seed` 0..seeds-1: initial weights, shuffling, dropout; the split
    and the cached rows stay the run's): one head's score moves by a point or two with its seed alone.
    `stages` narrows the probe to the models a lever is meant for."""
    table: dict = {}
    ensembles: dict = {}
    for run in runs:
        train, val, y4, y4_val, _ = pooled_features(run, data, cache_root or default_cache_root())
        for name, overrides in variants.items():
            for stage_name in stages:
                heads = []
                for s in range(seeds):
                    cfg = load_config(run / "config.toml", [*overrides, f"train.seed={s}"])
                    passes = 1 + cfg.train.aug_passes  # a variant may use fewer of the cached passes than the run
                    if passes > len(train):
                        raise ConfigError(f"{run}: {passes - 1} augmented passes asked, {len(train) - 1} cached")
                    rows, rows_val = stage_rows(stage_name, cfg, run, train[:passes], val)
                    heads.append(_phase1_head(stage_name, cfg, rows, rows_val, y4, y4_val))
                scores = [score for score, _ in heads]
                table.setdefault(name, {}).setdefault(stage_name, {})[_label(run)] = round(float(np.mean(scores)), 4)
                line = f"{_label(run)} {name:16s} {stage_name:8s} val macro-F1 {np.mean(scores):.4f}"
                if seeds > 1:  # the seeds' heads as one model: their probabilities averaged
                    stage = STAGES[stage_name]
                    y_val = stage.select(y4_val)[1]
                    ens = macro_f1_of_probs(y_val, np.mean([probs for _, probs in heads], axis=0), len(stage.classes))
                    ensembles.setdefault(name, {}).setdefault(stage_name, {})[_label(run)] = round(ens, 4)
                    line += f" ({' '.join(f'{v:.3f}' for v in scores)}; their average {ens:.4f})"
                print(line, flush=True)

    def mean_over_runs(scores: dict) -> dict:
        return {
            name: {stage: round(float(np.mean(list(by_run.values()))), 4) for stage, by_run in stages.items()}
            for name, stages in scores.items()
        }

    return {
        "runs": [str(r) for r in runs],
        "variants": variants,
        "seeds": seeds,
        "val_macro_f1": table,
        "mean": mean_over_runs(table),
        "seed_ensemble_val_macro_f1": ensembles,
        "seed_ensemble_mean": mean_over_runs(ensembles),
    }


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m neurocascade.results.probe", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data")
    parser.add_argument("--recipes", action="store_true", help="compare config variants instead of taps")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=KEY=VALUE[,KEY=VALUE]")
    parser.add_argument("--seeds", type=int, default=1, help="head seeds per variant (--recipes)")
    parser.add_argument("--out", type=Path, help="JSON for --recipes  [default: print only]")
    parser.add_argument("--stages", default="gate,subtype,flat", help="models to probe (--recipes), comma-separated")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override applied to every variant (--recipes), e.g. a run trained short for its cached rows only",
    )
    args = parser.parse_args(argv)
    if not args.recipes:
        probe(args.runs[0], args.data)
        return
    variants = {"base": list(args.set)}
    for text in args.variant:
        name, _, overrides = text.partition("=")
        variants[name] = [*args.set, *(o for o in overrides.split(",") if o)]
    stages = tuple(s for s in args.stages.split(",") if s)
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"--stages: unknown model(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    result = probe_recipes(args.runs, variants, args.data, seeds=args.seeds, stages=stages)
    for key, title in (("mean", "mean"), ("seed_ensemble_mean", "average of the seeds' heads")):
        for name, stages in result[key].items():
            print(f"{title} {name:16s} " + "  ".join(f"{s} {v:.4f}" for s, v in stages.items()))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main(sys.argv[1:])
