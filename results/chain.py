"""Run the `make results` stages in order, resumably, with a ledger of what ran and how long it took.

Each stage is a `python cli.py ...` subprocess (the same command a user would type; its output goes to
`<out>/logs/<stage>.log`). A stage is done when its output file exists, was made by the same command
(the ledger says which) and is newer than the outputs it reads; a training stage interrupted half-way is
continued with `--resume`. The ledger (`<out>/ledger.json`) keeps each stage's command, status and wall
time across invocations — refreshed while a stage runs, so even a killed chain leaves its time behind —
and the time table covers the whole chain when it ran in several sittings. A failed stage stops the
chain with a one-line error naming its log.

    ledger = run_chain(stages, Path("runs/results"), Path("configs/results.toml"), data="../shared/data/...")
"""

from __future__ import annotations

import fcntl
import json
import math
import shlex
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from neurocascade.errors import UserError
from neurocascade.io import write_json
from neurocascade.paths import child_env
from neurocascade.results.plan import Stage

LEDGER_SCHEMA = 1
REFRESH_S = 30.0  # how often a running stage's time so far is written to the ledger
GRACE_S = 60.0  # how long an interrupted child may take to save its last epoch

# run(command, log_path, on_line) -> exit code; on_line gets the latest log line as the stage goes.
Runner = Callable[[tuple[str, ...], Path, Callable[[str], None]], int]


def run_subprocess(command: tuple[str, ...], log: Path, on_line: Callable[[str], None]) -> int:
    """`python -m neurocascade <command>` in the working directory, its output appended to `log`; never leaves the
    child running."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as fh:
        fh.write(f"$ python cli.py {shlex.join(command)}\n")
        fh.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "neurocascade", *command], env=child_env(), stdout=fh, stderr=subprocess.STDOUT
        )
        try:
            while proc.poll() is None:
                time.sleep(1.0)
                on_line(_last_line(log))
        except KeyboardInterrupt:
            # A Ctrl-C in the terminal reached the child too; a signal sent to this process alone did not.
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
            raise
        finally:
            _stop(proc)
    return proc.returncode


def _stop(proc: subprocess.Popen) -> None:
    """Give a child that is still running time to save its last epoch, then end it."""
    try:
        proc.wait(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait()


def _last_line(path: Path) -> str:
    with path.open("rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - 2048))
        lines = [line.strip() for line in fh.read().decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:100] if lines else ""


@contextmanager
def chain_lock(out: Path) -> Iterator[None]:
    """One chain at a time per results folder: two would resume the same training into one run dir."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / ".lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another `make results` is running on {_shown_path(out)}; wait for it or stop it"
            ) from None
        yield


def load_ledger(out: Path) -> dict:
    """The ledger of `out`; a stage left "running" by a killed chain counts as interrupted."""
    path = out / "ledger.json"
    ledger = json.loads(path.read_text()) if path.exists() else {}
    if ledger.get("schema_version") != LEDGER_SCHEMA:
        return {"schema_version": LEDGER_SCHEMA, "stages": []}
    for entry in ledger["stages"]:
        if entry["status"] == "running":
            entry["status"] = "interrupted"
    return ledger


def _record(ledger: dict, entry: dict) -> None:
    ledger["stages"] = [e for e in ledger["stages"] if e["id"] != entry["id"]] + [entry]


def _entry(ledger: dict, stage_id: str) -> dict | None:
    return next((e for e in ledger["stages"] if e["id"] == stage_id), None)


def _is_current(stage: Stage, by_id: dict[str, Stage]) -> bool:
    """Output there and at least as new as every output it was made from."""
    if not stage.done.exists():
        return False
    made = stage.done.stat().st_mtime
    return all(not by_id[a].done.exists() or by_id[a].done.stat().st_mtime <= made for a in stage.after if a in by_id)


