"""`export`: a training run's models → float32 and full-integer INT8 TFLite, sidecars, and an agreement check.

    report = export_run(Path("runs/NAME"))            # writes runs/NAME/export/, returns agreement.json's dict
    console.print(agreement_table(report))

The export is all or nothing: every file is written into a temporary sibling `run_dir/export.tmp-<pid>/`, the
manifest last, and the folder is swapped in as a whole at the end (the old `export/` renamed aside to
`export.old-<pid>`, the new one renamed in, the old one removed). An export that fails removes its temporary
folder; one that is killed leaves it, and the next export removes it (or refuses while the process that owns it
is alive); predict never looks at it. Whatever was in the old `export/` (e.g. edge-bench's bench.json) goes with it.

For each model of the run (gate + subtype, or flat), into the export folder, each file written atomically:
- `<stage>.float32.tflite`: the Keras model as is (float32 input 0..255, float32 probabilities);
- `<stage>.int8.tflite`: full-integer, uint8 input and output. The input is the 0..255 pixels themselves (the
  model's normalisation is inside it), so the input quantization is scale 1, zero point 0 whenever the calibration
  images span 0..255. The output is what `export.output` says, for both files of a stage: "probabilities" (the
  model's softmax; INT8 in steps of 1/256) or "logits" (the last Dense without its softmax, which the runtime
  applies in float; `neurocascade.edge.outputs` says why). Converted from the QAT model
  (`neurocascade.edge.qat.run_qat`, checkpointed in `run_dir/stages/<stage>/qat/` so an interrupted export resumes) when
  `export.qat`, else post-training; either way calibrated on `export.representative_samples` training images of
  that model (tumour images only for the subtype model), preprocessed as for evaluation (no augmentation), drawn
  as `export.calibration` says (`neurocascade.edge.calibration`; "auto" quantizes each model with every draw and
  keeps the one that agrees best with Keras on validation). `export.quantization` = "int16x8" puts 16-bit
  activations with 8-bit weights (int16 input and output) under the same name, "auto" chooses per model
  (`neurocascade.edge.precision`); the sidecar's `models.int8.quantization` says which;
- in both files, unless `export.metadata = false`, TFLite Metadata (`neurocascade.edge.tflite_metadata`): labels
  (an appended labels.txt), the input's normalisation and range, τ and the output's meaning, so that a LiteRT /
  MediaPipe image classifier reads them from the model itself; sizes and agreement are those of these files (an
  int16x8 model carries none: that module describes uint8 and float32 ends only);
- `<stage>.json`: the sidecar `neurocascade.edge.runtime` reads and checks (labels, input size and preprocessing, dtypes and
  quantization of both files, τ in every sidecar of a cascade, sha256 of the source .keras and the .tflite files,
  package versions, the QAT summary);
- `agreement.json`: on the validation split (never test: that is eval's), run through `neurocascade.edge.runtime` (the LiteRT
  runtime the device uses): INT8 vs Keras top-1 agreement (and, for the gate, agreement of the decision
  P(tumour) ≥ τ), macro-F1 difference, INT8 and float TFLite vs Keras max absolute probability difference, file
  sizes, conversion times; for a cascade also the four-class hard labels at τ, INT8 runtime (subtype only where
  the gate calls tumour) vs Keras, the τ decision, and the max |Δp| of the four soft probabilities
  P(no) = 1 − p, P(k) = p·q_k; per model its quantization, why it was chosen, its calibration, and every
  candidate's agreement, bytes and (for "auto") 1-thread latency. Models whose INT8 agreement is below
  `export.min_agreement` are listed under `flagged`;
- with `export.one_graph`, for a cascade whose gate and subtype are heads on one backbone (refused in one line,
  before any work, when their backbones differ): `one_graph.{float32,int8}.tflite` and `one_graph.json`, the two
  heads on one backbone pass with the cascade's four probabilities as output (`neurocascade.hierarchy.one_graph`),
  converted, calibrated (from all four classes) and checked as a model of its own, and scored in `agreement.json`
  as the cascade is (decisions at τ through `neurocascade.edge.runtime.OneGraphCascade`), which is also what its
  precision and calibration draw are chosen on;
- `MODEL_CARD.md` (`neurocascade.edge.model_card`): intended use, training data and protocol, validation metrics, the Keras
  test metrics when the run has been evaluated, the agreement above, τ, and the licences of the data and weights;
- `export-manifest.json` (`neurocascade.edge.manifest.ExportManifest`): every file above with its size and sha256, which
  `neurocascade.edge.runtime` verifies before it loads anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from neurocascade.data.dataset import load_dataset
from neurocascade.data.layout import CLASSES
from neurocascade.data.pipeline import class_weights
from neurocascade.edge.bias_correction import (
    HeadShift,
    int8_pooled_features,
    measure_head_shift,
    shift_key,
    shifted_head,
)
from neurocascade.edge.calibration import calibration_indices, choose_calibration, first_draw, representative
from neurocascade.edge.converter import keras_converter
from neurocascade.edge.equalize import equalize_streams
from neurocascade.edge.float_layers import denylisted_nodes
from neurocascade.edge.head_refit import head_of, refit_heads
from neurocascade.edge.keras_reference import keras_validation_probs
from neurocascade.edge.manifest import AGREEMENT_FILE, Agreement, Sidecar, write_manifest
from neurocascade.edge.model_card import licence_lines, precision_label, read_licences, write_model_card
from neurocascade.edge.outputs import output_model
from neurocascade.edge.precision import choose_mode, convert_int16x8, integer_converter, latency_ms, wants_int16x8
from neurocascade.edge.shift_store import ShiftStore
from neurocascade.edge.tflite_metadata import ModelDescription, with_metadata
from neurocascade.eval.scores import macro_f1_of_probs, macro_f1_score
from neurocascade.edge.runtime import Cascade, OneGraphCascade, Prediction, load_model, model_path
from neurocascade.hierarchy.cascade import hard_from_soft, hard_predictions, soft_probabilities, tumour_called
from neurocascade.hierarchy.engine import predict_batches
from neurocascade.hierarchy.artifacts import RunManifest, Tau
from neurocascade.hierarchy.one_graph import HEAD_OUTPUTS, backbone_difference, one_graph_model
from neurocascade.hierarchy.stages import CASCADE_STAGES, EXPORT_STAGES, NO_TUMOUR, ONE_GRAPH
from neurocascade.config import CALIBRATION_DRAWS, Config, load_config, to_dict
from neurocascade.errors import ConfigError, UserError
from neurocascade.io import atomic_write_bytes, sha256_file, write_json
from neurocascade.keras_io import load_keras_model
from neurocascade.models.head import pooled_layer_name, pooled_model
from neurocascade.models.surgery import weights_sha256
from neurocascade.tf import keras, tf
from neurocascade.version import version

PREPROCESSING = "uint8 RGB 0..255, pad to square, resize; normalisation inside the model"
OUTPUT_MEANING = {
    "probabilities": "softmax probabilities in `labels` order",
    "logits": "logits in `labels` order; the runtime applies a float softmax (edge/outputs.py)",
}
TAU_MEANING = "the gate calls tumour when P(tumour) >= tau (chosen on validation)"
# export.* settings that change nothing QAT does (the embedded metadata; which images calibrate, which precision is
# kept): changing them keeps the QAT checkpoints, and exports from before they existed find theirs
_AFTER_QAT = ("metadata", "calibration", "quantization", "latency_images", "bias_correction")
Progress = Callable[[str], None]


def _load_run(run_dir: Path, overrides: Sequence[str]) -> tuple[Config, RunManifest]:
    if not (run_dir / "config.toml").is_file():
        raise UserError(f"{run_dir}: not a training run (no config.toml)")
    if not (run_dir / "manifest.json").is_file():
        raise UserError(f"{run_dir}: training has not finished (no manifest.json); finish it with --resume first")
    bad = [o for o in overrides if not o.strip().startswith("export.")]
    if bad:
        raise ConfigError(f"--set {bad[0]!r}: an export may only change export.* settings")
    cfg = load_config(run_dir / "config.toml", overrides)
    manifest = RunManifest.read(run_dir / "manifest.json")
    for stage in manifest.stages:
        if not (run_dir / "models" / f"{stage}.keras").is_file():
            raise UserError(f"{run_dir}: models/{stage}.keras is missing")
    return cfg, manifest


def _dataset(cfg: Config, manifest: RunManifest, data: str | None):
    """The run's dataset (`data`, else where the run found it), checked to be the same files and split."""
    source = data or cfg.data.manifest or manifest.dataset["root"]
    ds = load_dataset(cfg, source, pixels=True)
    if ds.fingerprint != manifest.dataset["fingerprint"] or ds.split_hashes() != manifest.dataset["split_hashes"]:
        raise UserError(f"{source}: not the dataset or split this run was trained on; pass --data with that dataset")
    return ds


