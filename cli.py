#!/usr/bin/env python
"""NeuroCascade command line. Each command parses, calls one documented function, renders the result.

    neurocascade make-phantoms --out runs/phantoms      # installed; or python -m neurocascade, python cli.py
    neurocascade audit-data runs/phantoms --sheet

Defaults never point into the installed package: runs go to ./runs (or $NEUROCASCADE_RUNS) and `--config`
takes a file or a built-in name (neurocascade.paths).

A user's mistake (bad path, config typo, unreadable data, an output that would be overwritten) prints one
line and exits with status 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from neurocascade.errors import UserError
from neurocascade.paths import resolve_config, runs_root
from neurocascade.version import version

DEFAULT_CONFIG = "default"  # a built-in config's name (neurocascade.paths.resolve_config)
CONFIG_HELP = "TOML config file, or a built-in config's name (default, demo, lite2, test, ...)."


class Cli(click.Group):
    """A click group that turns `UserError` into one line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except PermissionError as exc:  # a read-only output folder or an unreadable input: the user's to fix
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(
                f"error: {exc.filename or 'a file'}: {exc.strerror or 'permission denied'}; "
                "choose a folder you can write to (or a file you can read)",
                err=True,
            )
            ctx.exit(2)


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=DEFAULT_CONFIG,
    show_default=True,
    help=CONFIG_HELP,
)
set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Override a config key (repeatable), e.g. --set data.image_size=128.",
)
export_set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Override an [export] key of the run's config (repeatable), e.g. --set export.qat=false.",
)


def export_dir_of(models_dir: str | None, run_dir: str | None) -> Path:
    """One convention for 'which exported models': --run RUN (its export/) or --models EXPORT_DIR, not both."""
    if bool(models_dir) == bool(run_dir):
        raise UserError(
            "give the models as --run RUN (a training run, its export/) or --models EXPORT_DIR, one of them"
        )
    return Path(models_dir) if models_dir else Path(run_dir) / "export"


BACKEND_VARIANT = {"tflite-int8": "int8", "tflite-float": "float32"}  # the LiteRT backends of eval, by model file


def refuse_run_folder(path: Path) -> None:
    """A training run folder (config.toml with manifest.json or run.json) is never a report folder: --force
    would overwrite the run's own config.toml."""
    if (path / "config.toml").is_file() and ((path / "manifest.json").is_file() or (path / "run.json").is_file()):
        raise UserError(
            f"{path}: is a training run; its files are not overwritten, not even with --force; choose another --out"
        )


def fresh_dir(path: Path, force: bool = False) -> Path:
    """Refuse to write into a non-empty directory unless `force`: results are never silently overwritten."""
    if path.exists() and any(path.iterdir()) and not force:
        raise UserError(f"{path}: output directory exists and is not empty; choose another --out or pass --force")
    path.mkdir(parents=True, exist_ok=True)
    return path


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.version_option(
    version(), "--version", prog_name="neurocascade", message="%(prog)s %(version)s", help="Show the version and exit."
)
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """NeuroCascade: a two-stage brain-MRI classifier (tumour gate → subtype), honestly evaluated."""
    ctx.ensure_object(dict)["debug"] = debug


