"""Terminal display of the `make results` chain: one line per stage and the per-stage time table."""
from __future__ import annotations

from rich.table import Table

from results.chain import clock, total_seconds
from results.plan import TRAINING_KINDS


def time_table(ledger: dict) -> Table:
    """Stage, status and wall time of every stage in the ledger, with the chain's and training's totals."""
    table = Table(title="make results: wall time per stage", title_justify="left")
    for name, justify in (("stage", "left"), ("status", "left"), ("wall time", "right")):
        table.add_column(name, justify=justify)
    for entry in ledger["stages"]:
        table.add_row(entry["id"], entry["status"], clock(entry["seconds"]))
    table.add_section()
    table.add_row("training (cascade + flat, all protocols)", "", clock(total_seconds(ledger, TRAINING_KINDS)))
    table.add_row("total", "", clock(total_seconds(ledger)))
    return table