def convert_float(model: keras.Model) -> bytes:
    return keras_converter(model).convert()


def int8_converter(model: keras.Model, representative: Callable):
    """The full-integer converter (uint8 input and output) the export uses; `neurocascade.edge.quant_debug` debugs the same."""
    return integer_converter(model, representative, "int8")


def convert_int8(
    model: keras.Model, representative: Callable, float_ops: Sequence[str] = (), float_layers: Sequence[str] = ()
) -> bytes:
    """Full-integer TFLite with uint8 input and output (QAT or float model; TF 2.21 needs calibration for both).

    `float_ops`: TFLite op types left in float (`export.float_ops`); `float_layers`: the ops of these Keras layers
    (`export.float_layers`, `neurocascade.edge.float_layers`). The converter has no public option for either;
    this calibrates and quantizes in two steps exactly as `tf.lite.experimental.QuantizationDebugger`'s
    `get_nondebug_quantized_model` does with its `denylisted_ops` and `denylisted_nodes`, keeping uint8 ends.
    """
    converter = int8_converter(model, representative)
    with warnings.catch_warnings():
        # "Statistics for quantized inputs were expected": the legacy quantized_input_stats, which the
        # representative dataset replaces (the input range is calibrated like every other tensor).
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        if not float_ops and not float_layers:
            return converter.convert()
        from tensorflow.lite.python import convert as tflite_convert
        from tensorflow.lite.python.util import modify_model_io_type

        converter.experimental_mlir_quantizer = True
        converter._experimental_calibrate_only = True  # noqa: SLF001 (the debugger's own recipe)
        calibrated = converter.convert()
        # Float input and output with QUANTIZE / DEQUANTIZE at the ends, which modify_model_io_type turns into uint8
        # (it only rewrites such ends; mlir_quantize's own int8 ends it leaves as they are)
        nodes = denylisted_nodes(calibrated, float_layers) if float_layers else None
        quantized = tflite_convert.mlir_quantize(
            calibrated, denylisted_ops=list(float_ops) or None, denylisted_nodes=nodes
        )
        return modify_model_io_type(quantized, tf.uint8, tf.uint8)


def _tensor_info(path: Path) -> dict:
    """dtype and quantization of the input and output of a .tflite file, as the sidecar records them."""
    from ai_edge_litert.interpreter import Interpreter

    from neurocascade.edge.quiet import quiet_litert

    with quiet_litert():
        interp = Interpreter(model_path=str(path))
    out = {}
    for name, detail in (("input", interp.get_input_details()[0]), ("output", interp.get_output_details()[0])):
        scale, zero = detail["quantization"]
        out[name] = {
            "dtype": np.dtype(detail["dtype"]).name,
            "quantization": {"scale": float(scale), "zero_point": int(zero)} if scale else None,
        }
    return out


def qat_key(cfg: Config, source_sha: str) -> dict:
    """What a stage's QAT checkpoints depend on: when it changes, they are discarded (`_qat_directory`)."""
    from neurocascade.edge.qat import SCHEME

    train = to_dict(cfg)["train"]
    export = {k: v for k, v in to_dict(cfg)["export"].items() if k not in _AFTER_QAT}
    for name, default in (("qat_target", "labels"), ("equalize", False)):
        if export.get(name) == default:  # the defaults: the key of exports from before the settings existed
            del export[name]
    return {
        "export": export,
        "source_sha256": source_sha,
        "scheme": SCHEME,
        "train": {k: train[k] for k in ("seed", "batch_size", "patience", "class_weight")},
    }


def _qat_directory(run_dir: Path, stage: str, key: dict) -> Path:
    """Where the stage's QAT checkpoints live; emptied when the export settings or the source model changed."""
    directory = run_dir / "stages" / stage / "qat"
    key_file = directory / "key.json"
    # compared as JSON: the key holds tuples (export.float_ops) that key.json gives back as lists
    if directory.exists() and (
        not key_file.exists() or json.loads(key_file.read_text()) != json.loads(json.dumps(key))
    ):
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_json(key_file, key)
    return directory


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), digits)


def _top1(keras_p: np.ndarray, p: np.ndarray) -> float | None:
    """Top-1 agreement of `p` with Keras (None without images)."""
    return _round(np.mean(np.argmax(keras_p, 1) == np.argmax(p, 1))) if len(p) else None