@main.command("make-phantoms")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder to create (must not exist).")
@click.option("--n-per-class", type=int, help="Images per class, train + test.  [default: from config]")
@click.option("--size", type=int, help="Image side in pixels.  [default: from config]")
@click.option("--seed", type=int, help="Random seed.  [default: from config]")
@config_option
@set_option
def make_phantoms_cmd(
    out: str, n_per_class: int | None, size: int | None, seed: int | None, config_path: str, overrides: tuple[str, ...]
) -> None:
    """Write a synthetic brain-MRI phantom dataset in the Kaggle folder layout."""
    from neurocascade.data.phantoms import Lesions, write_phantom_dataset
    from neurocascade.config import load_config
    from neurocascade.console import out as console, progress_bar

    flags = {"n_per_class": n_per_class, "size": size, "seed": seed}
    cfg = load_config(config_path, [*overrides, *(f"phantoms.{k}={v}" for k, v in flags.items() if v is not None)])
    p = cfg.phantoms
    target = Path(out)
    if target.exists() and any(target.iterdir()):
        raise UserError(f"{target}: output directory exists and is not empty; choose another --out")
    with progress_bar("phantoms", total=4 * p.n_per_class) as (advance, _):
        info = write_phantom_dataset(
            target,
            n_per_class=p.n_per_class,
            size=p.size,
            seed=p.seed,
            test_fraction=p.test_fraction,
            copies_fraction=p.copies_fraction,
            lesions=Lesions(p.lesion_scale, p.lesion_contrast, p.hard_fraction),
            progress=advance,
        )
    counts = info.get("counts", {})
    console.print(
        f"wrote {sum(sum(c.values()) for c in counts.values())} phantom images to {target} "
        f"(size {p.size}, seed {p.seed}, {len(info.get('copies', []))} planted copies)"
    )


@main.command("audit-data")
@click.argument("data_arg", metavar="[DATA]", required=False)
@click.option(
    "--data",
    "data_opt",
    help="Dataset folder or CSV manifest (a positional DATA also works).  [default: data.root of the config]",
)
@click.option("--out", type=click.Path(file_okay=False), help="Report folder.  [default: runs/audit-<dataset>]")
@click.option("--sheet", is_flag=True, help="Also write a contact sheet of the pairs nearest the threshold.")
@click.option("--force", is_flag=True, help="Overwrite an existing report folder.")
@config_option
@set_option
def audit_data_cmd(
    data_arg: str | None,
    data_opt: str | None,
    out: str | None,
    sheet: bool,
    force: bool,
    config_path: str,
    overrides: tuple[str, ...],
) -> None:
    """Find exact, near and mirrored copies within and across splits; report what the protocol drops."""
    if data_arg and data_opt and data_arg != data_opt:
        raise UserError(f"two datasets given ({data_arg} and --data {data_opt}); give one")
    data_dir = data_opt or data_arg
    from neurocascade.data.audit_sheet import write_contact_sheet
    from neurocascade.data.audit_tables import leak_table, pairs_table, summary_table
    from neurocascade.data.dataset import dataset_root, load_dataset
    from neurocascade.config import load_config, to_toml
    from neurocascade.console import out as console, progress_bar
    from neurocascade.io import atomic_write_text, write_json

    cfg = load_config(config_path, overrides)
    source = dataset_root(cfg, data_dir)
    report_dir = Path(out) if out else runs_root() / f"audit-{source.stem}"
    refuse_run_folder(report_dir)
    start = time.perf_counter()
    with progress_bar("hashing images") as (advance, set_total):
        ds = load_dataset(cfg, data_dir, pixels=False, progress=advance, on_total=set_total)
    seconds = time.perf_counter() - start
    fresh_dir(report_dir, force)
    report = {
        "dataset": str(source),
        "fingerprint": ds.fingerprint,
        "audit": ds.audit,
        "split": ds.split,
        "seconds": round(seconds, 2),
    }
    write_json(report_dir / "audit.json", report)
    atomic_write_text(report_dir / "config.toml", to_toml(cfg))
    for table in (summary_table(ds.audit, ds.split, seconds), leak_table(ds.audit), pairs_table(ds.audit, ds.split)):
        if table is not None:
            console.print(table)
    if sheet:
        n = write_contact_sheet(
            report_dir / "sheet.png",
            ds.pairs,
            ds.scans,
            [s.label for s in ds.samples],
            cfg.audit.near_threshold,
            ds.root,
            n=cfg.audit.sheet_pairs,
        )
        console.print(f"contact sheet: {report_dir / 'sheet.png'} ({n} pairs)")
    console.print(f"report: {report_dir / 'audit.json'}")


