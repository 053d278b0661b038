"""The end-of-training table, drawn from the run's summary dict (the same one saved as summary.json)."""

from __future__ import annotations

from rich.table import Table


def _rate(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"  # None: no image of that kind in validation


def summary_table(summary: dict) -> Table:
    table = Table(title=f"Training summary — protocol {summary['protocol']}: {summary['protocol_name']}")
    for col in (
        "model",
        "phase 1 epochs (best)",
        "phase 1 val F1",
        "phase 2 epochs (best)",
        "phase 2 val F1",
        "val macro-F1",
        "time",
    ):
        table.add_column(col, justify="left" if col == "model" else "right")
    scaled = any("temperature" in info for info in summary["stages"].values())  # train.temperature_scaling
    if scaled:
        table.add_column("temperature", justify="right")
    for name, info in summary["stages"].items():
        p1, p2 = info.get("phase1", {}), info.get("phase2")
        table.add_row(
            name,
            f"{p1['epochs']} ({p1['best_epoch']})",
            f"{p1['best_val_macro_f1']:.3f}",
            f"{p2['epochs']} ({p2['best_epoch'] or 'phase 1'})" if p2 else "-",
            f"{p2['best_val_macro_f1']:.3f}" if p2 else "-",
            f"{info['val_macro_f1']:.3f}",
            f"{summary['seconds'].get(name, 0):.0f} s",
            *([f"{info['temperature']:.3f}"] if scaled else []),
        )
    if "cascade" in summary:
        c = summary["cascade"]
        table.add_row(
            "cascade", "", "", "", "", f"{c['val_macro_f1']:.3f}", "", *([""] if scaled else []), end_section=True
        )
        table.caption = (
            f"gate τ = {c['tau']:.4f} (validation tumour sensitivity {_rate(c['val_tumour_sensitivity'])}, "
            f"specificity {_rate(c['val_tumour_specificity'])}); activations "
            f"{summary['seconds']['activations']:.0f} s, total {summary['seconds']['total']:.0f} s"
        )
    return table
