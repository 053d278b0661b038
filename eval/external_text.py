"""The external-data report as text: the copy audit, then all images vs no copy in training, side by side.
Formatting only: every number comes from the report dict `neurocascade.eval.external.evaluate_external` builds.

    markdown = external_markdown(report, figures)
    console.print(copy_table(report)); console.print(all_vs_no_copy_table(report, width))
"""

from __future__ import annotations

from typing import Mapping

from rich.table import Table

from neurocascade.data.audit import KINDS
from neurocascade.data.audit_tables import leak_table
from neurocascade.eval.report_text import (
    comparison_sentence,
    md_table,
    report_markdown,
    side_by_side_table,
    table_rows,
    with_ci,
)

SHOWN_COPIES = 20  # copied images listed in report.md; predictions.csv has every image's copy
ALL, NO_COPY = "all images", "no copy"


def _columns(report: Mapping) -> dict[str, Mapping]:
    """{"<model> · all images" / "<model> · no copy": model section}, the models side by side."""
    out = {}
    for name, section in report["models"].items():
        out[f"{name} · {ALL}"] = section
        if report.get("no_copy"):
            out[f"{name} · {NO_COPY}"] = report["no_copy"]["models"][name]
    return out


def copy_table(report: Mapping) -> Table | None:
    """Per class: how many external images have an exact, near or mirrored copy among the training images."""
    return leak_table(report["copy_audit"], "external", title="External images with a copy in training")


def all_vs_no_copy_table(report: Mapping, width: int) -> Table:
    """Every model's headline metrics with CIs, on all images and on those with no copy in training."""
    merged = {
        **report,
        "models": _columns(report),
        "comparison": None,
        "meta": {**report["meta"], "split": f"external: {ALL} and those with {NO_COPY} in training"},
    }
    table = side_by_side_table(merged, width)
    for label, comparison in _comparisons(report):
        table.caption.append(f"\n{label}: {comparison_sentence(comparison)}")
    return table


def _comparisons(report: Mapping) -> list[tuple[str, Mapping]]:
    """("All images" / "No copy", cascade − flat comparison) where both models were scored."""
    parts = ((report, ALL), (report.get("no_copy"), NO_COPY))
    return [(label.capitalize(), part["comparison"]) for part, label in parts if part and part.get("comparison")]


def _audit_lines(audit: Mapping) -> list[str]:
    counts = audit["external_with_copy_in_train"]
    rows = []
    for cls, row in counts.items():
        copied = sum(row[k] for k in KINDS)
        share = f"{copied / row['images']:.0%}" if row["images"] else "–"
        name = f"**{cls}**" if cls == "all" else cls
        rows.append([name, row["images"], *(row[k] for k in KINDS), row["none"], share])
    mirror = ", also mirrored" if audit["mirror"] else ""
    lines = [
        f"Each external image against the {audit['training_images']} images the scored models were fitted "
        f"on (their training split, from {', '.join(f'`{d}`' for d in audit['training_data'])}): exact = "
        f"identical file content; near = 256-bit gradient hashes at most {audit['threshold_bits']} bits apart"
        f"{mirror} (mirror = only once mirrored). The same test as `audit-data`.",
        "",
        *md_table(["class", "images", *KINDS, "no copy", "share copied"], rows),
        "",
    ]
    if audit["label_conflicts"]:
        lines += [f"{audit['label_conflicts']} copied images carry another label than their copy in training.", ""]
    within = audit["copy_pairs_within_external"]
    if sum(within.values()):
        lines += [
            f"{sum(within.values())} pairs of external images are copies of each other "
            f"({', '.join(f'{k} {v}' for k, v in within.items() if v)}): each counts as an image of its own, "
            "so the intervals below are narrower than the evidence.",
            "",
        ]
    if audit.get("unreadable"):
        lines += [f"{len(audit['unreadable'])} images could not be read and are not scored.", ""]
    copies = audit["copies"]
    if copies:
        shown = sorted(copies, key=lambda c: (KINDS.index(c["kind"]), c["distance"], c["path"]))[:SHOWN_COPIES]
        rows = [
            [f"`{c['path']}`", c["label"], c["kind"], c["distance"], f"`{c['training_copy']}`", c["training_label"]]
            for c in shown
        ]
        more = f" ({len(copies) - len(shown)} more in predictions.csv)" if len(copies) > len(shown) else ""
        lines += [
            f"Copied images{more}:",
            "",
            *md_table(["external image", "label", "copy", "bits apart", "training image", "its label"], rows, "lllrll"),
            "",
        ]
    return lines


def external_markdown(report: Mapping, figures: Mapping[str, str] | None = None) -> str:
    """report.md of an external evaluation: what was scored, the copy audit, all vs no copy, then the details."""
    meta, audit, no_copy = report["meta"], report["copy_audit"], report.get("no_copy")
    names = ", ".join(f"{n} `{p}`" for n, p in meta["runs"].items())
    n_free = no_copy["meta"]["images"] if no_copy else 0
    lines = [
        f"# NeuroCascade on external data — {meta['protocol_name']}",
        "",
        f"{meta['images']} labelled images from `{meta['dataset']}`, scored by {names} with the "
        f"{meta['backend']} backend. First the copy audit against the training images, then every metric on "
        f"all images and on the {n_free} with no copy in training; brackets are 95% confidence intervals.",
        "",
        "## Copy audit against the training images",
        "",
        *_audit_lines(audit),
        "## All images vs no copy in training",
        "",
    ]
    columns = _columns(report)
    rows = [
        [label, *(with_ci(m["ci"].get(key)) for m in columns.values())]
        for key, label in table_rows(report["classes"], report["ece_bins"])
    ]
    lines += md_table(["metric", *(f"{c} (n = {m['n']})" for c, m in columns.items())], rows) + [""]
    if not no_copy:
        lines += ["Every external image has a copy in training: no metric can be given without copies.", ""]
    for label, comparison in _comparisons(report):
        lines += [f"{label}: {comparison_sentence(comparison)}", ""]
    lines += ["## All images in detail", ""] + _details(report_markdown(report, figures))
    return "\n".join(lines).rstrip("\n") + "\n"


def _details(markdown: str) -> list[str]:
    """The all-images report below its title, one heading level down, without its side-by-side table (the
    all-images columns above are that table)."""
    out, skipping = [], False
    for line in markdown.splitlines()[1:]:
        if line.startswith("## "):
            skipping = line == "## Side by side"
        if not skipping:
            out.append("#" + line if line.startswith("#") else line)
    return out