def _train(
    stages: tuple[str, ...],
    config_path: str,
    data: str | None,
    out: str | None,
    overrides: tuple[str, ...],
    resume: bool,
) -> None:
    """Shared body of train-cascade and train-flat: load config, train, render the summary."""
    from neurocascade.hierarchy.progress import RichReporter
    from neurocascade.hierarchy.run import run_role, train_models
    from neurocascade.hierarchy.summary import summary_table
    from neurocascade.config import load_config
    from neurocascade.console import err, out as console, progress_bar

    if resume and overrides:
        raise UserError("--resume continues a run with the config it started with; drop --set")
    cfg = load_config(config_path, overrides)
    explicit = click.get_current_context().get_parameter_source("config_path") != click.core.ParameterSource.DEFAULT
    # --resume uses the run's own config; a --config given with it must be that config (checked by train_models).
    run_cfg = cfg if explicit or not resume else None
    kind = "flat" if stages == ("flat",) else "cascade"
    run_dir = Path(out) if out else runs_root() / f"{kind}-{Path(config_path).stem}"
    try:
        with RichReporter() as reporter:
            summary = train_models(
                run_cfg, stages, run_dir, data=data, resume=resume, reporter=reporter, progress_factory=progress_bar
            )
    except KeyboardInterrupt:
        err.print(f"interrupted: the last completed epoch is saved; continue with --out {run_dir} --resume")
        sys.exit(130)
    role = run_role(run_cfg, run_dir, resume)
    if not role.chief:  # a multi_worker run's other workers: the run, its summary and export are the chief's
        console.print(f"{role.name} of {role.count}: trained with the chief, which writes the run")
        return
    if summary["weights"]["warning"]:
        err.print(f"[bold red]WARNING[/]: {summary['weights']['warning']}")
    console.print(summary_table(summary))
    for name, info in summary["stages"].items():
        weights = ", ".join(f"{c} {w:.2f}" for c, w in info["class_weights"].items())
        console.print(f"{name} class weights ({cfg.train.class_weight}, from the training split): {weights}")
    console.print(f"run: {run_dir}")
    if load_config(run_dir / "config.toml").export.after_training:
        _export(run_dir, data)
    else:
        console.print(f"export to TFLite (float32 and INT8): python cli.py export --run {run_dir}")


def _export(run_dir: Path, data: str | None, overrides: tuple[str, ...] = (), check_files: bool = False) -> None:
    """Export a run; `check_files`: first check its images hold the bytes it was trained on (not needed right
    after its training)."""
    from neurocascade.edge.export import agreement_table, export_run
    from neurocascade.edge.shift_store import SHIFTS_FOLDER
    from neurocascade.hierarchy.ownership import check_files_unchanged
    from neurocascade.console import err, out as console, warn
    from neurocascade.paths import cache_root

    if check_files:
        check_files_unchanged(run_dir, data, warn)
    report = export_run(
        run_dir,
        data=data,
        progress=lambda message: err.print(message, highlight=False),
        overrides=overrides,
        shift_store=cache_root() / SHIFTS_FOLDER,
    )
    console.print(agreement_table(report))
    if report.get("flagged"):
        err.print(
            f"[bold red]FLAGGED[/]: INT8 agreement below {report.get('min_agreement', 'the minimum')} for "
            f"{', '.join(report['flagged'])}; see {run_dir / 'export' / 'agreement.json'}"
        )
    console.print(f"export: {run_dir / 'export'}")


def train_options(fn):
    fn = click.option("--resume", is_flag=True, help="Continue an interrupted run from its last completed epoch.")(fn)
    fn = set_option(fn)
    fn = click.option(
        "--out", type=click.Path(file_okay=False), help="Run directory.  [default: runs/<kind>-<config>]"
    )(fn)
    fn = click.option("--data", help="Dataset folder or CSV manifest.  [default: data.root of the config]")(fn)
    return config_option(fn)


@main.command("train-cascade")
@train_options
def train_cascade_cmd(
    config_path: str, data: str | None, out: str | None, overrides: tuple[str, ...], resume: bool
) -> None:
    """Train the tumour gate and the subtype model (two phases each) and choose the gate threshold."""
    _train(("gate", "subtype"), config_path, data, out, overrides, resume)


