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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from neurocascade.data.dataset import load_dataset
from neurocascade.models.build import build_classifier, extra_tap_layers
from neurocascade.models.weights import WeightsSource
from neurocascade.hierarchy.artifacts import RunManifest
from neurocascade.hierarchy.features import ActivationCache, activation_key, cache_key
from neurocascade.hierarchy.run import CUT_SEPARATOR
from neurocascade.hierarchy.stages import STAGES
from neurocascade.eval.scores import macro_f1_of_probs
from neurocascade.hierarchy.engine import EpochBudget
from neurocascade.hierarchy.train import Reporter, build_stage_head, run_phase
from neurocascade.config import ModelConfig, load_config
from neurocascade.errors import ConfigError
from neurocascade.io import write_json
from neurocascade.paths import cache_root as default_cache_root
from neurocascade.tf import keras


@dataclass(frozen=True)
class StageRows:
    """What one model reads from a run's activation cache: its pooled rows per training pass (clean first), its
    validation rows, and how many of the last columns are the pooled last map (the taps come before them)."""

    train: list[np.ndarray]
    val: np.ndarray
    last: int


@functools.lru_cache(maxsize=8)
def extra_columns(model: ModelConfig, image_size: int) -> int:
    """How many leading columns of the pooled rows the extra backbones of `model` fill (their taps come first);
    cached, as every head of a probe asks and the answer needs a built model."""
    if not model.extra_backbones:
        return 0
    template = build_classifier(model, 2, image_size, WeightsSource("none"))
    return sum(int(layer.output.shape[-1]) for layer in extra_tap_layers(template, model.extra_backbones))


def pooled_features(
    run: Path, data: str | None, cache_root: Path
) -> tuple[dict[str, StageRows], np.ndarray, np.ndarray]:
    """The pooled rows each model reads (`StageRows` by stage name), then the train and validation labels of `run`.

    A run whose models see different image sizes (`model.backbone_size`) has one cache per size; each stage reads
    the cache of its own size, a stage the run did not train too (the flat model on a cascade run), and a stage
    whose size the run has no cache for is left out. A stage without the extra backbones reads the rows without
    their columns when its cache holds them.
    """
    cfg = load_config(run / "config.toml")
    manifest = RunManifest.read(run / "manifest.json")
    size = cfg.data.image_size
    if cfg.model.backbone_from:
        raise SystemExit(f"{run}: its models start from another run's backbone (model.backbone_from); probe that run")
    groups = cfg.model.backbone_groups(manifest.stages, size)
    cuts = manifest.cut.split(CUT_SEPARATOR)
    if len(cuts) != len(groups):
        raise SystemExit(f"{run}: its manifest names {len(cuts)} cut(s) for {len(groups)} image size(s); retrain it")
    ds = load_dataset(cfg, data or manifest.dataset["root"], pixels=False)
    hashes = {role: [ds.scans[k].sha256 for k in ds.indices(role)] for role in ("train", "val")}
    passes = ["pooled-pass-clean"] + [f"pooled-pass-aug{k}" for k in range(1, cfg.train.aug_passes + 1)]

    def seen_size(model: ModelConfig) -> int:
        return model.resized_size(size) or size

    by_size: dict[int, tuple[ModelConfig, StageRows]] = {}
    for group, cut in zip(groups, cuts):
        model = cfg.model.for_stages(group)  # what the group's shared cache was built for
        shared = replace(cfg, model=model)
        cache = ActivationCache(cache_root / cache_key(activation_key(shared, dict(manifest.weights), cut)))
        template = build_classifier(model, 2, size, WeightsSource("none"))
        last = template.get_layer("head_gap").output_shape[-1]
        train = [_cached_rows(run, cache, p, hashes["train"]) for p in passes]
        by_size[seen_size(model)] = (model, StageRows(train, _cached_rows(run, cache, passes[0], hashes["val"]), last))
    out = {}
    for stage in STAGES:
        own = cfg.model.for_stages((stage,))
        if (entry := by_size.get(seen_size(own))) is None:
            continue
        model, found = entry
        skip = 0 if own.extra_backbones else extra_columns(model, size)
        out[stage] = StageRows([p[:, skip:] for p in found.train], found.val[:, skip:], found.last)
    return out, ds.labels("train"), ds.labels("val")


def _cached_rows(run: Path, cache: ActivationCache, name: str, hashes: list[str]) -> np.ndarray:
    """The cached rows `name` of the images `hashes`: a probe reads what training cached and never computes."""
    missing = [h for h in hashes if not cache.path(name, h).exists()]
    if missing:
        raise SystemExit(f"{run}: {len(missing)} cached rows of {name} missing; train the run first")
    return cache.get(name, hashes, compute=lambda positions: None)


def probe(run: Path, data: str | None = None, cache_root: Path | None = None) -> dict:
    """Best phase-1 validation macro-F1 per stage with the last map's features and with every tap."""
    cfg = load_config(run / "config.toml")
    rows, y4, y4_val = pooled_features(run, data, cache_root or default_cache_root())
    out: dict = {"run": str(run), "features": {}, "val_macro_f1": {}}
    for stage_name, stage_rows in rows.items():
        width = stage_rows.train[0].shape[1]
        variants = {"last map": slice(width - stage_rows.last, None), "multi-scale": slice(None)}
        out["features"][stage_name] = {name: len(range(width)[cols]) for name, cols in variants.items()}
        for name, cols in variants.items():
            train = [p[:, cols] for p in stage_rows.train]
            score, _ = _phase1_head(stage_name, cfg, train, stage_rows.val[:, cols], y4, y4_val)
            out["val_macro_f1"].setdefault(stage_name, {})[name] = round(score, 4)
            print(f"{run.name} {stage_name:8s} {name:12s} val macro-F1 {score:.4f}", flush=True)
    write_json(run / "probe.json", out)
    return out


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
        rows, y4, y4_val = pooled_features(run, data, cache_root or default_cache_root())
        if missing := [stage for stage in stages if stage not in rows]:
            raise SystemExit(f"{run}: no cached rows at the image size {missing[0]} sees; probe a run that has them")
        for name, overrides in variants.items():
            for stage_name in stages:
                heads = []
                for s in range(seeds):
                    cfg = load_config(run / "config.toml", [*overrides, f"train.seed={s}"])
                    passes = 1 + cfg.train.aug_passes  # a variant may use fewer of the cached passes than the run
                    cached = rows[stage_name]
                    if passes > len(cached.train):
                        raise ConfigError(f"{run}: {passes - 1} augmented passes asked, {len(cached.train) - 1} cached")
                    heads.append(_phase1_head(stage_name, cfg, cached.train[:passes], cached.val, y4, y4_val))
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