def run_chain(
    stages: list[Stage],
    out: Path,
    plan_path: Path,
    data: str,
    run: Runner = run_subprocess,
    on_event: Callable[[str, Stage, dict], None] | None = None,
    order: list[str] | None = None,
) -> dict:
    """Run every stage not yet done; returns the ledger (also written to `out/ledger.json` as it goes).

    `on_event(kind, stage, info)` is told "skip", "start", "line" ({"line": ...}) and "end" (the entry).
    `order`: the stage ids of the whole plan, so a run of a few protocols keeps the ledger in plan order.
    """
    on_event = on_event or (lambda kind, stage, info: None)
    ledger = load_ledger(out)
    ledger.update({"plan": _shown_path(plan_path), "data": data})
    order = order or [s.id for s in stages]
    by_id = {s.id: s for s in stages}
    for stage in stages:
        previous = _entry(ledger, stage.id) or {}
        if previous.get("command") not in (None, _shown(stage.args)) and stage.done.exists():
            raise UserError(
                f"{_shown_path(stage.done)} was made by `{previous['command']}`, not by "
                f"`{_shown(stage.args)}`: delete it (or its run folder) to redo {stage.id}"
            )
        if _is_current(stage, by_id):
            if previous.get("status") != "done":
                # Finished just as the chain was stopped: its time is known. Otherwise made outside the chain.
                known = previous.get("status") == "interrupted"
                _record(
                    ledger,
                    {
                        "id": stage.id,
                        "kind": stage.kind,
                        "protocol": stage.protocol,
                        "command": _shown(stage.args),
                        "status": "done" if known else "existed",
                        "seconds": previous.get("seconds") if known else None,
                        "finished": None,
                        "log": previous.get("log") if known else None,
                    },
                )
                _save(ledger, out, order)
            on_event("skip", stage, _entry(ledger, stage.id))
            continue
        _run_stage(stage, previous, ledger, out, order, run, on_event)
    _save(ledger, out, order)
    return ledger


def _run_stage(
    stage: Stage,
    previous: dict,
    ledger: dict,
    out: Path,
    order: list[str],
    run: Runner,
    on_event: Callable[[str, Stage, dict], None],
) -> None:
    resuming = stage.partial is not None and stage.partial.exists() and not stage.done.exists()
    command = stage.command(resuming)
    log = out / "logs" / f"{stage.id.replace('/', '--')}.log"
    on_event("start", stage, {"command": _shown(command), "log": _shown_path(log), "resuming": resuming})
    # A resumed training keeps the epochs, and so the time, of its earlier attempts; anything else restarts.
    before = (previous.get("seconds") or 0.0) if resuming else 0.0
    started = time.perf_counter()
    entry = {
        "id": stage.id,
        "kind": stage.kind,
        "protocol": stage.protocol,
        "command": _shown(stage.args),
        "status": "running",
        "seconds": before,
        "finished": None,
        "log": str(log.relative_to(out)),
    }
    _record(ledger, entry)
    _save(ledger, out, order)
    last_save = started

    def on_line(line: str) -> None:
        nonlocal last_save
        now = time.perf_counter()
        if now - last_save >= REFRESH_S:
            entry["seconds"] = round(before + now - started, 1)
            _save(ledger, out, order)
            last_save = now
        on_event("line", stage, {"line": line})

    try:
        code = run(command, log, on_line)
    except KeyboardInterrupt:
        entry.update(status="interrupted", seconds=round(before + time.perf_counter() - started, 1))
        _save(ledger, out, order)
        raise
    ok = code == 0 and stage.done.exists()
    entry.update(
        status="done" if ok else "failed",
        seconds=round(before + time.perf_counter() - started, 1),
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    _save(ledger, out, order)
    on_event("end", stage, entry)
    if not ok:
        how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        raise UserError(f"stage {stage.id} failed ({how}); see {_shown_path(log)}; fix it and re-run to continue")


def _shown_path(path: Path) -> str:
    path = Path(path).absolute()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def _shown(args: tuple[str, ...]) -> str:
    """The command as a user would type it in the working directory (the repository's, for `make results`)."""
    return "python cli.py " + shlex.join(args).replace(f"{Path.cwd()}/", "")


def _save(ledger: dict, out: Path, order: list[str]) -> None:
    """Ledger entries in plan order (those of stages no longer planned last), written atomically."""
    rank = {sid: k for k, sid in enumerate(order)}
    ledger["stages"].sort(key=lambda e: rank.get(e["id"], len(rank)))
    write_json(out / "ledger.json", ledger)


def total_seconds(ledger: dict, kinds: tuple[str, ...] | None = None) -> float:
    """Sum of the recorded stage times (optionally of some kinds); stages without a time count 0."""
    return math.fsum(e["seconds"] or 0.0 for e in ledger["stages"] if kinds is None or e["kind"] in kinds)


def clock(seconds: float | None) -> str:
    """h:mm:ss (or m:ss) for a wall time; "—" when none was recorded."""
    if seconds is None:
        return "—"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