def _agreement(keras_p: np.ndarray, int8_p: np.ndarray, float_p: np.ndarray, y: np.ndarray, n: int) -> dict:
    if len(y) == 0:
        return {
            "n_val": 0,
            "int8_top1_agreement": None,
            "keras_macro_f1": None,
            "int8_macro_f1": None,
            "macro_f1_diff": None,
            "float_max_abs_prob_diff": None,
            "int8_max_abs_prob_diff": None,
        }
    f1_keras, f1_int8 = macro_f1_of_probs(y, keras_p, n), macro_f1_of_probs(y, int8_p, n)
    return {
        "n_val": int(len(y)),
        "int8_top1_agreement": _top1(keras_p, int8_p),
        "keras_macro_f1": _round(f1_keras),
        "int8_macro_f1": _round(f1_int8),
        "macro_f1_diff": _round(f1_int8 - f1_keras),
        "float_max_abs_prob_diff": _round(np.abs(float_p - keras_p).max(), 7),
        "int8_max_abs_prob_diff": _round(np.abs(int8_p - keras_p).max()),
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fresh_folder(run_dir: Path) -> Path:
    """An empty `run_dir/export.tmp-<pid>`, after removing what killed exports left (their pid no longer runs).

    A leftover `export.old-*` with no `export/` is an export killed between its two renames: the old export is
    put back. A leftover of a process that is still running is another export of this run: refused.
    """
    out = run_dir / "export"
    leftovers = sorted(run_dir.glob("export.tmp-*")) + sorted(run_dir.glob("export.old-*"))
    for path in leftovers:
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            raise UserError(
                f"{path}: another export (process {pid}) is writing this run; wait for it to finish, "
                "or remove this folder if no export is running"
            )
    for path in leftovers:
        if path.name.startswith("export.old-") and not out.exists() and path.is_dir():
            path.rename(out)
        else:
            shutil.rmtree(path)
    tmp = run_dir / f"export.tmp-{os.getpid()}"
    tmp.mkdir()
    return tmp


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace `out` by the finished folder `tmp` as a whole (old aside, new in, old removed)."""
    _fsync_dir(tmp)
    old = out.with_name(f"export.old-{os.getpid()}")
    had_old = out.exists()
    if had_old:
        out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        if had_old:
            old.rename(out)
        raise
    _fsync_dir(out.parent)
    if had_old:
        shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class _Export:
    """What every step of one export reads: the run, its config and manifest, the cascade's τ, the new folder, and
    the INT8 head shifts measured so far or kept by other exports (`_head_shift`)."""

    run_dir: Path
    cfg: Config
    manifest: RunManifest
    kind: str
    tau: float | None
    out: Path
    packages: dict
    say: Progress
    shift_store: ShiftStore | None = None  # head shifts kept between exports (`neurocascade.edge.shift_store`)
    head_shifts: dict[str, tuple[HeadShift, str]] = field(default_factory=dict)  # shift_key → (shift, measured for)
    # shift_key and the training images' hash → their INT8 pooled features (`_refit_stage`: the one graph's are its
    # gate's when both took the same calibration draw)
    int8_features: dict[str, np.ndarray] = field(default_factory=dict)
    # the float backbone's weights hash → its pooled features of every training image (`_float_features`)
    float_features: dict[str, np.ndarray] = field(default_factory=dict)
    # the Keras cascade's four-class labels at τ on validation, for the one graph's choices (`agreement`)
    one_graph_labels: np.ndarray | None = None

    def agreement(self, stage: str, keras_p: np.ndarray, p: np.ndarray) -> float | None:
        """What a candidate's validation probabilities `p` score when the export chooses (precision, calibration
        draw, head refit): top-1 against the Keras model's `keras_p`; for the one graph, its four-class decisions
        at τ against the Keras cascade's, what predict returns and its agreement entry reports (the arg-max of its
        four probabilities ignores τ)."""
        if stage == ONE_GRAPH and self.one_graph_labels is not None and len(p):
            return _round(np.mean(hard_from_soft(p, self.tau) == self.one_graph_labels))
        return _top1(keras_p, p)


@dataclass
class _Converted:
    """One stage's float32 TFLite, the model to quantize (after QAT when configured) with its calibration images
    and the draw they came from, what QAT did, and where the time went."""

    float_bytes: bytes
    source_model: keras.Model
    calibration_images: np.ndarray
    calibration: str  # "random" or "balanced" (CALIBRATION_DRAWS)
    qat_summary: dict | None
    seconds: dict[str, float]
    head_shift: dict | None = None  # what `export.bias_correction` subtracted (edge/bias_correction.py)

    @property
    def n_rep(self) -> int:
        return len(self.calibration_images)

    def representative_dataset(self) -> Callable:
        """A fresh representative-dataset generator over the calibration images, for one converter."""
        return representative(self.calibration_images)


@dataclass(frozen=True)
class _Quantized:
    """The model installed as `<stage>.int8.tflite`: its mode and why, and every candidate measured on validation."""

    mode: str
    reason: str
    data: bytes
    probs: np.ndarray  # its validation probabilities through the runtime
    float_probs: np.ndarray  # the float32 TFLite's
    candidates: dict[str, dict]  # mode (and "float32" when "auto" timed it) → agreement, ms, bytes

    @property
    def agreement(self) -> float | None:
        """Its validation agreement with Keras as the export scores candidates (`_Export.agreement`)."""
        return self.candidates[self.mode]["agreement"]


@dataclass(frozen=True)
class _Calibrated:
    """The draw installed for a stage with `export.calibration = "auto"`, why, and each draw's agreement."""

    reason: str
    candidates: dict[str, dict]  # draw → {"agreement": validation top-1 vs Keras}