@main.command("train-flat")
@train_options
def train_flat_cmd(
    config_path: str, data: str | None, out: str | None, overrides: tuple[str, ...], resume: bool
) -> None:
    """Train the flat four-class baseline under the same budget as the cascade."""
    _train(("flat",), config_path, data, out, overrides, resume)


@main.command("eval")
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False),
    help="Cascade (or flat) run directory.  [default: runs/cascade-<config>, as train-cascade names it]",
)
@click.option(
    "--flat", "flat_dir", type=click.Path(file_okay=False), help="Flat baseline run, scored on the same images."
)
@click.option("--compare-flat", is_flag=True, help="Also score the flat baseline (--flat, default runs/flat-<config>).")
@click.option(
    "--config",
    "config_path",
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Only names the default run directories; the runs' own configs are used.",
)
@click.option(
    "--split",
    type=click.Choice(["test", "val"]),
    default="test",
    show_default=True,
    help="Which held-out split of the run to score.",
)
@click.option(
    "--backend",
    type=click.Choice(["keras", "tflite-float", "tflite-int8"]),
    default="keras",
    show_default=True,
    help="The trained Keras models, or the exported LiteRT float32 or INT8 files.",
)
@click.option("--data", help="Dataset path.  [default: the one the run was trained on]")
@click.option(
    "--ensemble",
    multiple=True,
    type=click.Path(file_okay=False),
    metavar="RUN",
    help="Also score the soft vote of these runs (repeatable).",
)
@click.option(
    "--external",
    type=click.Path(),
    metavar="DIR_OR_CSV",
    help="Score your own labelled images instead of the run's split: a folder of class folders "
    "(JPEG/PNG/DICOM) or a CSV manifest path,label. First audits them for copies of the training "
    "images (then --data is where those are); results go to RUN/eval/external-<name>-<backend>/.",
)
@click.option(
    "--external-name",
    metavar="NAME",
    help="Name of the --external results folder.  [default: the folder's or manifest's name]",
)
def eval_cmd(
    run_dir: str | None,
    flat_dir: str | None,
    compare_flat: bool,
    config_path: str,
    split: str,
    backend: str,
    data: str | None,
    ensemble: tuple[str, ...],
    external: str | None,
    external_name: str | None,
) -> None:
    """Cascade vs flat four-class metrics with 95% CIs, confusion matrices, confident errors, reports."""
    from neurocascade.eval.report_text import confusion_table, errors_table, side_by_side_table
    from neurocascade.eval.run import evaluate, explain_errors
    from neurocascade.console import out as console, warn

    stem = Path(config_path).stem
    run_dir = run_dir or str(runs_root() / f"cascade-{stem}")
    if compare_flat and not flat_dir:
        flat_dir = str(runs_root() / f"flat-{stem}")
    if external is None and external_name is not None:
        raise UserError("--external-name names the results of --external; give --external DIR_OR_CSV too")
    if external is not None:
        if click.get_current_context().get_parameter_source("split") != click.core.ParameterSource.DEFAULT:
            raise UserError("--split chooses a split of the run's own data; --external scores every image of yours")
        _eval_external(
            Path(run_dir),
            Path(external),
            Path(flat_dir) if flat_dir else None,
            backend,
            data,
            [Path(p) for p in ensemble],
            external_name,
        )
        return
    report, out_dir = evaluate(
        Path(run_dir),
        Path(flat_dir) if flat_dir else None,
        split,
        backend,
        data,
        [Path(p) for p in ensemble],
        explain=explain_errors,
        warn=warn,
    )
    for name in report["models"]:
        console.print(confusion_table(report, name))
    for name in report["models"]:
        if report["models"][name]["most_confident_errors"]:
            console.print(errors_table(report, name))
    console.print(side_by_side_table(report, console.width))
    console.print(f"report: {out_dir / 'report.md'}; per-image predictions: {out_dir / 'predictions.csv'}")
    console.print(f"open in a browser: {out_dir / 'report.html'}")


