"""Run exported models with LiteRT (`ai-edge-litert`) only: no TensorFlow, so it installs on a Raspberry Pi.

    gate = load_model("runs/NAME/export/gate.int8.tflite")       # reads and checks gate.json next to it
    p = gate.predict_proba(images)                                 # uint8 (N, S, S, 3) → float (N, 2)

    cascade = Cascade.load("runs/NAME/export")                     # gate + subtype, τ from the sidecars
    probs, labels, stages = cascade.predict(images)                # (N, 4) in CLASSES order, (N,), per-image stages
    flat = FlatModel.load("runs/NAME/export")
    one = OneGraphCascade.load("runs/NAME/export")                 # the cascade as one graph (export.one_graph)

An export directory holds `<stage>.float32.tflite`, `<stage>.int8.tflite` and the sidecar `<stage>.json` (labels,
input size and preprocessing, tensor dtypes and quantization, the models' sha256, τ for a cascade), `agreement.json`
and `export-manifest.json` (every file's sha256), all written by `neurocascade.edge.export` and swapped in as a whole.

Nothing is loaded before it is checked (`neurocascade.edge.manifest`), each failure a one-line UserError naming the file:
`Cascade.load` / `FlatModel.load` verify the whole folder against its manifest (a missing manifest, a file whose
sha256 differs, a model or sidecar it does not list); `load_model(path)` checks the model and its sidecar against
the manifest when there is one beside it, and always the model's sha256 against the one its sidecar records. Every
sidecar read is value-checked: required keys, τ finite in [0, 1], labels exactly the stage's classes in order.

The cascade runs the subtype model only for the images the gate calls tumour (P(tumour) ≥ τ). For the others
there is no subtype distribution q, so the soft four-class output cannot be P(k) = p·q_k: their three tumour
probabilities are NaN (unknown; they sum to p = 1 − P(no tumour), which is reported), never a made-up uniform
split. `predict(images, subtype_for_all=True)` runs the subtype model on every image and gives the full soft
output P(no) = 1 − p, P(k) = p·q_k, for scoring and calibration.

An export with `export.one_graph` also holds `one_graph.*.tflite`: the same cascade as one graph, both heads on
one backbone pass, whose output is that soft four-class output for every image. `OneGraphCascade` takes τ's
decision from p = 1 − P(no tumour) and the subtype from the arg-max of p·q_k: `Cascade`'s labels, in one pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from neurocascade.edge.manifest import (
    MODEL_VARIANTS,
    ExportManifest,
    Sidecar,
    manifest_beside,
    read_manifest,
    verify_export,
    verify_file,
)
from neurocascade.edge.outputs import softmax
from neurocascade.edge.quiet import quiet_litert
from neurocascade.hierarchy.cascade import hard_from_soft, hard_predictions, soft_probabilities, tumour_called
from neurocascade.hierarchy.stages import ONE_GRAPH
from neurocascade.errors import UserError
from neurocascade.io import sha256_file

VARIANTS = MODEL_VARIANTS  # ("int8", "float32")
GATE_LABELS = ("tumor", "no_tumor")


class Prediction(NamedTuple):
    """probs (N, 4) in `classes` order (NaN: not computed), hard labels (N,) indexing `classes`, stages per image."""

    probs: np.ndarray
    labels: np.ndarray
    stages: list[tuple[str, ...]]


def model_path(export_dir: str | Path, stage: str, variant: str = "int8") -> Path:
    if variant not in VARIANTS:
        raise UserError(f"unknown model variant {variant!r}; available: {', '.join(VARIANTS)}")
    return Path(export_dir) / f"{stage}.{variant}.tflite"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_sidecar(path: str | Path) -> Sidecar:
    """The sidecar, its values checked (`neurocascade.edge.manifest.Sidecar`); a missing or unreadable file, or a missing,
    unknown or out-of-range value, is a one-line UserError."""
    return Sidecar.read(path)


def _quant(detail: dict) -> tuple[float, int] | None:
    scale, zero = detail["quantization"]
    return (float(scale), int(zero)) if scale else None


def quantize_input(images: np.ndarray, detail: dict) -> np.ndarray:
    """Pixel values (N, S, S, 3) as the input tensor `detail` (an interpreter's input detail) takes them."""
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return images.astype(np.float32)
    scale, zero = _quant(detail) or (1.0, 0)
    if scale == 1.0 and zero == 0 and dtype == np.uint8 and images.dtype == np.uint8:
        return images  # the usual case: uint8 input quantization is the identity on 0..255 pixels
    info = np.iinfo(dtype)
    return np.clip(np.rint(images.astype(np.float32) / scale + zero), info.min, info.max).astype(dtype)


class EdgeModel:
    """One LiteRT model with its sidecar: uint8 images in, float probabilities out (softmax of its logits, or its
    dequantized probabilities, as the sidecar's `output` says)."""

    def __init__(self, path: Path, sidecar: Sidecar, interpreter):
        self.path, self.sidecar, self.interpreter = path, sidecar, interpreter
        self.stage: str = sidecar.stage
        self.labels: tuple[str, ...] = sidecar.labels
        self.size: int = int(sidecar.input["size"])
        self.tau: float | None = sidecar.tau
        self.output: str = sidecar.output_kind
        self._in = interpreter.get_input_details()[0]
        self._out = interpreter.get_output_details()[0]
        self.input_dtype = np.dtype(self._in["dtype"])
        self._out_q = _quant(self._out)

    def _input(self, image: np.ndarray) -> np.ndarray:
        """One uint8 image (S, S, 3) as the model's input tensor (1, S, S, 3)."""
        return quantize_input(image[None], self._in)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Float probabilities (N, k) in `labels` order for uint8 model inputs (N, S, S, 3), one image at a time.

        A logits model's dequantized outputs go through a float softmax. A quantized softmax comes in 1/256 steps
        and its largest value is 255/256 ≈ 0.996, so its rows are renormalised to sum to 1: without that, a gate
        threshold τ above 0.996 (chosen on the float model) could never be reached and the INT8 cascade would
        call every image no tumour.
        """
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (self.size, self.size, 3):
            raise ValueError(
                f"{self.path.name}: expected uint8 images (N, {self.size}, {self.size}, 3), "
                f"got {images.dtype} {images.shape}"
            )
        out = np.empty((len(images), len(self.labels)), np.float32)
        for i, image in enumerate(images):
            self.interpreter.set_tensor(self._in["index"], self._input(image))
            self.interpreter.invoke()
            y = self.interpreter.get_tensor(self._out["index"])[0]
            out[i] = (y.astype(np.float32) - self._out_q[1]) * self._out_q[0] if self._out_q else y
        if self.output == "logits":
            return softmax(out).astype(np.float32)
        total = out.sum(axis=1, keepdims=True)
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), np.float32(1.0 / out.shape[1]))


def _refuse_threads(num_threads: int | None) -> None:
    if num_threads is not None and (
        isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1
    ):
        raise UserError(
            f"--threads {num_threads}: the number of LiteRT threads must be at least 1 "
            "(leave it out for LiteRT's default)"
        )


def check_threads(num_threads: int | None, cores: int | None = None) -> str | None:
    """Refuse a LiteRT thread count below 1 (LiteRT's own error would blame the model file); return a warning
    when it exceeds the cores this process may use (`cores`, else its affinity): XNNPACK's extra threads only
    wait on each other (999 threads on 2 cores ran 30× slower). None: LiteRT's default, always fine."""
    if num_threads is None:
        return None
    _refuse_threads(num_threads)
    if cores is None:
        from neurocascade.edge.cpuinfo import available_cpus

        cores = len(available_cpus())
    if num_threads > cores:
        return (
            f"--threads {num_threads} on {cores} core(s): threads beyond the cores only wait on each other and "
            f"make inference slower; use at most {cores}"
        )
    return None


def _check(path: Path, what: str, sidecar_value, model_value) -> None:
    if sidecar_value != model_value:
        raise UserError(
            f"{path}: the sidecar says {what} {sidecar_value}, the model has {model_value}; "
            f"re-export the run so they match"
        )


def load_model(path: str | Path, num_threads: int | None = None) -> EdgeModel:
    """Load `<stage>.<variant>.tflite` and its sidecar `<stage>.json`, checking they describe the same model.

    `num_threads`: LiteRT/XNNPACK threads (None: LiteRT's default). When the export's manifest is beside the file,
    the model and its sidecar must be listed in it with their sha256 (a folder without one is accepted here, e.g.
    a single model copied to a device; `Cascade.load` and `FlatModel.load` require it). A missing or corrupt file,
    a model whose sha256 is not the one its sidecar records, a sidecar with missing or out-of-range values, or
    whose labels, input shape, dtypes or quantization disagree with the model, is a one-line UserError.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: model file not found")
    manifest = None
    if manifest_beside(path):
        manifest = read_manifest(path.parent)
        verify_file(path.parent, manifest, path.name)
        verify_file(path.parent, manifest, f"{path.name.split('.')[0]}.json")
    return _load(path, num_threads, manifest)


def _load(path: Path, num_threads: int | None, manifest: ExportManifest | None) -> EdgeModel:
    """`load_model` after the manifest check (`manifest`: the verified one, whose sha256 stands for the file's)."""
    from ai_edge_litert.interpreter import Interpreter

    if not path.is_file():
        raise UserError(f"{path}: model file not found")
    _refuse_threads(num_threads)  # before LiteRT, whose own error would blame the model file
    stage = path.name.split(".")[0]
    sidecar = read_sidecar(path.with_name(f"{stage}.json"))
    entry = next((v for v in sidecar.models.values() if v["file"] == path.name), None)
    if entry is None:
        raise UserError(
            f"{path}: not listed in {stage}.json (files: {', '.join(v['file'] for v in sidecar.models.values())})"
        )
    sha = manifest.files[path.name].sha256 if manifest is not None else sha256_file(path)
    if sha != entry["sha256"]:
        raise UserError(
            f"{path}: sha256 differs from the one {stage}.json records (changed after the export, or "
            f"copied from another export); re-export the run (python cli.py export --run RUN)"
        )
    try:
        with quiet_litert():
            interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
            interpreter.allocate_tensors()
    except Exception as exc:  # LiteRT raises ValueError/RuntimeError with multi-line text for a bad file
        raise UserError(f"{path}: not a valid TFLite model ({_one_line(exc)})") from None
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise UserError(f"{path}: expected one input and one output, the model has {len(inputs)} and {len(outputs)}")
    size = int(sidecar.input["size"])
    _check(path, "input shape", [1, size, size, 3], [int(d) for d in inputs[0]["shape"]])
    _check(path, "output shape", [1, len(sidecar.labels)], [int(d) for d in outputs[0]["shape"]])
    for name, detail in (("input", inputs[0]), ("output", outputs[0])):
        _check(path, f"{name} dtype", entry[name]["dtype"], np.dtype(detail["dtype"]).name)
        want = entry[name].get("quantization")
        have = _quant(detail)
        if (want is None) != (have is None) or (
            want and (not np.isclose(want["scale"], have[0], rtol=1e-6) or want["zero_point"] != have[1])
        ):
            _check(path, f"{name} quantization", want, have and {"scale": have[0], "zero_point": have[1]})
    return EdgeModel(path, sidecar, interpreter)


class Cascade:
    """Gate then subtype: the subtype model runs only for images the gate calls tumour."""

    def __init__(self, gate: EdgeModel, subtype: EdgeModel, tau: float, classes: tuple[str, ...]):
        if gate.labels != GATE_LABELS:
            raise UserError(f"{gate.path}: a gate must have labels {GATE_LABELS}, this one has {gate.labels}")
        missing = [c for c in classes if c not in subtype.labels and c != GATE_LABELS[1]]
        if missing or len(classes) != len(subtype.labels) + 1:
            raise UserError(f"{subtype.path}: subtype labels {subtype.labels} do not cover the classes {classes}")
        if gate.size != subtype.size:
            raise UserError(
                f"{gate.path.parent}: gate and subtype take different input sizes ({gate.size}, {subtype.size})"
            )
        self.gate, self.subtype, self.tau, self.classes = gate, subtype, float(tau), tuple(classes)
        self.size = gate.size
        self.sidecar = gate.sidecar
        self._no = self.classes.index(GATE_LABELS[1])
        self._subtype_cols = tuple(self.classes.index(c) for c in subtype.labels)

    @classmethod
    def load(cls, export_dir: str | Path, variant: str = "int8", num_threads: int | None = None) -> "Cascade":
        """The cascade of an export folder, verified against its manifest first (module doc)."""
        manifest = verify_export(export_dir)
        return cls.from_models(
            _load(model_path(export_dir, "gate", variant), num_threads, manifest),
            _load(model_path(export_dir, "subtype", variant), num_threads, manifest),
        )

    @classmethod
    def from_models(cls, gate: EdgeModel, subtype: EdgeModel) -> "Cascade":
        """A cascade of two loaded models whose sidecars carry the same τ."""
        taus = {gate.tau, subtype.tau}
        if None in taus or len(taus) != 1:
            raise UserError(
                f"{gate.path.parent}: gate and subtype sidecars must carry the same gate threshold tau, "
                f"found {gate.tau} and {subtype.tau}"
            )
        return cls(gate, subtype, gate.tau, gate.sidecar.classes)

    def predict(self, images: np.ndarray, subtype_for_all: bool = False) -> Prediction:
        """Four-class probabilities, hard labels at τ and the stages that ran, per image (see module doc)."""
        images = np.asarray(images)
        p = self.gate.predict_proba(images)[:, 0].astype(np.float64)
        called = tumour_called(p, self.tau)
        run = np.ones(len(images), bool) if subtype_for_all else called
        q = np.full((len(images), len(self.subtype.labels)), np.nan)
        if run.any():
            q[run] = self.subtype.predict_proba(images[run])
        probs = soft_probabilities(p, q, self._no, self._subtype_cols)
        labels = hard_predictions(p, q, self.tau, self._no, self._subtype_cols).astype(np.int64)
        stages = [("gate", "subtype") if r else ("gate",) for r in run]
        return Prediction(probs, labels, stages)


class OneGraphCascade:
    """The cascade exported as one graph (`one_graph.<variant>.tflite`, `export.one_graph`): one backbone pass
    gives the four probabilities P(k) = p·q_k, P(no tumour) = 1 − p for every image; the decisions are
    `Cascade`'s (tumour when p ≥ τ, then the subtype's arg-max), behind the same `predict`."""

    def __init__(self, model: EdgeModel):
        if model.tau is None or model.labels != model.sidecar.classes:
            raise UserError(f"{model.path}: not a cascade exported as one graph (its sidecar has no τ or labels)")
        self.model, self.classes, self.size, self.sidecar = model, model.labels, model.size, model.sidecar
        self.tau = float(model.tau)
        self._no = self.classes.index(GATE_LABELS[1])
        self._subtype_cols = tuple(i for i in range(len(self.classes)) if i != self._no)

    @classmethod
    def load(cls, export_dir: str | Path, variant: str = "int8", num_threads: int | None = None) -> "OneGraphCascade":
        """The one-graph cascade of an export folder, verified against its manifest first (module doc)."""
        manifest = verify_export(export_dir)
        return cls(_load(model_path(export_dir, ONE_GRAPH, variant), num_threads, manifest))

    def predict(self, images: np.ndarray) -> Prediction:
        probs = self.model.predict_proba(images).astype(np.float64)
        labels = hard_from_soft(probs, self.tau, self._no, self._subtype_cols)
        return Prediction(probs, labels.astype(np.int64), [(ONE_GRAPH,)] * len(probs))


class FlatModel:
    """The four-class baseline behind the same `predict` as `Cascade`."""

    def __init__(self, model: EdgeModel):
        self.model, self.classes, self.size, self.sidecar = model, model.labels, model.size, model.sidecar

    @classmethod
    def load(cls, export_dir: str | Path, variant: str = "int8", num_threads: int | None = None) -> "FlatModel":
        """The flat model of an export folder, verified against its manifest first (module doc)."""
        manifest = verify_export(export_dir)
        return cls(_load(model_path(export_dir, "flat", variant), num_threads, manifest))

    def predict(self, images: np.ndarray) -> Prediction:
        probs = self.model.predict_proba(images).astype(np.float64)
        return Prediction(probs, np.argmax(probs, axis=1), [("flat",)] * len(probs))