def export_run(
    run_dir: Path,
    data: str | None = None,
    progress: Progress | None = None,
    overrides: Sequence[str] = (),
    stop_after_epochs: int | None = None,
    shift_store: Path | None = None,
) -> dict:
    """Export every model of `run_dir` into `run_dir/export/` (see module doc); returns the agreement report.

    `data`: the dataset, if not where the run found it. `progress(message)` gets one line per step.
    `overrides`: `export.*` settings on top of the run's config (e.g. "export.qat=false").
    `stop_after_epochs` interrupts QAT like a kill (tests).
    `shift_store`: a folder where measured INT8 head shifts are kept for other exports (`neurocascade.edge.shift_store`;
    the CLI's is in the caches' root); None keeps them for this export only.
    """
    from neurocascade.hierarchy.run import package_versions

    say = progress or (lambda message: None)
    run_dir = Path(run_dir)
    cfg, manifest = _load_run(run_dir, overrides)
    stages = list(manifest.stages)
    kind = "cascade" if set(stages) == {"gate", "subtype"} else "flat"
    tau = Tau.read(run_dir / "tau.json").tau if kind == "cascade" else None
    say(f"loading the dataset ({manifest.dataset['root']})")
    ds = _dataset(cfg, manifest, data)
    x_train, x_val = ds.images("train"), ds.images("val")
    y4, y4_val = ds.labels("train"), ds.labels("val")
    out = _fresh_folder(run_dir)  # written whole, then swapped in for run_dir/export (module doc)
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        ex = cfg.export
        packages = {**package_versions(), "python": platform.python_version()}
        store = ShiftStore(shift_store) if shift_store is not None else None
        job = _Export(run_dir, cfg, manifest, kind, tau, out, packages, say, store)
        report: dict = {
            "run": run_dir.name,
            "kind": kind,
            "tau": tau,
            "method": "qat" if ex.qat else "ptq",
            "output": ex.output,
            "float_ops": list(ex.float_ops),
            **({"float_layers": list(ex.float_layers)} if ex.float_layers else {}),
            "calibration": ex.calibration,
            "quantization": ex.quantization,
            "equalize": ex.equalize,
            "bias_correction": ex.corrects_head_bias,
            "min_agreement": ex.min_agreement,
            "models": {},
            "flagged": [],
        }
        if ex.bias_correction and ex.qat:
            say("export.bias_correction: not applied, it corrects post-training quantization and this export is QAT")
        keras_paths = {stage: run_dir / "models" / f"{stage}.keras" for stage in stages}
        shas = {stage: sha256_file(path) for stage, path in keras_paths.items()}
        models = {stage: load_keras_model(path, manifest.model_sha256(stage)) for stage, path in keras_paths.items()}
        one_graph = kind == "cascade" and ex.one_graph
        if one_graph:  # refused before any work: a cascade whose two models do not share one backbone
            why = backbone_difference(models["gate"], models["subtype"])
            if why:
                raise UserError(f"{run_dir}: export.one_graph needs a gate and subtype on one backbone, but {why}")
        split = _Split(x_train, y4, x_val, y4_val)
        keras_val: dict[str, np.ndarray] = {}
        for stage in stages:
            # every validation image: the cascade check needs them all
            keras_val[stage], source = keras_validation_probs(
                models[stage], run_dir, stage, x_val, y4_val, cfg.train.batch_size
            )
            say(f"{stage}: {source}")
            report["models"][stage] = _export_stage(
                job,
                stage,
                models[stage],
                shas[stage],
                keras_paths[stage].stat().st_size,
                keras_val[stage],
                split,
                stop_after_epochs,
            )
        if kind == "cascade":
            report["models"]["cascade"] = _cascade_agreement(job, keras_val, x_val, y4_val)
        if one_graph:
            say(f"{ONE_GRAPH}: the cascade as one graph, both heads on one backbone pass")
            labels = hard_predictions(keras_val["gate"][:, 0], keras_val["subtype"], tau)
            report["models"][ONE_GRAPH] = {
                **_export_stage(
                    replace(job, one_graph_labels=labels),  # the same caches: a shallow copy
                    ONE_GRAPH,
                    one_graph_model(models["gate"], models["subtype"]),
                    "+".join(shas[stage] for stage in CASCADE_STAGES),
                    sum(path.stat().st_size for path in keras_paths.values()),
                    soft_probabilities(keras_val["gate"][:, 0], keras_val["subtype"]),  # its float function
                    split,
                    None,
                ),
                **_one_graph_decisions(job, keras_val, x_val, y4_val),
            }
        report["flagged"] = [
            name
            for name, entry in report["models"].items()
            if entry["int8_top1_agreement"] is not None and entry["int8_top1_agreement"] < ex.min_agreement
        ]
        report["packages"] = job.packages
        Agreement.from_json(report, out / AGREEMENT_FILE).write(out / AGREEMENT_FILE)  # checked as it is written
        write_model_card(out, run_dir, report, created)
        exported = [*stages, ONE_GRAPH] if one_graph else stages
        write_manifest(out, run_dir.resolve().name, kind, exported, created)  # last: it vouches for every file above
        _swap_in(out, run_dir / "export")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return report


@dataclass(frozen=True)
class _Split:
    """The run's training and validation images with their four-class labels."""

    x_train: np.ndarray
    y4: np.ndarray
    x_val: np.ndarray
    y4_val: np.ndarray


def _export_stage(
    job: _Export,
    stage: str,
    model: keras.Model,
    source_sha: str,
    keras_bytes: int,
    keras_val: np.ndarray,
    split: _Split,
    stop_after_epochs: int | None,
) -> dict:
    """One model of the export: converted, quantized (precision and calibration as configured), installed with its
    sidecar, and its agreement entry; `keras_val`: the Keras model's probabilities on every validation image."""
    method = "qat" if job.cfg.export.qat else "ptq"
    spec = EXPORT_STAGES[stage]
    mask, y = spec.select(split.y4)
    val_mask, y_val = spec.select(split.y4_val)
    xs, xv = split.x_train[mask], split.x_val[val_mask]
    converted = _convert_stage(job, stage, model, source_sha, xs, y, split.y4[mask], xv, y_val, stop_after_epochs)
    converted = replace(converted, float_bytes=_with_metadata(job, stage, "float32", converted.float_bytes, source_sha))
    keras_p = keras_val[val_mask]
    quantized = _choose_precision(job, stage, converted, source_sha, method, keras_p, xv)
    calibrated = None
    if job.cfg.export.calibration == "auto":
        converted, quantized, calibrated = _choose_calibration(
            job, stage, converted, quantized, source_sha, method, keras_p, xv, xs, split.y4[mask]
        )
    refit = None
    if job.cfg.export.head_refit_epochs and quantized.mode == "int8":
        quantized, refit = _refit_stage(job, stage, converted, quantized, source_sha, method, keras_p, xv, split, mask)
    return _stage_agreement(job, stage, converted, quantized, calibrated, keras_bytes, keras_p, y_val, refit)