def _eval_external(
    run: Path, external: Path, flat: Path | None, backend: str, data: str | None, ensemble: list[Path], name: str | None
) -> None:
    """`eval --external`: the copy audit and all images vs no copy in training, on the terminal and on disk."""
    from neurocascade.eval.external import evaluate_external
    from neurocascade.eval.external_text import all_vs_no_copy_table, copy_table
    from neurocascade.eval.run import explain_errors
    from neurocascade.console import out as console, warn

    report, out_dir = evaluate_external(
        run, external, flat, backend, data, ensemble, name, explain=explain_errors, warn=warn
    )
    console.print(copy_table(report))
    console.print(all_vs_no_copy_table(report, console.width))
    console.print(f"report: {out_dir / 'report.md'}; per-image predictions and copies: {out_dir / 'predictions.csv'}")


@main.command("export")
@click.option("--run", "run_dir", type=click.Path(file_okay=False), required=True, help="Training run directory.")
@click.option("--data", help="Dataset path.  [default: the one the run was trained on]")
@export_set_option
def export_cmd(run_dir: str, data: str | None, overrides: tuple[str, ...]) -> None:
    """QAT (or post-training) full-INT8 and float32 TFLite, sidecars, and the INT8-vs-Keras agreement check."""
    _export(Path(run_dir), data, overrides, check_files=True)


@main.command("quant-debug")
@click.option("--run", "run_dir", type=click.Path(file_okay=False), required=True, help="Training run directory.")
@click.option("--data", help="Dataset path.  [default: the one the run was trained on]")
@click.option(
    "--stage", "stages", multiple=True, help="Only this model (repeatable).  [default: every model of the run]"
)
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=1), help="Rows of each table.")
@set_option
def quant_debug_cmd(
    run_dir: str, data: str | None, stages: tuple[str, ...], top: int, overrides: tuple[str, ...]
) -> None:
    """Per-layer INT8 error on validation images (QuantizationDebugger) → RUN/quant-debug/<stage>.json."""
    from neurocascade.edge.quant_debug import FOLDER, debug_run, worst_layers_table
    from neurocascade.console import err, out as console

    reports = debug_run(
        Path(run_dir), data, overrides, stages, progress=lambda message: err.print(message, highlight=False)
    )
    for report in reports.values():
        console.print(worst_layers_table(report, top))
    console.print(f"quant-debug: {Path(run_dir) / FOLDER}")


@main.command("predict")
@click.option("--run", "run_dir", type=click.Path(file_okay=False), help="Training run whose export/ is used.")
@click.option(
    "--models",
    "models_dir",
    type=click.Path(file_okay=False),
    help="Export directory (runs/NAME/export, or an unpacked bundle's export/): a cascade's gate + "
    "subtype, or a flat model.",
)
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--backend",
    type=click.Choice([*BACKEND_VARIANT, "auto"]),
    help="Which exported files run, as in eval --backend; auto: the faster of the two on this host, timed at "
    "load, float32 unless INT8 is clearly faster (the choice is printed).  [default: tflite-int8]",
)
@click.option(
    "--variant",
    type=click.Choice(["int8", "float32"]),
    hidden=True,
    help="Deprecated: --backend tflite-int8 / tflite-float.",
)
@click.option("--threads", type=int, help="LiteRT threads.  [default: LiteRT's choice]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout instead of a table.")
def predict_cmd(
    run_dir: str | None,
    models_dir: str | None,
    paths: tuple[str, ...],
    backend: str | None,
    variant: str | None,
    threads: int | None,
    as_json: bool,
) -> None:
    """Classify images with the exported LiteRT models (no TensorFlow needed)."""
    import json

    from neurocascade.edge.fastest import load_fastest
    from neurocascade.edge.predict import load_predictor, predict_rows, predict_table
    from neurocascade.edge.runtime import check_threads
    from neurocascade.console import err, out as console, warn

    if backend and variant and BACKEND_VARIANT.get(backend) != variant:
        raise UserError(f"--backend {backend} and --variant {variant} disagree; give --backend only")
    if message := check_threads(threads):
        warn(message)
    export_dir = export_dir_of(models_dir, run_dir)
    if backend == "auto":
        predictor, choice = load_fastest(export_dir, threads)
        variant = choice.variant
        err.print(choice.text(), highlight=False, soft_wrap=True)
    else:
        variant = BACKEND_VARIANT[backend] if backend else variant or "int8"
        predictor = load_predictor(export_dir, variant, threads)
    rows = predict_rows(predictor, variant, list(paths))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        console.print(predict_table(rows))


