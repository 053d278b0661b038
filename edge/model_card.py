"""MODEL_CARD.md beside the exported models: what they are for, what they were trained and measured on, and under
which licences — read from the run's own files, so the card cannot drift from the models it describes.

    text = model_card(run_dir, agreement, created)     # agreement: the dict agreement.json holds
    write_model_card(export_folder, run_dir, agreement, created)

Sources, each named on the card: the run's config.toml, manifest.json (data, protocol, split, weights),
summary.json (validation metrics), tau.json (τ and the sensitivity it was chosen for), the export's agreement
(INT8 vs Keras on validation), the Keras test report `eval/test-keras/report.json` that scored the run on the
same data — its own, or a sibling cascade's that scored it as `--flat` (else the card says it is not evaluated), and configs/licences.toml (licences of the
data and the pretrained weights; one not listed there is printed as not recorded).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Mapping, Sequence

from neurocascade.eval.report_file import EvalReport
from neurocascade.eval.report_text import md_table, num, table_rows, with_ci
from neurocascade.hierarchy.artifacts import RunManifest, Tau, TrainingSummary
from neurocascade.config import ModelConfig, load_config
from neurocascade.errors import UserError
from neurocascade.io import atomic_write_text
from neurocascade.paths import builtin_configs_dir

LICENCES = "licences.toml"  # a built-in config file (neurocascade.paths)
CARD_FILE = "MODEL_CARD.md"
EVAL_REPORT = Path("eval") / "test-keras" / "report.json"
NOT_RECORDED = "licence not recorded in configs/licences.toml: check the owner's terms before sharing these models"
HEADLINE = (
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "tumour_sensitivity",
    "tumour_specificity",
    "roc_auc_macro",
    "ece",
)


def read_licences(path: Path | None = None) -> dict:
    """configs/licences.toml as a dict; an unreadable file is a one-line error."""
    path = builtin_configs_dir() / LICENCES if path is None else path
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path}: not a readable licences file ({exc})") from None


def _dataset_key(root: str) -> str:
    path = Path(root)
    if (path / "phantoms.json").is_file():
        return "phantoms"
    return path.stem if path.suffix.lower() == ".csv" else path.name


def _backbone_from_phrase(source: Mapping | None, model: ModelConfig) -> str:
    """The run whose fine-tuned backbone the models started from (model.backbone_from), if any, and which of them
    fine-tuned it further (model.backbone_from_finetune)."""
    if not source:
        return ""
    further = [stage for stage in source["stages"] if stage in model.backbone_from_finetune]
    return (
        f" (for {', '.join(source['stages'])}: the backbone fine-tuned by run `{source['run']}`, its "
        f"{source['stage']} model, sha256 {source['sha256'][:12]}…"
        + (f"; fine-tuned further by the {', '.join(further)} model" if further else "")
        + ")"
    )


def _extras_phrase(model: ModelConfig, stages: Sequence[str]) -> str:
    """ "; frozen extra backbones A, B (in the subtype model)": which models carry `model.extra_backbones`."""
    carriers = [stage for stage in stages if model.for_stages((stage,)).extra_backbones]
    if not carriers:
        return ""
    where = "" if len(carriers) == len(stages) else f" (in the {', '.join(carriers)} model only)"
    return f"; frozen extra backbones {', '.join(model.extra_backbones)}{where}"


def _backbone_size_phrase(model: ModelConfig, stages: Sequence[str], image_size: int) -> str:
    """ " (the gate model resizes it to 260×260 inside its graph)": the models whose backbone sees another size."""
    resized = [stage for stage in stages if model.for_stages((stage,)).resized_size(image_size)]
    if not resized:
        return ""
    size = model.backbone_size
    return f" (the {', '.join(resized)} model resizes it to {size}×{size} inside its graph)"


def licence_lines(
    licences: Mapping, dataset_root: str, backbone: str, weights_kind: str, extra_backbones: Sequence[str] = ()
) -> list[str]:
    """The licences of the code, the pretrained weights (the main backbone's, then each extra backbone's) and the
    training data, one Markdown item each."""
    data = licences.get("data", {}).get(_dataset_key(dataset_root))
    untrained = weights_kind in ("none", "random-fallback")
    key = "none" if untrained else backbone
    weights = licences.get("weights", {}).get(key)
    if weights_kind == "file":
        weights = None  # a user's own weights file: only its owner knows
    extra_kind = "none" if untrained else "imagenet"  # extras never take a weights file (models.build)
    extras = {name: licences.get("weights", {}).get("none" if untrained else name) for name in extra_backbones}
    lines = [
        f"- Code: {licences.get('code', {}).get('licence', NOT_RECORDED)}.",
        f"- Pretrained weights ({backbone}, {weights_kind}): {weights['licence'] if weights else NOT_RECORDED}.",
        *(
            f"- Pretrained weights of the extra backbone {name} ({extra_kind}): "
            f"{extra['licence'] if extra else NOT_RECORDED}."
            for name, extra in extras.items()
        ),
        f"- Training data (`{dataset_root}`): {data['licence'] if data else NOT_RECORDED}"
        + (f"; source: {data['source']}." if data and data.get("source") else "."),
        "- The exported weights derive from all three: share them only where every one of these allows it.",
    ]
    return lines


def _same_run(recorded: str | None, run_dir: Path) -> bool:
    if not recorded:
        return False
    path = Path(recorded)
    return path.resolve() == run_dir.resolve()  # a relative path: from the working folder eval ran in, as this one


def find_test_report(run_dir: Path, model: str) -> tuple[Path, dict] | None:
    """The Keras test report scoring this run: its own, else a sibling run's that scored it too (a cascade
    evaluated with `--flat` this run, as `make results` does)."""
    own = EvalReport.read_if_exists(run_dir / EVAL_REPORT)
    if own is not None and model in own.models:
        return run_dir / EVAL_REPORT, own.to_json()
    for other in sorted(run_dir.resolve().parent.iterdir()):
        report = (
            EvalReport.read_if_exists(other / EVAL_REPORT) if other.is_dir() and other != run_dir.resolve() else None
        )
        if report and model in report.models and _same_run(report.meta.get("runs", {}).get(model), run_dir):
            return other / EVAL_REPORT, report.to_json()
    return None


def _test_section(run_dir: Path, model: str, fingerprint: str) -> list[str]:
    found = find_test_report(run_dir, model)
    if found is None:
        return [
            f"Not yet evaluated: no `{EVAL_REPORT.as_posix()}` scores this run. `python cli.py eval "
            f"--run {run_dir}` writes it; export again afterwards to put the test metrics on this card.",
            "",
        ]
    source, report = found
    meta = report["meta"]
    if meta.get("fingerprint") != fingerprint:
        return [
            f"Not evaluated on the training data set: `{source}` scored other data "
            f"(fingerprint {meta.get('fingerprint')}, the run's is {fingerprint}).",
            "",
        ]
    section = report["models"][model]
    labels = dict(table_rows(report["classes"], report["ece_bins"]))
    rows = [(labels[k], with_ci(section["ci"].get(k))) for k in HEADLINE if k in section["ci"]]
    return [
        f"Keras model on the **{meta['split']}** split ({section['n']} images), protocol {meta['protocol']} — "
        f"{meta['protocol_name']}; 95% bootstrap intervals ({report['bootstrap']['n_resamples']} resamples). "
        f"From `{source}`; the full report is `report.md` / `report.html` beside it.",
        "",
        *md_table(["metric", "value [95% CI]"], rows),
        "",
    ]


def _validation_section(summary: Mapping, stages: list[str]) -> list[str]:
    rows = [
        (
            f"{s} model ({', '.join(summary['stages'][s]['classes'])})",
            "macro-F1",
            num(summary["stages"][s]["val_macro_f1"]),
        )
        for s in stages
    ]
    cascade = summary.get("cascade")
    if cascade:
        rows += [
            ("cascade at τ (four classes)", "macro-F1", num(cascade["val_macro_f1"])),
            ("cascade gate at τ", "tumour sensitivity", num(cascade["val_tumour_sensitivity"])),
            ("cascade gate at τ", "tumour specificity", num(cascade["val_tumour_specificity"])),
        ]
    return [
        *md_table(["model", "metric", "validation"], rows, align="llr"),
        "",
        "Validation images chose the epochs (and τ when no folds did): these numbers are optimistic; the "
        "test metrics below are the estimate.",
        "",
    ]


def precision_label(name: str, entry: Mapping[str, Any]) -> str:
    """A model's name, with its precision when it is not int8 and its calibration when it is not the random draw
    (an agreement.json entry; the export's table too)."""
    mode, draw = entry.get("quantization", "int8"), entry.get("calibration", "random")
    notes = [mode] * (mode != "int8") + [f"{draw} calibration"] * (draw != "random")
    return f"{name} ({', '.join(notes)})" if notes else name


def _agreement_section(agreement: Mapping) -> list[str]:
    rows = []
    for name, m in agreement["models"].items():
        rows.append(
            (
                precision_label(name, m),
                m["n_val"],
                num(m["int8_top1_agreement"]),
                num(m.get("tau_decision_agreement")),
                num(m["keras_macro_f1"]),
                num(m["int8_macro_f1"]),
                "FLAGGED" if name in agreement.get("flagged", []) else "ok",
            )
        )
    # the INT8 head's BatchNorm differs from the Keras model's when the export corrected it (edge/bias_correction.py)
    corrected = ", head corrected for the INT8 features' mean shift" if agreement.get("bias_correction") else ""
    refits = [m["head_refit"] for m in agreement["models"].values() if "head_refit" in m]  # edge/head_refit.py
    if any(r.get("kept", True) for r in refits):
        some = "" if all(r.get("kept", True) for r in refits) else " where it agreed at least as well"
        corrected += f", head refitted on the INT8 features of the training images{some}"
    return [
        f"INT8 ({agreement['method'].upper()}, {agreement.get('output', 'probabilities')} output{corrected}) against "
        "the Keras model on the validation split, run through the LiteRT runtime the device uses "
        f"(`agreement.json`); a model below {agreement['min_agreement']} top-1 agreement is flagged.",
        "",
        *md_table(
            [
                "model",
                "images",
                "INT8 = Keras (top-1)",
                "τ decision agrees",
                "macro-F1 Keras",
                "macro-F1 INT8",
                "status",
            ],
            rows,
        ),
        "",
    ]


def model_card(run_dir: Path, agreement: Mapping[str, Any], created: str, licences: Mapping | None = None) -> str:
    """The card's Markdown for the run in `run_dir` and its export's `agreement` (module doc)."""
    run_dir = Path(run_dir)
    cfg = load_config(run_dir / "config.toml")
    manifest = RunManifest.read(run_dir / "manifest.json").to_json()
    found = TrainingSummary.read_if_exists(run_dir / "summary.json")
    summary = found.to_json() if found is not None else {}
    licences = read_licences() if licences is None else licences
    data, stages = manifest["dataset"], list(manifest["stages"])
    kind = "cascade" if "gate" in stages else "flat"
    weights = manifest.get("weights", {}).get("kind", cfg.model.weights)
    counts = data["counts"]
    what = (
        "a two-stage cascade: a tumour gate (labels tumor / no_tumor) and, for images it calls tumour, a subtype model "
        "(glioma / meningioma / pituitary)"
        if kind == "cascade"
        else "a flat four-class classifier"
    )
    lines = [
        f"# Model card: {run_dir.resolve().name} ({kind})",
        "",
        f"Written by `python cli.py export` at {created} from the files of run `{run_dir}`; no number here is "
        "typed by hand. The export manifest lists this card with its sha256, like the models.",
        "",
        "## Intended use",
        "",
        "**Research only. Not a medical device**: not for diagnosis, triage, screening or any decision about a "
        "patient, and not validated on any clinical population or scanner.",
        "",
        f"The models are {what}. Input: one 2-D brain MRI slice (JPEG, PNG or DICOM), padded to square and "
        f"resized to {cfg.data.image_size}×{cfg.data.image_size}{_backbone_size_phrase(cfg.model, stages, cfg.data.image_size)}; "
        "output: probabilities of glioma, meningioma, "
        "pituitary and no_tumor.",
        "",
        "## Training data and protocol",
        "",
        f"- Data: `{data['root']}` (fingerprint `{data['fingerprint']}`).",
        f"- Protocol {data['protocol']}: {data['protocol_name']} (split seed {cfg.data.split_seed}); "
        f"{counts['train']} training, {counts['val']} validation and {counts['test']} test images, "
        f"{counts.get('dropped', 0)} training images dropped as copies of test images.",
        f"- Backbone {cfg.model.backbone}, weights: {weights}"
        + _backbone_from_phrase(manifest.get("weights", {}).get("backbone_from"), cfg.model)
        + _extras_phrase(cfg.model, stages)
        + f"; {len(stages)} model(s): {', '.join(stages)}.",
        "- Source: the run's `manifest.json` and `config.toml`.",
        "",
        "## Validation metrics",
        "",
        *(
            _validation_section(summary, stages)
            if summary
            else ["No summary.json in the run: validation metrics not recorded.", ""]
        ),
        "## Test metrics",
        "",
        *_test_section(run_dir, kind, data["fingerprint"]),
    ]
    if kind == "cascade":
        found_tau = Tau.read_if_exists(run_dir / "tau.json")
        tau = found_tau.to_json() if found_tau is not None else {}
        value = num(tau.get("tau", agreement.get("tau")), 4)
        target = tau.get("target_sensitivity", cfg.train.target_sensitivity)
        lines += [
            "## Decision threshold τ",
            "",
            f"The gate calls tumour when P(tumour) ≥ τ = {value}, the highest threshold reaching tumour "
            f"sensitivity ≥ {target} on {tau.get('chosen_on', 'validation')} (`tau.json`). Every sidecar of the "
            "export carries it.",
            "",
        ]
    lines += [
        "## INT8 agreement",
        "",
        *_agreement_section(agreement),
        "## Licences",
        "",
        *licence_lines(
            licences, data["root"], cfg.model.backbone, weights, cfg.model.for_stages(stages).extra_backbones
        ),
        "",
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_model_card(folder: Path, run_dir: Path, agreement: Mapping[str, Any], created: str) -> Path:
    """Write `folder/MODEL_CARD.md` (atomically) and return its path."""
    path = Path(folder) / CARD_FILE
    atomic_write_text(path, model_card(run_dir, agreement, created))
    return path