def _convert_stage(
    job: _Export,
    stage: str,
    model: keras.Model,
    source_sha: str,
    xs: np.ndarray,
    y: np.ndarray,
    y4s: np.ndarray,
    xv: np.ndarray,
    y_val: np.ndarray,
    stop_after_epochs: int | None,
) -> _Converted:
    """Float32 TFLite of the (logits or softmax) model; the model to quantize (after QAT when configured, else the
    model itself) and its calibration images, chosen among `xs` by their four-class labels `y4s`."""
    from neurocascade.edge.qat import run_qat

    cfg, ex, say = job.cfg, job.cfg.export, job.say
    seconds: dict[str, float] = {}
    exported = output_model(model, ex.output)  # the Keras model itself, or its logits (edge/outputs.py)
    t0 = time.perf_counter()
    float_bytes = convert_float(exported)
    seconds["convert_float32"] = round(time.perf_counter() - t0, 1)
    say(f"{stage}: float32 TFLite {len(float_bytes) / 2**20:.1f} MiB ({seconds['convert_float32']} s)")
    qat_summary = None
    draw = first_draw(ex.calibration)
    calib = calibration_indices(y4s, ex.representative_samples, draw, cfg.train.seed)
    source_model = exported
    if ex.equalize:
        t0 = time.perf_counter()
        equalized = equalize_streams(exported, xs[calib])
        source_model = equalized.model
        seconds["equalize"] = round(time.perf_counter() - t0, 1)
        skipped = "".join(f", stage {k} not ({why})" for k, why in equalized.skipped.items())
        say(f"{stage}: equalized the residual streams of stages {_stages(equalized.streams)}{skipped}")
    if ex.qat:
        directory = _qat_directory(job.run_dir, stage, qat_key(cfg, source_sha))
        say(
            f"{stage}: quantization-aware training (target {ex.qat_target}, {ex.qat_warmup_batches} warm-up batches, "
            f"{ex.qat_epochs} epochs)"
        )
        t0 = time.perf_counter()
        n = len(EXPORT_STAGES[stage].classes)
        source_model, qat_summary = run_qat(
            source_model,
            xs,
            y,
            xv,
            y_val,
            cfg,
            directory,
            class_weights(y, n, cfg.train.class_weight),
            stop_after_epochs=stop_after_epochs,
            on_epoch=lambda r: say(
                f"{stage}: QAT epoch {r['epoch']}: loss {r['loss']:.3f}, "
                + (f"val agreement {r['val_agreement']:.3f}, " if "val_agreement" in r else "")
                + f"val macro-F1 {r['val_macro_f1']:.3f}{' *' if r['best'] else ''}"
            ),
            from_logits=ex.output == "logits",
            stage=stage,
        )
        seconds["qat"] = round(time.perf_counter() - t0, 1)
    return _Converted(float_bytes, source_model, xs[calib], draw, qat_summary, seconds)


def _stages(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers)) or "none"


def _quantize(job: _Export, stage: str, converted: _Converted, mode: str, source_sha: str) -> bytes:
    """The quantized TFLite in `mode` ("int8" with `export.float_ops` in float and its metadata, or "int16x8")."""
    ex = job.cfg.export
    t0 = time.perf_counter()
    if mode == "int8":
        source = converted.source_model
        if ex.corrects_head_bias:  # the INT8 features' shift subtracted in the head, then converted with it
            shift, measured_for = _head_shift(job, stage, converted)
            source = shifted_head(source, shift)
            converted.head_shift = shift.summary()
            job.say(
                f"{stage}: head corrected for the INT8 features' shift (median {shift.relative:.2f} of their spread"
                + (
                    ""
                    if measured_for == stage
                    else f"; the measurement of {measured_for}, the same backbone and images"
                )
                + ")"
            )
        data = convert_int8(source, converted.representative_dataset(), ex.float_ops, ex.float_layers)
    else:
        data = convert_int16x8(converted.source_model, converted.representative_dataset())
    converted.seconds[f"convert_{mode}"] = round(time.perf_counter() - t0, 1)
    job.say(
        f"{stage}: {mode} TFLite {len(data) / 2**20:.1f} MiB ({converted.seconds[f'convert_{mode}']} s, "
        f"{converted.n_rep} {converted.calibration} calibration images)"
    )
    return _with_metadata(job, stage, "int8", data, source_sha) if mode == "int8" else data


def _head_shift(job: _Export, stage: str, converted: _Converted) -> tuple[HeadShift, str]:
    """The shift of the INT8 pooled features under this calibration, and what it was measured for: on a first
    conversion of this stage's model, unless an earlier model of the export, or of an export that kept it in
    `job.shift_store`, had the same backbone and calibration images (`shift_key`: the one graph reads its gate's, a
    gate on a flat run's backbone the flat model's; the same features bit for bit, one conversion less)."""
    ex = job.cfg.export
    key, floats = shift_key(converted.source_model, converted.calibration_images), (ex.float_ops, ex.float_layers)
    if key not in job.head_shifts:
        kept = job.shift_store.load(key, *floats) if job.shift_store else None
        if kept is None:
            first = convert_int8(converted.source_model, converted.representative_dataset(), *floats)
            shift = measure_head_shift(converted.source_model, first, converted.calibration_images)
            kept = (shift, stage)
            if job.shift_store:
                job.shift_store.save(key, *floats, shift, f"{stage} in {job.run_dir}")
        job.head_shifts[key] = kept
    return job.head_shifts[key]


STAGE_PURPOSE = {
    "gate": "Tumour gate of a NeuroCascade brain-MRI cascade: tumour vs no tumour on one 2-D MRI slice. "
    "The cascade runs its subtype model only for the slices it calls tumour.",
    "subtype": "Tumour subtype model of a NeuroCascade brain-MRI cascade (glioma, meningioma, pituitary), run "
    "only on the slices its gate calls tumour.",
    ONE_GRAPH: "NeuroCascade brain-MRI cascade as one graph: its tumour gate and its subtype model (glioma, "
    "meningioma, pituitary) as two heads on one backbone pass; the output is the cascade's four probabilities, "
    "P(subtype) = P(tumour) x P(subtype | tumour) and P(no tumour). Call tumour when 1 - P(no tumour) >= tau.",
    "flat": "NeuroCascade four-class brain-MRI classifier (glioma, meningioma, no tumour, pituitary) of one 2-D "
    "MRI slice.",
}
NOT_A_DEVICE = "Research software, not a medical device: not for diagnosis."