@main.command("bundle")
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False),
    required=True,
    help="Run directory whose export/ is packed (verified against its manifest first).",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Archive path.  [default: RUN/<run>-edge.tar.gz]")
@click.option("--force", is_flag=True, help="Overwrite an existing archive.")
def bundle_cmd(run_dir: str, out: str | None, force: bool) -> None:
    """One .tar.gz for a Raspberry Pi: the verified export, the edge code, pinned requirements, a README."""
    from neurocascade.edge.bundle import write_bundle
    from neurocascade.console import out as console

    path = write_bundle(Path(run_dir), out, force)
    console.print(
        f"bundle: {path} ({path.stat().st_size / 2**20:.1f} MiB); on the device: tar xzf {path.name}, "
        "then see its README.md"
    )


@main.command("edge-bench")
@click.option("--run", "run_dir", type=click.Path(file_okay=False), help="Cascade run (its export/).")
@click.option(
    "--models",
    "models_dir",
    type=click.Path(file_okay=False),
    help="The cascade's export directory instead of --run (e.g. an unpacked bundle's export/).",
)
@click.option("--flat", "flat_dir", type=click.Path(file_okay=False), help="Flat run to compare (its export/).")
@click.option("--threads", default="1,2", show_default=True, help="Comma-separated LiteRT thread counts.")
@click.option("--cores", type=int, help="Pin the benchmark to this many cores.")
@click.option(
    "--profile",
    type=click.Choice(["host", "rpi4-cores", "rpi5-cores", "rpi4", "rpi5"]),
    default="host",
    show_default=True,
    help="rpi4-cores/rpi5-cores (old names rpi4/rpi5): pin to 4 cores (or what there "
    "is) with as many threads: a Pi's core count on this CPU, not an ARM measurement.",
)
@click.option("--runs", type=int, default=200, show_default=True, help="Timed inferences per model and thread count.")
@click.option("--warmup", type=int, default=20, show_default=True, help="Untimed inferences before the timed ones.")
@click.option(
    "--prevalence",
    type=float,
    default=0.5,
    show_default=True,
    help="Tumour prevalence for the expected cascade latency.",
)
@click.option(
    "--images",
    "image_paths",
    multiple=True,
    help="Image files or folders for the cascade's real mix.  [default: random]",
)
@click.option("--max-images", type=int, default=100, show_default=True, help="At most this many of --images.")
@click.option("--profile-ops", is_flag=True, help="Op types, INT8 vs float, XNNPACK delegation, latency without it.")
@click.option(
    "--out", "json_out", type=click.Path(dir_okay=False), help="Report path (JSON).  [default: EXPORT_DIR/bench.json]"
)
@click.option("--json", "json_old", type=click.Path(dir_okay=False), hidden=True, help="Deprecated: --out.")
def edge_bench_cmd(
    run_dir: str | None,
    models_dir: str | None,
    flat_dir: str | None,
    threads: str,
    cores: int | None,
    profile: str,
    runs: int,
    warmup: int,
    prevalence: float,
    image_paths: tuple[str, ...],
    max_images: int,
    profile_ops: bool,
    json_out: str | None,
    json_old: str | None,
) -> None:
    """Latency, throughput, memory and size of the INT8 and float32 models, and the cascade at a prevalence."""
    import numpy as np

    from neurocascade.edge.bench import BenchReport, bench_table, ops_table, run_bench, speedup_table
    from neurocascade.edge.cpuinfo import available_cpus
    from neurocascade.edge.predict import expand_paths
    from neurocascade.edge.preprocess import load_image
    from neurocascade.edge.runtime import check_threads, read_sidecar
    from neurocascade.console import err, out as console, warn
    from neurocascade.io import check_writable

    try:
        thread_counts = [int(t) for t in threads.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"--threads {threads!r}: expected comma-separated integers, e.g. 1,2,4") from None
    if max_images < 1:
        raise UserError(f"--max-images {max_images}: must be at least 1")
    if profile == "host":  # the Pi profiles choose their own thread count
        for message in {check_threads(n, cores or len(available_cpus())) for n in thread_counts} - {None}:
            warn(message)
    if json_out and json_old and json_out != json_old:
        raise UserError("--out and the old --json name two report paths; give --out only")
    json_out = json_out or json_old
    export = export_dir_of(models_dir, run_dir)
    target = Path(json_out) if json_out else export / "bench.json"
    check_writable(target)  # before the benchmark, not after minutes of it
    images = None
    if image_paths:
        size = int(read_sidecar(export / "gate.json").input["size"])
        files = expand_paths(list(image_paths))[:max_images]
        images = np.stack([load_image(p, size) for p in files])
    report = run_bench(
        export,
        Path(flat_dir) / "export" if flat_dir else None,
        thread_counts,
        profile,
        cores,
        runs,
        warmup,
        prevalence,
        images,
        profile_ops,
        progress=lambda m: err.print(m, highlight=False),
    )
    BenchReport.from_json(report, target).write(target)
    console.print(bench_table(report))
    if (speedups := speedup_table(report)) is not None:
        console.print(speedups)
    if profile_ops:
        console.print(ops_table(report))
    console.print(f"report: {target}")


