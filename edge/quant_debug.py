"""`quant-debug`: where a model's INT8 error comes from, layer by layer (`tf.lite.experimental.QuantizationDebugger`).

    reports = debug_run(Path("runs/NAME"))               # writes runs/NAME/quant-debug/<stage>.json
    console.print(worst_layers_table(reports["subtype"], top=10))

For each model of the run, the debugger quantizes the model exactly as the export does (`neurocascade.edge.export.int8_converter`,
calibrated on the same `export.representative_samples` training images chosen by `export.calibration`
(`neurocascade.edge.calibration`; "auto": its first draw, "random"), in the `export.output` form), then runs
`export.debug_samples` seeded-random images of that model's *validation* split (evaluation preprocessing, no
augmentation; never test images) through a copy instrumented with NumericVerify ops, which compare every quantized
tensor with the float tensor computed from the same quantized inputs. Each row is one quantized tensor:
`mean_error`, `max_abs_error`, `mean_squared_error`, `stddev` of (dequantized − float), the tensor's `scale` and
`zero_point`, `range` = 255·scale (what its 256 levels cover) and `rmse_scale` = √MSE / scale. A layer that only
rounds has rmse_scale ≈ 1/√12 ≈ 0.29; much more means its range is too wide or too narrow for what it carries, so
rows are sorted by it, worst first. The debugger always quantizes the float model post-training: with `export.qat`
the report describes the PTQ model, not the QAT one (recorded as `method`).

The reports go to `RUN/quant-debug/`, outside `export/`, on purpose: they are a diagnosis, which the runtime never
reads, not part of what is deployed. The export manifest lists exactly the files an export writes (and the runtime
refuses an export whose files differ), so keeping them out leaves the all-or-nothing export and its verification
unchanged; a diagnosis can be re-run (other samples, another output) without a 10-minute re-export and without
touching a deployed folder. Each report records the sha256 of the .keras file and the settings it quantized with.
"""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Callable, Sequence


from neurocascade.io import sha256_file, write_json

SCHEMA = "neurocascade-quant-debug/1"
FOLDER = "quant-debug"
ROUNDING_ONLY = 1 / math.sqrt(12)  # rmse/scale of a tensor whose only error is rounding to its grid
COLUMNS = (
    "op_name",
    "layer",
    "num_elements",
    "rmse_scale",
    "range",
    "scale",
    "zero_point",
    "mean_error",
    "max_abs_error",
    "mean_squared_error",
    "stddev",
    "tensor_name",
)
Progress = Callable[[str], None]


def _layer(tensor_name: str) -> str:
    """The Keras layer names in a TFLite tensor name ("model/top_bn/FusedBatchNormV3;model/top_conv/Conv2D")."""
    names = []
    for part in tensor_name.split(";"):
        pieces = part.split("/")
        name = pieces[1] if len(pieces) > 1 else pieces[0]
        if name not in names:
            names.append(name)
    return "+".join(names[:2])


def _number(value: str) -> float | int | str | None:
    try:
        x = float(value)
    except ValueError:
        return value
    if not math.isfinite(x):
        return None  # JSON has no NaN; a layer with no finite statistic says so with null
    return int(x) if x.is_integer() and "." not in value and "e" not in value.lower() else x


def layer_rows(debugger) -> list[dict]:
    """The debugger's per-tensor statistics (its CSV dump) with `range` and `rmse_scale`, worst first."""
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    rows = []
    for raw in csv.DictReader(io.StringIO(buffer.getvalue())):
        row = {key: _number(value) for key, value in raw.items() if key != "tensor_name"}
        row["tensor_name"] = raw["tensor_name"]
        row["layer"] = _layer(raw["tensor_name"])
        scale, mse = row.get("scale"), row.get("mean_squared_error")
        row["range"] = None if not scale else 255.0 * scale
        row["rmse_scale"] = None if not scale or mse is None else math.sqrt(mse) / scale
        rows.append({key: row.get(key) for key in COLUMNS})
    return sorted(rows, key=lambda r: -1.0 if r["rmse_scale"] is None else r["rmse_scale"], reverse=True)


def debug_model(
    model,
    representative: Callable,
    images: Callable,
    float_ops: Sequence[str] = (),
    float_layers: Sequence[str] = (),
) -> list[dict]:
    """Per-tensor INT8 error of `model` quantized with `representative` (`float_ops` and `float_layers` left float,
    as the export does), measured on the generator `images`."""
    import warnings

    from neurocascade.edge.export import int8_converter
    from neurocascade.tf import tf

    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(float_ops) or None)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=int8_converter(model, representative), debug_dataset=images, debug_options=options
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        if float_layers:  # the nodes are named in the calibrated model, which the debugger makes first
            from neurocascade.edge.float_layers import denylisted_nodes

            debugger.options = tf.lite.experimental.QuantizationDebugOptions(
                denylisted_ops=list(float_ops) or None,
                denylisted_nodes=denylisted_nodes(debugger.calibrated_model, float_layers),
            )
        debugger.run()
    return layer_rows(debugger)


