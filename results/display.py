"""Terminal display of the `make results` chain: one line per stage and the per-stage time table."""
from __future__ import annotations

from rich.table import Table

from results.chain import total_seconds

TRAINING = ("train-cascade", "train-flat")


def clock(seconds: float | None) -> str:
    """h:mm:ss (or m:ss) for a wall time; "—" when none was recorded."""
    if seconds is None:
        return "—"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def time_table(ledger: dict) -> Table:
    """Stage, status and wall time of every stage in the ledger, with the chain's and training's totals."""
    table = Table(title="make results: wall time per stage", title_justify="left")
    for name, justify in (("stage", "left"), ("status", "left"), ("wall time", "right")):
        table.add_column(name, justify=justify)
    for entry in ledger["stages"]:
        table.add_row(entry["id"], entry["status"], clock(entry["seconds"]))
    table.add_section()
    table.add_row("training (cascade + flat, all protocols)", "", clock(total_seconds(ledger, TRAINING)))
    table.add_row("total", "", clock(total_seconds(ledger)))
    return table