@main.command("results")
@click.option(
    "--plan",
    "plan_path",
    default="configs/results.toml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Protocols, export modes, targets and output paths (relative to the working directory); a file "
    "or the built-in plan's name.",
)
@click.option("--data", help="Dataset folder or CSV manifest.  [default: from the plan's training config]")
@click.option("--protocols", help="Comma-separated protocol ids to run (default: all in the plan).")
@click.option("--page-only", is_flag=True, help="Only regenerate the results page from the reports already there.")
def results_cmd(plan_path: str, data: str | None, protocols: str | None, page_only: bool) -> None:
    """The whole evidence chain, resumably: audit, train, export, eval (Keras, INT8), edge-bench, RESULTS.md."""
    import os

    from neurocascade.data.dataset import dataset_root
    from neurocascade.config import load_config
    from neurocascade.console import err, out as console
    from neurocascade.results.chain import chain_lock, run_chain
    from neurocascade.results.display import show_event, time_table
    from neurocascade.results.page import write_page
    from neurocascade.results.plan import build_stages, load_plan, select

    root = Path.cwd()  # the plan's relative paths, the stages' working directory and the page's links
    plan = load_plan(resolve_config(plan_path), root)
    chosen = select(plan, [p.strip() for p in protocols.split(",") if p.strip()] if protocols else None)
    source = Path(data).absolute() if data else root / dataset_root(load_config(plan.config))
    if not source.exists():
        raise UserError(f"{data or source}: no such dataset folder or manifest")
    data = os.path.relpath(source, root)
    if page_only and not (plan.out / "ledger.json").exists():
        raise UserError(f"{plan.out}: no results yet (no ledger.json); run without --page-only first")
    try:
        if not page_only:
            with chain_lock(plan.out), err.status("") as status:
                ledger = run_chain(
                    build_stages(plan, data, chosen),
                    plan.out,
                    plan.path,
                    data,
                    on_event=lambda *event: show_event(err, status, *event),
                    order=[s.id for s in build_stages(plan, data)],
                    parallel_kinds=plan.parallel_kinds,
                    slots=plan.parallel_slots,
                    beside_training=plan.beside_training,
                    beside_nice=plan.beside_nice,
                )
            console.print(time_table(ledger))
    except KeyboardInterrupt:
        err.print("interrupted: finished stages are kept; run the same command again to continue")
        sys.exit(130)
    finally:  # the page shows whatever is there, also after a failed or interrupted chain
        page = write_page(plan.path, plan.out, plan.page, plan.figures, root, readme=root / "README.md")
        console.print(f"page: {os.path.relpath(page, Path.cwd())}")


if __name__ == "__main__":
    sys.exit(main())