def model_description(job: _Export, stage: str, variant: str, source_sha: str) -> ModelDescription:
    """What one exported model says about itself in its TFLite Metadata (the sidecar's values; module doc)."""
    cfg, tau = job.cfg, job.tau
    weights = job.manifest.weights.get("kind", cfg.model.weights)
    extras = cfg.model.for_stages((stage,)).extra_backbones
    licences = licence_lines(read_licences(), job.manifest.dataset["root"], cfg.model.backbone, weights, extras)
    threshold = "" if tau is None else f" tau = {tau:.4f}: {TAU_MEANING}."
    return ModelDescription(
        name=f"NeuroCascade {stage} ({variant})",
        description=f"{STAGE_PURPOSE[stage]}{threshold} {NOT_A_DEVICE}",
        version=f"run {job.run_dir.resolve().name}, {_keras_files(stage)} sha256 {source_sha}",
        author=f"NeuroCascade {version()}",
        license=" ".join(line.removeprefix("- ") for line in licences),
        labels=EXPORT_STAGES[stage].classes,
        input_description=f"One brain-MRI slice: {PREPROCESSING} ({cfg.data.image_size} px"
        + (", CLAHE" if cfg.data.clahe else "")
        + ").",
        output_description=OUTPUT_MEANING[cfg.export.output].replace("`labels`", "labels.txt") + ".",
        output=cfg.export.output,
        custom={
            "stage": stage,
            "kind": job.kind,
            "variant": variant,
            "output": cfg.export.output,
            "tau": tau,
            "tau_meaning": None if tau is None else TAU_MEANING,
            "input": {
                "size": cfg.data.image_size,
                "preprocessing": PREPROCESSING,
                "clahe": cfg.data.clahe,
                "clahe_clip": cfg.data.clahe_clip,
            },
        },
    )


def _with_metadata(job: _Export, stage: str, variant: str, data: bytes, source_sha: str) -> bytes:
    """One model of the stage with its TFLite Metadata and labels file embedded when `export.metadata` (an int16x8
    model is left without: `neurocascade.edge.tflite_metadata` describes uint8 and float32 ends only)."""
    if not job.cfg.export.metadata:
        return data
    return with_metadata(data, model_description(job, stage, variant, source_sha))


def _probs(path: Path, xv: np.ndarray) -> np.ndarray:
    return load_model(path).predict_proba(xv).astype(np.float64)


def _choose_precision(
    job: _Export,
    stage: str,
    converted: _Converted,
    source_sha: str,
    method: str,
    keras_p: np.ndarray,
    xv: np.ndarray,
    float_p: np.ndarray | None = None,
) -> _Quantized:
    """Quantize in `export.quantization`'s mode, or for "auto" in int8 and, when it misses `export.min_agreement`,
    int16x8 too, keeping what `neurocascade.edge.precision.choose_mode` chooses; each candidate is installed and
    measured through the runtime on validation (as predict runs it), and the chosen one is left installed.
    `float_p`: the float32 TFLite's validation probabilities when another draw already measured them (the same
    file whatever the calibration)."""
    ex = job.cfg.export
    auto = ex.quantization == "auto"
    tried: dict[str, bytes] = {}
    probs: dict[str, np.ndarray] = {}
    candidates: dict[str, dict] = {}

    def attempt(mode: str) -> dict[str, Path]:
        tried[mode] = _quantize(job, stage, converted, mode, source_sha)
        files = _write_stage(job, stage, converted, tried[mode], mode, source_sha, method)
        probs[mode] = _probs(files["int8"], xv)
        candidates[mode] = {"agreement": job.agreement(stage, keras_p, probs[mode]), "bytes": len(tried[mode])}
        if auto and len(xv):
            candidates[mode]["ms"] = latency_ms(load_model(files["int8"], 1).predict_proba, xv[: ex.latency_images])
        return files

    files = attempt("int16x8" if ex.quantization == "int16x8" else "int8")
    float_p = _probs(files["float32"], xv) if float_p is None else float_p
    mode, reason = next(iter(tried)), f"export.quantization = {ex.quantization!r}"
    if auto:
        if len(xv):
            float_model = load_model(files["float32"], 1)
            candidates["float32"] = {"ms": latency_ms(float_model.predict_proba, xv[: ex.latency_images])}
        if wants_int16x8(candidates["int8"]["agreement"], ex.min_agreement):
            attempt("int16x8")
        mode, reason = choose_mode(candidates, ex.min_agreement)
        if mode != list(tried)[-1]:  # the last one tried lost: put the chosen one back
            _write_stage(job, stage, converted, tried[mode], mode, source_sha, method)
        job.say(f"{stage}: {mode} ({reason})")
    return _Quantized(mode, reason, tried[mode], probs[mode], float_p, candidates)


def _choose_calibration(
    job: _Export,
    stage: str,
    converted: _Converted,
    quantized: _Quantized,
    source_sha: str,
    method: str,
    keras_p: np.ndarray,
    xv: np.ndarray,
    xs: np.ndarray,
    y4s: np.ndarray,
) -> tuple[_Converted, _Quantized, _Calibrated]:
    """`export.calibration = "auto"`: the stage quantized again (precision chosen as configured) with each other
    draw of calibration images from `xs` (four-class labels `y4s`), the draw whose model agrees best with Keras on
    validation kept and left installed (`neurocascade.edge.calibration.choose_calibration`). The model quantized
    is the same for every draw: equalization and QAT, when configured, ran once on the first."""
    ex = job.cfg.export
    tried = {converted.calibration: (converted, quantized)}
    for draw in CALIBRATION_DRAWS:
        if draw in tried:
            continue
        images = xs[calibration_indices(y4s, ex.representative_samples, draw, job.cfg.train.seed)]
        other = replace(
            converted, calibration_images=images, calibration=draw, seconds=dict(converted.seconds), head_shift=None
        )
        tried[draw] = (
            other,
            _choose_precision(job, stage, other, source_sha, method, keras_p, xv, quantized.float_probs),
        )
    draw, reason = choose_calibration({d: q.agreement for d, (_, q) in tried.items()})
    chosen, chosen_q = tried[draw]
    if draw != list(tried)[-1]:  # the last one tried lost: put the chosen one back
        _write_stage(job, stage, chosen, chosen_q.data, chosen_q.mode, source_sha, method)
    job.say(f"{stage}: {draw} calibration ({reason})")
    candidates = {d: {"agreement": q.agreement} for d, (_, q) in tried.items()}
    return chosen, chosen_q, _Calibrated(reason, candidates)


