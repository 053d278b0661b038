"""Run the `make results` stages in order, resumably, with a ledger of what ran and how long it took.

Each stage is a `python cli.py ...` subprocess (the same command a user would type; its output goes to
`<out>/logs/<stage>.log`). A stage whose output file exists is skipped; a training stage interrupted
half-way is continued with `--resume`. The ledger (`<out>/ledger.json`) keeps each stage's command,
status and wall time across invocations, so the time table covers the whole chain even when it ran in
several sittings. A failed stage stops the chain with a one-line error naming its log.

    ledger = run_chain(stages, out, run=run_subprocess)
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from neurocascade.errors import UserError
from neurocascade.io import write_json
from results.plan import Stage

REPO = Path(__file__).resolve().parents[1]
LEDGER_SCHEMA = 1

# run(command, log_path, on_line) -> exit code; on_line gets the latest log line for a status display.
Runner = Callable[[tuple[str, ...], Path, Callable[[str], None]], int]


def run_subprocess(command: tuple[str, ...], log: Path, on_line: Callable[[str], None]) -> int:
    """`python cli.py <command>` with output appended to `log`; reports the last line as it goes."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as fh:
        fh.write(f"$ python cli.py {shlex.join(command)}\n")
        fh.flush()
        proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), *command], cwd=REPO, stdout=fh,
                                stderr=subprocess.STDOUT)
        try:
            while proc.poll() is None:
                time.sleep(1.0)
                on_line(_last_line(log))
        except KeyboardInterrupt:
            proc.wait()  # the child got the same SIGINT and saves its last epoch
            raise
    return proc.returncode


def _last_line(path: Path) -> str:
    with path.open("rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - 2048))
        lines = [line.strip() for line in fh.read().decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:100] if lines else ""


def load_ledger(out: Path) -> dict:
    path = out / "ledger.json"
    if path.exists():
        ledger = json.loads(path.read_text())
        if ledger.get("schema_version") == LEDGER_SCHEMA:
            return ledger
    return {"schema_version": LEDGER_SCHEMA, "stages": []}


def _record(ledger: dict, entry: dict) -> None:
    ledger["stages"] = [e for e in ledger["stages"] if e["id"] != entry["id"]] + [entry]


def _entry(ledger: dict, stage_id: str) -> dict | None:
    return next((e for e in ledger["stages"] if e["id"] == stage_id), None)


def run_chain(stages: list[Stage], out: Path, plan_path: Path, data: str, run: Runner = run_subprocess,
              on_event: Callable[[str, Stage, dict | None], None] | None = None) -> dict:
    """Run every stage not yet done; returns the ledger (also written to `out/ledger.json` after each stage).

    `on_event(kind, stage, entry)` is told "skip", "start", "line" (entry {"line": ...}) and "end".
    """
    on_event = on_event or (lambda kind, stage, entry: None)
    ledger = load_ledger(out)
    ledger.update({"plan": str(plan_path), "data": data})
    order = [s.id for s in stages]
    for stage in stages:
        previous = _entry(ledger, stage.id)
        if stage.done.exists():
            if previous is None or previous["status"] != "done":
                # Output made outside this chain (or by a run whose ledger was lost): no time to claim.
                _record(ledger, {"id": stage.id, "kind": stage.kind, "protocol": stage.protocol,
                                 "command": _shown(stage.args), "status": "existed", "seconds": None,
                                 "finished": None, "log": None})
            on_event("skip", stage, _entry(ledger, stage.id))
            continue
        resuming = stage.partial is not None and stage.partial.exists()
        command = stage.command(resuming)
        log = out / "logs" / f"{stage.id.replace('/', '--')}.log"
        on_event("start", stage, {"command": _shown(command), "log": _shown_path(log), "resuming": resuming})
        # Time spent before an interruption is part of this stage's cost; a failed attempt's is not.
        before = (previous or {}).get("seconds") or 0.0 if (previous or {}).get("status") == "interrupted" else 0.0
        started = time.perf_counter()
        entry = {"id": stage.id, "kind": stage.kind, "protocol": stage.protocol, "command": _shown(stage.args),
                 "log": str(log.relative_to(out))}
        try:
            code = run(command, log, lambda line: on_event("line", stage, {"line": line}))
        except KeyboardInterrupt:
            entry.update(status="interrupted", seconds=round(before + time.perf_counter() - started, 1), finished=None)
            _record(ledger, entry)
            _save(ledger, out, order)
            raise
        ok = code == 0 and stage.done.exists()
        entry.update(status="done" if ok else "failed", seconds=round(before + time.perf_counter() - started, 1),
                     finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        _record(ledger, entry)
        _save(ledger, out, order)
        on_event("end", stage, entry)
        if not ok:
            raise UserError(f"stage {stage.id} failed (exit {code}); see {log}; fix it and re-run to continue")
    _save(ledger, out, order)
    return ledger


def _shown_path(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _shown(args: tuple[str, ...]) -> str:
    """The command as a user would type it in the repository folder."""
    return "python cli.py " + shlex.join(args).replace(f"{REPO}/", "")


def _save(ledger: dict, out: Path, order: list[str]) -> None:
    """Ledger entries in plan order (those of stages no longer planned last), written atomically."""
    rank = {sid: k for k, sid in enumerate(order)}
    ledger["stages"].sort(key=lambda e: rank.get(e["id"], len(rank)))
    write_json(out / "ledger.json", ledger)


def total_seconds(ledger: dict, kinds: tuple[str, ...] | None = None) -> float:
    """Sum of the recorded stage times (optionally of some kinds); stages without a time count 0."""
    return sum(e["seconds"] or 0.0 for e in ledger["stages"] if kinds is None or e["kind"] in kinds)


def clock(seconds: float | None) -> str:
    """h:mm:ss (or m:ss) for a wall time; "—" when none was recorded."""
    if seconds is None:
        return "—"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
