"""The report dict as text: Markdown for people, a rich table for the terminal. Formatting only, no metrics.

Every headline number is printed with its 95% interval, `0.812 [0.771, 0.850]`, and a difference between
models is claimed only when its interval excludes 0.

    print(render_text(side_by_side_table(report, width=100), width=100))
"""

from __future__ import annotations

import io
from typing import Any, Mapping, Sequence

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

MINUS = "−"  # U+2212, as in the written sentence "cascade − flat"
CELL_WIDTH = 20  # "0.812 [0.771, 0.850]"


def table_rows(classes: Sequence[str], ece_bins: int) -> list[tuple[str, str]]:
    """(key in a model's "ci", label) for the side-by-side table, in order."""
    return [
        ("accuracy", "accuracy"),
        ("balanced_accuracy", "balanced accuracy"),
        ("macro_f1", "macro-F1"),
        ("weighted_f1", "weighted F1"),
        ("mcc", "MCC"),
        ("kappa", "Cohen's κ"),
        *[(f"recall_{c}", f"recall {c}") for c in classes],
        ("tumour_sensitivity", "tumour sensitivity"),
        ("tumour_specificity", "tumour specificity"),
        ("roc_auc_macro", "ROC-AUC (macro, one-vs-rest)"),
        ("ece", f"ECE ({ece_bins} bins; lower is better)"),
        ("brier", "Brier (lower is better)"),
    ]


def num(x: float | None, digits: int = 3, sign: bool = False) -> str:
    """A number with a real minus sign; "n/a" for an undefined value."""
    if x is None:
        return "n/a"
    text = f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"
    return text.replace("-", MINUS)


def with_ci(entry: Mapping[str, float | None] | None, sep: str = " ", sign: bool = False) -> str:
    """`0.812 [0.771, 0.850]` from {"value", "low", "high"}."""
    if entry is None or entry.get("value") is None:
        return "n/a"
    if entry.get("low") is None:
        return num(entry["value"], sign=sign)
    return f"{num(entry['value'], sign=sign)}{sep}[{num(entry['low'])}, {num(entry['high'])}]"


def p_value(p: float) -> str:
    if p < 0.001:
        return "< 0.001"
    return f"= {p:.3f}" if p < 0.01 else f"= {p:.2f}"


def _who(name: str) -> str:
    return "flat model" if name == "flat" else name