def _refit_stage(
    job: _Export,
    stage: str,
    converted: _Converted,
    quantized: _Quantized,
    source_sha: str,
    method: str,
    keras_p: np.ndarray,
    xv: np.ndarray,
    split: _Split,
    mask: np.ndarray,
) -> tuple[_Quantized, dict]:
    """`export.head_refit_epochs`: the installed INT8 model's float head distilled onto its backbone's pooled
    features of the stage's training images (`split.x_train[mask]`; edge/head_refit.py), converted again with the
    same calibration images (the same backbone, so the same features) and measured on validation as any candidate:
    installed unless it agrees less than the head before it. The targets are the Keras model's head on its float
    pooled features, shared by the models of one backbone (`_float_features`); the one graph's two heads are
    refitted each as its own model's is."""
    ex, cfg = job.cfg.export, job.cfg
    t0 = time.perf_counter()
    xs = split.x_train[mask]
    start = converted.source_model
    if ex.corrects_head_bias:
        start = shifted_head(start, _head_shift(job, stage, converted)[0])  # kept from the conversion: no new one
    key = f"{shift_key(start, converted.calibration_images)}:{hashlib.sha256(np.ascontiguousarray(xs)).hexdigest()}"
    if key not in job.int8_features:
        job.int8_features[key] = int8_pooled_features(quantized.data, xs, pooled_layer_name(start))
    features = job.int8_features[key]
    source, bs = converted.source_model, cfg.train.batch_size
    pooled = _float_features(job, source, split.x_train)[mask]
    # each head on the rows its model reads: the one graph's gate head on every image, its subtype head on tumours
    rows = (
        {out: EXPORT_STAGES[name].select(split.y4[mask])[0] for name, out in HEAD_OUTPUTS.items()}
        if stage == ONE_GRAPH
        else {None: np.ones(len(xs), bool)}
    )
    fits = {out: (features[r], predict_batches(head_of(source, out), pooled[r], bs)) for out, r in rows.items()}
    refitted = refit_heads(start, fits, ex.head_refit_epochs, ex.head_refit_lr, cfg.train.seed)
    data = _with_metadata(
        job,
        stage,
        "int8",
        convert_int8(refitted, converted.representative_dataset(), ex.float_ops, ex.float_layers),
        source_sha,
    )
    files = _write_stage(job, stage, converted, data, "int8", source_sha, method)
    probs = _probs(files["int8"], xv)
    before, after = quantized.agreement, job.agreement(stage, keras_p, probs)
    kept = after >= before
    if not kept:  # validation decides, as between calibration draws: the head before the refit goes back in
        _write_stage(job, stage, converted, quantized.data, "int8", source_sha, method)
    converted.seconds["head_refit"] = round(time.perf_counter() - t0, 1)
    job.say(
        f"{stage}: head refitted on the INT8 features of {len(xs)} training images ({ex.head_refit_epochs} epochs, "
        f"{converted.seconds['head_refit']} s): validation agreement {_num(before, '.4f')} -> {_num(after, '.4f')}"
        + ("" if kept else "; lower, so the head before the refit is installed")
    )
    refit = {"images": len(xs), "epochs": ex.head_refit_epochs, "agreement_before": before, "kept": kept}
    if not kept:
        return quantized, refit
    candidates = {
        **quantized.candidates,
        "int8": {**quantized.candidates["int8"], "agreement": after, "bytes": len(data)},
    }
    return replace(quantized, data=data, probs=probs, candidates=candidates), refit


def _float_features(job: _Export, model: keras.Model, x_train: np.ndarray) -> np.ndarray:
    """The pooled features `model`'s float backbone gives every training image, computed once per backbone: a
    cascade's gate, subtype model and one graph share their backbone (`model.backbone_from`), so one pass serves
    the three refits' targets where each Keras model's own pass over its images took as long."""
    backbone = pooled_model(model)
    key = weights_sha256(backbone)
    if key not in job.float_features:
        job.float_features[key] = predict_batches(backbone, x_train, job.cfg.train.batch_size)
    return job.float_features[key]


def _keras_files(stage: str) -> str:
    """The Keras file(s) a stage's models are converted from (the one graph: the gate's and the subtype model's)."""
    names = CASCADE_STAGES if stage == ONE_GRAPH else (stage,)
    return " + ".join(f"models/{name}.keras" for name in names)


def _write_stage(
    job: _Export, stage: str, converted: _Converted, quantized: bytes, mode: str, source_sha: str, method: str
) -> dict[str, Path]:
    """The stage's two model files (`quantized` in `mode` as the "int8" variant) and its sidecar (what the device
    reads); returns the files by variant."""
    cfg, ex, size = job.cfg, job.cfg.export, job.cfg.data.image_size
    files = {"float32": model_path(job.out, stage, "float32"), "int8": model_path(job.out, stage, "int8")}
    atomic_write_bytes(files["float32"], converted.float_bytes)
    atomic_write_bytes(files["int8"], quantized)
    models_entry = {
        variant: {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path), **_tensor_info(path)}
        for variant, path in files.items()
    }
    models_entry["int8"].update(
        {
            "method": method,
            "quantization": mode,
            "calibration": converted.calibration,
            "representative_samples": converted.n_rep,
            "float_ops": list(ex.float_ops) if mode == "int8" else [],
            **({"float_layers": list(ex.float_layers)} if mode == "int8" and ex.float_layers else {}),
        }
    )
    qat = converted.qat_summary
    Sidecar(
        stage=stage,
        kind=job.kind,
        labels=EXPORT_STAGES[stage].classes,
        classes=CLASSES,
        input={
            "size": size,
            "shape": [1, size, size, 3],
            "dtype": "uint8",
            "preprocessing": PREPROCESSING,
            "clahe": cfg.data.clahe,
            "clahe_clip": cfg.data.clahe_clip,
            "min_side": cfg.data.min_side,
        },
        output=ex.output,
        output_meaning=OUTPUT_MEANING[ex.output],
        models=models_entry,
        tau=job.tau,
        tau_meaning=None if job.tau is None else TAU_MEANING,
        source={
            "keras_file": _keras_files(stage),
            "sha256": source_sha,
            "run": job.run_dir.name,
            "backbone": cfg.model.backbone,
            "dataset_fingerprint": job.manifest.dataset["fingerprint"],
        },
        qat=None if qat is None else {k: v for k, v in qat.items() if k != "history"},
        packages=job.packages,
    ).write(job.out / f"{stage}.json")
    return files