def debug_run(
    run_dir: Path,
    data: str | None = None,
    overrides: Sequence[str] = (),
    stages: Sequence[str] = (),
    progress: Progress | None = None,
) -> dict[str, dict]:
    """Debug every model of `run_dir` (or `stages`) and write `run_dir/quant-debug/<stage>.json` (module doc)."""
    from neurocascade.edge.calibration import calibration_indices, first_draw, representative
    from neurocascade.edge.equalize import equalize_streams
    from neurocascade.edge.export import _dataset, _load_run
    from neurocascade.edge.outputs import output_model
    from neurocascade.hierarchy.stages import STAGES
    from neurocascade.errors import UserError
    from neurocascade.keras_io import load_keras_model

    say = progress or (lambda message: None)
    run_dir = Path(run_dir)
    cfg, manifest = _load_run(run_dir, overrides)
    unknown = [s for s in stages if s not in manifest.stages]
    if unknown:
        raise UserError(f"{run_dir}: no {unknown[0]!r} model; this run has {', '.join(manifest.stages)}")
    say(f"loading the dataset ({manifest.dataset['root']})")
    ds = _dataset(cfg, manifest, data)
    x_train, x_val, y4, y4_val = ds.images("train"), ds.images("val"), ds.labels("train"), ds.labels("val")
    ex, seed = cfg.export, cfg.train.seed
    draw = first_draw(ex.calibration)
    reports = {}
    for stage in stages or manifest.stages:
        spec = STAGES[stage]
        keras_path = run_dir / "models" / f"{stage}.keras"
        model = output_model(load_keras_model(keras_path, manifest.model_sha256(stage)), ex.output)
        mask, val_mask = spec.select(y4)[0], spec.select(y4_val)[0]
        xs, xv = x_train[mask], x_val[val_mask]
        if not len(xv):
            raise UserError(f"{run_dir}: the {stage} model has no validation images to debug on")
        calib = calibration_indices(y4[mask], ex.representative_samples, draw, seed)
        debug = calibration_indices(y4_val[val_mask], ex.debug_samples, "random", seed)
        if ex.equalize:  # the model the export quantizes
            model = equalize_streams(model, xs[calib]).model
        n_rep, n_debug = len(calib), len(debug)
        say(f"{stage}: quantizing ({n_rep} {draw} calibration images) and debugging on {n_debug} validation images")
        t0 = time.perf_counter()
        rows = debug_model(model, representative(xs[calib]), representative(xv[debug]), ex.float_ops, ex.float_layers)
        report = {
            "schema": SCHEMA,
            "run": run_dir.name,
            "stage": stage,
            "source_sha256": sha256_file(keras_path),
            "method": "ptq",
            "output": ex.output,
            "float_ops": list(ex.float_ops),
            "float_layers": list(ex.float_layers),
            "equalize": ex.equalize,
            "representative_samples": n_rep,
            "calibration": draw,
            "split": "val",
            "debug_samples": n_debug,
            "rounding_only_rmse_scale": round(ROUNDING_ONLY, 4),
            "seconds": round(time.perf_counter() - t0, 1),
            "layers": rows,
        }
        write_json(run_dir / FOLDER / f"{stage}.json", report)
        reports[stage] = report
    return reports


def _fmt(x: float | int | None, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def worst_layers_table(report: dict, top: int):
    """The `top` worst tensors of one report as a rich Table (the JSON has every tensor)."""
    from rich.table import Table

    table = Table(
        title=f"{report['stage']}: worst INT8 layers on {report['debug_samples']} validation images "
        f"({report['output']} output)",
        title_justify="left",
    )
    for col in ("op", "layer", "rmse/scale", "range", "scale", "mean_error", "max |err|"):
        table.add_column(col, justify="left" if col in ("op", "layer") else "right", no_wrap=col != "layer")
    for row in report["layers"][:top]:
        table.add_row(
            str(row["op_name"]),
            str(row["layer"]),
            _fmt(row["rmse_scale"], ".2f"),
            _fmt(row["range"], ".3g"),
            _fmt(row["scale"], ".3g"),
            _fmt(row["mean_error"], "+.3g"),
            _fmt(row["max_abs_error"], ".3g"),
        )
    table.caption = (
        f"{len(report['layers'])} quantized tensors; rounding alone gives rmse/scale ≈ "
        f"{report['rounding_only_rmse_scale']}"
    )
    return table