def comparison_sentence(comparison: Mapping[str, Any]) -> str:
    """ "cascade − flat macro-F1 = +0.021 [−0.010, 0.052]; McNemar p = 0.31: no evidence the cascade is better."

    The verdict follows the paired interval only: a difference is claimed when it excludes 0.
    """
    a, b, diff, mc = comparison["a"], comparison["b"], comparison["difference"], comparison["mcnemar"]
    metric = {"macro_f1": "macro-F1"}.get(comparison["metric"], comparison["metric"])
    value = diff["value"] or 0.0
    if diff["excludes_zero"]:
        verdict = f"the {_who(a if value > 0 else b)} is better (the 95% interval excludes 0)"
    elif value:
        verdict = f"no evidence the {_who(a if value > 0 else b)} is better (the 95% interval includes 0)"
    else:
        verdict = "no evidence of a difference (the 95% interval includes 0)"
    return f"{a} {MINUS} {b} {metric} = {with_ci(diff, sign=True)}; McNemar p {p_value(mc['p_value'])}: {verdict}."


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> list[str]:
    """A Markdown table; `align` holds "l" or "r" per column (default: first left, the rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    return [
        "| " + " | ".join(map(str, header)) + " |",
        "| " + " | ".join(sep) + " |",
        *["| " + " | ".join(map(str, r)) + " |" for r in rows],
    ]


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def _meta_lines(report: Mapping) -> list[str]:
    meta, boot = report["meta"], report["bootstrap"]
    rows = [("protocol", f"{meta['protocol']} — {meta['protocol_name']}"), ("split", meta["split"])]
    rows += [(k, meta[k]) for k in sorted(meta) if k not in ("protocol", "protocol_name", "split")]
    ns = sorted({m["n"] for m in report["models"].values()})
    rows += [
        ("images", ", ".join(map(str, ns))),
        (
            "uncertainty",
            f"{1 - boot['alpha']:.0%} {boot['interval']} intervals, "
            f"{'stratified ' if boot['stratified'] else ''}bootstrap, "
            f"{boot['n_resamples']} resamples, seed {boot['seed']}",
        ),
        ("schema", report["schema_version"]),
    ]
    return md_table(["setting", "value"], [(k, _md_escape(v)) for k, v in rows], align="ll")


def _confusion_md(model: Mapping, classes: Sequence[str]) -> list[str]:
    counts, shares = model["confusion"]["counts"], model["confusion"]["normalised"]
    rows = []
    for k, (c, row) in enumerate(zip(classes, counts)):
        # The recall shown is the report's rounded share, so it matches the side-by-side table digit for digit.
        rows.append([f"**{c}**", *row, sum(row), num(shares[k][k]) if sum(row) else "n/a"])
    return md_table(["true ↓ / predicted →", *classes, "images", "recall"], rows)


def report_markdown(report: Mapping, figures: Mapping[str, str] | None = None) -> str:
    """The human report: protocol first, side-by-side table with CIs, the paired verdict, gate, errors, figures."""
    meta, models, classes = report["meta"], report["models"], report["classes"]
    names = list(models)
    lines = [
        f"# NeuroCascade evaluation — protocol {meta['protocol']}: {meta['protocol_name']}",
        "",
        f"All numbers are on the **{meta['split']}** split under protocol **{meta['protocol']}**; "
        "brackets are 95% confidence intervals.",
        "",
        *_meta_lines(report),
        "",
    ]

    lines += ["## Side by side", ""]
    rows = [
        [label, *(with_ci(models[n]["ci"].get(key)) for n in names)]
        for key, label in table_rows(classes, report["ece_bins"])
    ]
    lines += md_table(["metric", *names], rows)
    lines += [
        "",
        "Recall of no_tumor is the tumour specificity; tumour sensitivity counts any tumour called a "
        "tumour class. ECE is biased upward on small test sets, and so is its interval: read it with the "
        "reliability diagram.",
        "",
    ]

    if report.get("comparison"):
        comp = report["comparison"]
        mc = comp["mcnemar"]
        lines += [
            f"## {comp['a'].capitalize()} vs {comp['b']}",
            "",
            comparison_sentence(comp),
            "",
            f"The interval is a paired bootstrap (both models on the same resampled images). McNemar "
            f"compares per-image correctness: b = {mc['b']} images only the {_who(comp['a'])} got right, "
            f"c = {mc['c']} only the {_who(comp['b'])} got right. Test: {mc['test']}.",
            "",
        ]

    for name in names:
        gate = models[name].get("gate")
        if gate:
            lines += [
                f"## Tumour gate ({name})",
                "",
                f"At τ = {gate['tau']:.4f}: tumour sensitivity {with_ci(gate['ci']['tumour_sensitivity'])} "
                f"({gate['tp']} of {gate['tp'] + gate['fn']} tumour images called tumour), specificity "
                f"{with_ci(gate['ci']['tumour_specificity'])} ({gate['tn']} of {gate['tn'] + gate['fp']} "
                f"images without tumour cleared); gate ROC-AUC {num(gate['gate_roc_auc'])}.",
                "",
            ]
        sub = models[name].get("subtype")
        if sub and sub["n"]:
            lines += [
                f"## Subtype model alone ({name}, {sub['n']} true-tumour images)",
                "",
                f"Accuracy {with_ci(sub['ci']['accuracy'])}, macro-F1 {with_ci(sub['ci']['macro_f1'])}, "
                "whatever the gate decided about these images.",
                "",
            ]

    lines += ["## Where the errors come from", ""]
    rows = [
        [n, e["errors"], e["gate_misses"], e["gate_false_alarms"], e["subtype_confusions"]]
        for n, e in ((n, models[n]["error_propagation"]) for n in names)
    ]
    lines += md_table(
        [
            "model",
            "errors",
            "tumour called no_tumor (gate miss)",
            "no_tumor called tumour (false alarm)",
            "wrong subtype",
        ],
        rows,
    )
    lines += ["", "For a flat model the same three kinds are read off its four-class predictions.", ""]

    lines += ["## Confusion matrices", ""]
    for name in names:
        lines += [f"### {name}", "", *_confusion_md(models[name], classes), ""]

    lines += ["## Most confident errors", ""]
    for name in names:
        errors = models[name]["most_confident_errors"]
        lines += [f"### {name}", ""]
        if not errors:
            lines += ["No errors.", ""]
            continue
        rows = [
            [
                i,
                f"`{_md_escape(e['path'])}`",
                e["true"],
                e["predicted"],
                num(e["probability"]),
                num(e["true_probability"]),
            ]
            for i, e in enumerate(errors, 1)
        ]
        lines += md_table(["#", "file", "true", "predicted", "p(predicted)", "p(true)"], rows, "rlllrr") + [""]

    if figures:
        lines += ["## Figures", ""]
        for caption, path in figures.items():
            lines += [f"![{caption}]({path})", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def side_by_side_table(report: Mapping, width: int) -> Table:
    """Every model's headline metrics with CIs as columns; a CI goes under its value when `width` is narrow."""
    models, meta = report["models"], report["meta"]
    label_width = max(len(label) for _, label in table_rows(report["classes"], report["ece_bins"]))
    one_line = label_width + 4 + len(models) * (CELL_WIDTH + 3) <= width
    sep = " " if one_line else "\n"
    # Text() everywhere: brackets in "[0.771, 0.850]" or a model name must never be read as rich markup.
    table = Table(title=Text(f"{meta['split']} split — protocol {meta['protocol']}: {meta['protocol_name']}"))
    table.add_column(Text("metric"), justify="left")
    for name in models:
        table.add_column(Text(f"{name} (n = {models[name]['n']})"), justify="right")
    for key, label in table_rows(report["classes"], report["ece_bins"]):
        table.add_row(Text(label), *(Text(with_ci(m["ci"].get(key), sep=sep)) for m in models.values()))
    boot = report["bootstrap"]
    caption = (
        f"[value, 95% CI]: {'stratified ' if boot['stratified'] else ''}bootstrap, "
        f"{boot['n_resamples']} resamples, seed {boot['seed']}"
    )
    if report.get("comparison"):
        caption += "\n" + comparison_sentence(report["comparison"])
    table.caption = Text(caption)
    return table