def _stage_agreement(
    job: _Export,
    stage: str,
    converted: _Converted,
    quantized: _Quantized,
    calibrated: _Calibrated | None,
    keras_bytes: int,
    keras_p: np.ndarray,
    y_val: np.ndarray,
    refit: dict | None = None,
) -> dict:
    """The device's runtime against Keras on this model's validation images, how it was quantized and why, plus
    sizes and times; `refit`: what `_refit_stage` did."""
    int8_p = quantized.probs
    float_size, int8_size = len(converted.float_bytes), len(quantized.data)
    entry = {
        **_agreement(keras_p, int8_p, quantized.float_probs, y_val, len(EXPORT_STAGES[stage].classes)),
        "quantization": quantized.mode,
        "quantization_reason": quantized.reason,
        "calibration": converted.calibration,
        "representative_samples": converted.n_rep,
        "candidates": quantized.candidates,
        "keras_bytes": keras_bytes,
        "float32_bytes": float_size,
        "int8_bytes": int8_size,
        "float32_to_int8_ratio": round(float_size / int8_size, 2),
        "keras_to_int8_ratio": round(keras_bytes / int8_size, 2),
        "seconds": converted.seconds,
    }
    if stage == "gate" and len(y_val):  # what the cascade acts on: the decision at τ, not the arg-max
        entry["tau_decision_agreement"] = _round(
            np.mean(tumour_called(keras_p[:, 0], job.tau) == tumour_called(int8_p[:, 0], job.tau))
        )
    if calibrated is not None:
        entry["calibration_reason"] = calibrated.reason
        entry["calibration_candidates"] = calibrated.candidates
    if converted.head_shift is not None:
        entry["head_bias_correction"] = converted.head_shift
    if refit is not None:
        entry["head_refit"] = refit
    if converted.qat_summary is not None:
        entry["qat_quantized_layers"] = {
            k: converted.qat_summary["quantization"][k] for k in ("layers", "default", "passthrough", "custom", "float")
        }
    return entry


def _cascade_agreement(job: _Export, keras_val: dict[str, np.ndarray], x_val: np.ndarray, y4_val: np.ndarray) -> dict:
    """The INT8 cascade as `predict` runs it against the Keras cascade: four-class decisions and probabilities."""
    # Checked as predict would load it, but before the manifest exists (it lists agreement.json).
    runtime = Cascade.from_models(load_model(model_path(job.out, "gate")), load_model(model_path(job.out, "subtype")))
    # the subtype run on every image: the same labels as predict's (an image below τ is "no tumour" whatever its
    # subtype), and its four-class probabilities on every image as Keras gives them
    edge_pred = runtime.predict(x_val, subtype_for_all=True)
    called = edge_pred.labels != NO_TUMOUR
    return {**_decisions(job.tau, keras_val, edge_pred, y4_val), "subtype_ran": int(called.sum())}


def _one_graph_decisions(job: _Export, keras_val: dict[str, np.ndarray], x_val: np.ndarray, y4_val: np.ndarray) -> dict:
    """The INT8 one graph as `predict` runs it against the Keras cascade: the "cascade" entry's four-class
    decisions at τ and probabilities, which replace the arg-max agreement of its four outputs."""
    runtime = OneGraphCascade(load_model(model_path(job.out, ONE_GRAPH)))
    return _decisions(job.tau, keras_val, runtime.predict(x_val), y4_val)


def _decisions(tau: float, keras_val: dict[str, np.ndarray], edge_pred: Prediction, y4_val: np.ndarray) -> dict:
    """A four-class cascade on the device against the Keras cascade: hard labels at τ, the τ decision, the soft
    probabilities P(no) = 1 − p, P(k) = p·q_k, and macro-F1."""
    keras_hard = hard_predictions(keras_val["gate"][:, 0], keras_val["subtype"], tau)
    keras_soft = soft_probabilities(keras_val["gate"][:, 0], keras_val["subtype"])
    entry = {
        "n_val": int(len(y4_val)),
        "int8_top1_agreement": _round(np.mean(edge_pred.labels == keras_hard)) if len(y4_val) else None,
        "keras_macro_f1": _round(_hard_f1(y4_val, keras_hard)),
        "int8_macro_f1": _round(_hard_f1(y4_val, edge_pred.labels)),
    }
    if len(y4_val):  # what a user sees: the decision at τ and the four probabilities P(no), p·q_k
        called = edge_pred.labels != NO_TUMOUR
        entry["tau_decision_agreement"] = _round(np.mean(tumour_called(keras_val["gate"][:, 0], tau) == called))
        entry["int8_max_abs_prob_diff"] = _round(np.abs(edge_pred.probs - keras_soft).max())
    entry["macro_f1_diff"] = (
        None if entry["keras_macro_f1"] is None else _round(entry["int8_macro_f1"] - entry["keras_macro_f1"])
    )
    return entry


def _hard_f1(y: np.ndarray, labels: np.ndarray) -> float | None:
    if len(y) == 0:
        return None
    return macro_f1_score(y, labels, len(CLASSES))


def _mib(n: int | None) -> str:
    return "—" if n is None else f"{n / 2**20:.2f}"


def _num(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def agreement_table(report: dict):
    """The agreement report as a rich Table; flagged models in bold red, with the reason in the caption."""
    from rich.table import Table

    flagged = set(report.get("flagged", []))
    output = report.get("output", "probabilities")
    table = Table(
        title=f"INT8 export of {report['run']} ({report['method'].upper()}, {output}), validation split",
        title_justify="left",
    )
    # Narrow enough for an 80-column log: sizes share one column; the float32 |Δp| (≈ 1e-5) stays in the JSON.
    for col in (
        "model",
        "n",
        "INT8 agree",
        "τ agree",
        "F1 Keras",
        "F1 INT8",
        "ΔF1",
        "INT8 |Δp|",
        "MiB Keras/fp32/INT8",
        "status",
    ):
        table.add_column(
            col,
            justify="left" if col in ("model", "status") else "right",
            no_wrap=col == "MiB Keras/fp32/INT8",
            overflow="fold" if col == "model" else "ellipsis",  # a long label ("flat (balanced calibration)") wraps
        )
    for name, m in report["models"].items():
        bad = name in flagged
        status = "—" if m["int8_top1_agreement"] is None else "ok"
        if bad:
            status = f"BELOW {report['min_agreement']:.2f}"
        sizes = "/".join(f"{m[k] / 2**20:.1f}" for k in ("keras_bytes", "float32_bytes", "int8_bytes") if m.get(k))
        table.add_row(
            precision_label(name, m),
            str(m["n_val"]),
            _num(m["int8_top1_agreement"], ".3f"),
            _num(m.get("tau_decision_agreement"), ".3f"),
            _num(m["keras_macro_f1"], ".3f"),
            _num(m["int8_macro_f1"], ".3f"),
            _num(m["macro_f1_diff"], "+.3f"),
            _num(m.get("int8_max_abs_prob_diff"), ".3f"),
            sizes if m.get("int8_bytes") else "—",
            status,
            style="bold red" if bad else None,
        )
    if flagged:
        table.caption = (
            f"FLAGGED: {', '.join(sorted(flagged))} — INT8 top-1 agreement with Keras below "
            f"export.min_agreement = {report['min_agreement']}; do not deploy without checking"
        )
        table.caption_style = "bold red"
    return table
