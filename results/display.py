"""Terminal display of the `make results` chain: one line per stage and the per-stage time table."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.status import Status
from rich.table import Table

from neurocascade.results.chain import clock, total_seconds, training_seconds
from neurocascade.results.plan import Stage


def time_table(ledger: dict) -> Table:
    """Stage, status and wall time of every stage in the ledger, with the chain's and training's totals (stages
    that ran side by side counted once: the last column is what each gives back for that)."""
    table = Table(title="make results: wall time per stage", title_justify="left")
    shared = any(e.get("overlap_seconds") for e in ledger["stages"])
    columns = [("stage", "left"), ("status", "left"), ("wall time", "right")]
    for name, justify in columns + ([("less: shared", "right")] if shared else []):
        table.add_column(name, justify=justify)
    for entry in ledger["stages"]:
        extra = [clock(entry.get("overlap_seconds") or 0.0)] if shared else []
        table.add_row(entry["id"], entry["status"], clock(entry["seconds"]), *extra)
    table.add_section()
    table.add_row("training (cascade + flat, all protocols)", "", clock(training_seconds(ledger)))
    table.add_row("total", "", clock(total_seconds(ledger)))
    return table


def show_event(console: Console, status: Status, kind: str, stage: Stage, info: dict) -> None:
    """One line when a stage starts, is skipped or ends; its latest log line in the status while it runs.

    Everything shown is escaped: log lines and paths contain brackets that rich would read as markup.
    """
    if kind == "skip":
        how = "no time recorded" if info["seconds"] is None else clock(info["seconds"])
        console.print(f"[dim]- {escape(stage.id)}: already done ({how})[/]")
    elif kind == "start":
        console.print(
            f"> {escape(stage.id)}: {escape(info['command'])}{' (resuming)' if info['resuming'] else ''}  "
            f"[dim]log: {escape(info['log'])}[/]",
            highlight=False,
        )
        status.update(f"{escape(stage.id)} …")
    elif kind == "line":
        status.update(f"{escape(stage.id)}: {escape(info['line'])}")
    else:
        console.print(f"  {escape(stage.id)}: {info['status']} in {clock(info['seconds'])}")