def render_text(renderable: RenderableType, width: int) -> str:
    """Plain text of a rich renderable at a fixed width (no colour codes): for goldens and log files."""
    console = Console(record=True, width=width, force_terminal=False, color_system=None, file=io.StringIO())
    console.print(renderable)
    # rich pads every line to the full width; trailing blanks would only make goldens fragile in editors.
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"


def confusion_table(report: Mapping, name: str) -> Table:
    """One model's confusion matrix: counts with the row-normalised share beside each (rows = true class)."""
    classes, conf = report["classes"], report["models"][name]["confusion"]
    table = Table(title=Text(f"{name}: confusion (rows true, columns predicted; count and row share)"))
    table.add_column(Text("true \\ predicted"))
    for c in classes:
        table.add_column(Text(c), justify="right")
    for c, counts, shares in zip(classes, conf["counts"], conf["normalised"]):
        table.add_row(Text(c), *(Text(f"{n} ({s:.0%})" if s is not None else str(n)) for n, s in zip(counts, shares)))
    return table


def errors_table(report: Mapping, name: str) -> Table:
    """One model's most confident errors: what it said, how sure it was, which file."""
    table = Table(title=Text(f"{name}: most confident errors"))
    for col in ("true", "predicted", "p(predicted)", "file"):
        table.add_column(Text(col), justify="right" if col.startswith("p(") else "left")
    for e in report["models"][name]["most_confident_errors"]:
        table.add_row(Text(e["true"]), Text(e["predicted"]), Text(f"{e['probability']:.3f}"), Text(e["path"]))
    return table
