"""Compare two `predict --json` outputs of one export on the same images, e.g. x86 against aarch64.

    result = compare_predictions(x86_rows, arm_rows)       # a flat, JSON-ready dict; result["passed"]
    python -m neurocascade.edge.crosscheck x86.json cortex-a72=arm-a72.json cortex-a76=arm-a76.json [--extra meta.json] [--out r.json]

Images are matched by file name (the two machines see them under different folders). They agree when, for every
image: the label is the same, the τ decision is the same (a cascade's gate sent the image on to the subtype model,
i.e. P(tumour) ≥ τ, on both or on neither; `stages` records it), the same probabilities are unknown (None: the
subtype model did not run), and each known probability differs by at most one quantization step of the uint8
softmax, 1/256 (plus the 1e-6 to which predict rounds). Different CPUs may legitimately round an INT8 kernel's
requantization differently by one step; more than that, or any different decision, is a real difference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

STEP = 1.0 / 256.0  # one step of a uint8-quantized softmax output
ROUNDING = 1e-6  # predict --json rounds probabilities to 6 decimals


def _by_name(rows: list[dict], what: str) -> dict[str, dict]:
    out = {Path(r["path"]).name: r for r in rows}
    if len(out) != len(rows):
        raise ValueError(f"{what}: two images share a file name; give each image a distinct name")
    return out


def compare_predictions(reference: list[dict], other: list[dict], tolerance: float = STEP) -> dict:
    """Per-image agreement of two predict outputs (module doc): counts, mismatches, the largest difference."""
    ref, oth = _by_name(reference, "reference"), _by_name(other, "other")
    if ref.keys() != oth.keys():
        missing = sorted(ref.keys() ^ oth.keys())
        raise ValueError(f"the two outputs cover different images, e.g. {missing[:3]}")
    labels, decisions, unknown, beyond = [], [], [], []
    max_diff, worst = 0.0, None
    for name in sorted(ref):
        a, b = ref[name], oth[name]
        if a["label"] != b["label"]:
            labels.append({"image": name, "reference": a["label"], "other": b["label"]})
        if a["stages"] != b["stages"]:
            decisions.append({"image": name, "reference": a["stages"], "other": b["stages"]})
        for cls, pa in a["probabilities"].items():
            pb = b["probabilities"].get(cls)
            if (pa is None) != (pb is None):
                unknown.append({"image": name, "class": cls, "reference": pa, "other": pb})
                continue
            if pa is None:
                continue
            diff = abs(pa - pb)
            if diff > max_diff:
                max_diff, worst = diff, {"image": name, "class": cls, "reference": pa, "other": pb}
            if diff > tolerance + ROUNDING:
                beyond.append({"image": name, "class": cls, "reference": pa, "other": pb, "diff": round(diff, 6)})
    passed = not (labels or decisions or unknown or beyond)
    return {
        "passed": passed,
        "n_images": len(ref),
        "same_labels": not labels,
        "same_tau_decisions": not decisions,
        "max_abs_prob_diff": round(max_diff, 6),
        "max_abs_prob_diff_in_steps": round(max_diff / STEP, 3),
        "tolerance": tolerance,
        "worst": worst,
        "label_mismatches": labels,
        "decision_mismatches": decisions,
        "unknown_mismatches": unknown,
        "beyond_tolerance": beyond,
        "labels": {name: ref[name]["label"] for name in sorted(ref)},
    }


def summary_line(result: dict) -> str:
    """One line for the terminal."""
    verdict = "PASS" if result["passed"] else "FAIL"
    return (
        f"{verdict}: {result['n_images']} images, labels {'same' if result['same_labels'] else 'DIFFER'}, "
        f"τ decisions {'same' if result['same_tau_decisions'] else 'DIFFER'}, max |Δp| "
        f"{result['max_abs_prob_diff']:.6f} ({result['max_abs_prob_diff_in_steps']} quantization steps; "
        f"tolerance 1 step = {STEP:.6f})"
    )


def check_all(reference: list[dict], others: dict[str, list[dict]]) -> dict:
    """`compare_predictions` of the reference against each named output; passed only when every one does."""
    checks = {name: compare_predictions(reference, rows) for name, rows in others.items()}
    return {
        "passed": bool(checks) and all(c["passed"] for c in checks.values()),
        "max_abs_prob_diff": max((c["max_abs_prob_diff"] for c in checks.values()), default=0.0),
        "checks": checks,
    }


def _named(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=FILE")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="predict --json output of the reference machine (x86)")
    parser.add_argument(
        "others",
        type=_named,
        nargs="+",
        metavar="NAME=FILE",
        help="predict --json outputs to check, e.g. cortex-a72=arm-a72.json",
    )
    parser.add_argument("--extra", type=Path, help="JSON object stored under 'run' in the result (timings, versions)")
    parser.add_argument("--out", type=Path, help="write the result JSON here")
    args = parser.parse_args(argv)
    try:
        result = check_all(
            json.loads(args.reference.read_text()), {name: json.loads(path.read_text()) for name, path in args.others}
        )
        if args.extra:
            result = {"run": json.loads(args.extra.read_text()), **result}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    for name, check in result["checks"].items():
        print(f"{name}: {summary_line(check)}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
