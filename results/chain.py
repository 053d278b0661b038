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
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping

from neurocascade.artifacts import Artifact, Fields, list_of, nonempty, one_of, optional, record, text, version
from neurocascade.artifacts import seconds as seconds_check
from neurocascade.edge.cpuinfo import host_label
from neurocascade.errors import UserError
from neurocascade.paths import child_env
from neurocascade.results.plan import QUIET_KINDS, TRAINING_KINDS, Stage

LEDGER_SCHEMA = 2  # 2: overlap_seconds, for stages that ran side by side
REFRESH_S = 30.0  # how often a running stage's time so far is written to the ledger
GRACE_S = 60.0  # how long an interrupted child may take to save its last epoch

# run(command, log_path, on_line[, nice=N]) -> exit code; on_line gets the latest log line as the stage goes, and
# `nice` (passed only when not 0) lowers the stage's CPU priority.
Runner = Callable[..., int]


def run_subprocess(command: tuple[str, ...], log: Path, on_line: Callable[[str], None], nice: int = 0) -> int:
    """`python -m neurocascade <command>` in the working directory, its output appended to `log`, at niceness `nice`
    above this process's; never leaves the child running."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as fh:
        fh.write(f"$ python cli.py {shlex.join(command)}\n")
        fh.flush()
        proc = subprocess.Popen(_child_argv(command), env=child_env(), stdout=fh, stderr=subprocess.STDOUT)
        if nice:
            _lower_priority(proc.pid, nice)
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


def _child_argv(command: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "neurocascade", *command]


def _lower_priority(pid: int, nice: int) -> None:
    """The child's niceness raised by `nice`, at once: it is still one thread (Python starting), and the threads
    TensorFlow starts later inherit it. A child that already ended has nothing to lower; where the system refuses,
    the stage runs at this process's priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, 0) + nice)
    except (ProcessLookupError, PermissionError):
        pass


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
    found = Ledger.read_if_exists(out / "ledger.json")
    ledger = found.to_json() if found is not None else Ledger(()).to_json()
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
    parallel_kinds: tuple[str, ...] = (),
    slots: int = 1,
    beside_training: bool = False,
    beside_nice: int = 0,
    host: str | None = None,
) -> dict:
    """Run every stage not yet done; returns the ledger (also written to `out/ledger.json` as it goes).

    `on_event(kind, stage, info)` is told "skip", "start", "line" ({"line": ...}) and "end" (the entry).
    `order`: the stage ids of the whole plan, so a run of a few protocols keeps the ledger in plan order.
    `parallel_kinds`: stage kinds that may run beside each other, up to `slots` at a time, once the stages
    they read are done (an export converts on one core, so two fill a 2-core machine); any other stage runs
    alone, in plan order. `beside_training`: a training may run beside `slots` − 1 of them (never beside another
    training), and starts as soon as what it reads is done, ahead of parallel stages before it in plan order: the
    exports and evaluations of one protocol use the cores the next protocol's training leaves idle; the benchmark
    then waits for a moment when nothing runs (near the chain's end) instead of holding the trainings back.
    `beside_nice`: with `beside_training`, the parallel kinds run at this niceness, so a training beside them keeps
    the cores it uses and they take what it leaves idle.
    `host`: the machine the stages run on, recorded in each stage's entry (`host_label()` of this one by default):
    a chain resumed elsewhere has times of two machines, and the page says which.
    """
    on_event = on_event or (lambda kind, stage, info: None)
    ledger = load_ledger(out)
    ledger.update({"plan": _shown_path(plan_path), "data": data})
    order = order or [s.id for s in stages]
    for stage in stages:  # before anything runs
        previous = _entry(ledger, stage.id) or {}
        if previous.get("command") not in (None, _shown(stage.args)) and stage.done.exists():
            raise UserError(
                f"{_shown_path(stage.done)} was made by `{previous['command']}`, not by "
                f"`{_shown(stage.args)}`: delete it (or its run folder) to redo {stage.id}"
            )
    nice = beside_nice if beside_training else 0
    slots = max(1, slots)
    host = host or host_label()
    _Scheduler(stages, ledger, out, order, run, on_event, parallel_kinds, slots, beside_training, nice, host).run()
    _save(ledger, out, order)
    return ledger


class _Stopped(KeyboardInterrupt):
    """Raised in a stage's thread when the chain was interrupted in the main thread."""


class _Scheduler:
    """Starts each stage when what it reads is done and the cores allow; one thread per running stage.

    The ledger is shared with the stages' threads under `lock`. While k stages run side by side, each is
    charged 1/k of the wall time: its `overlap_seconds` grows by (1 − 1/k) of it, so the chain's wall time is
    the sum of (seconds − overlap_seconds) over the stages, however they overlapped.
    """

    def __init__(
        self, stages, ledger, out, order, run, on_event, parallel_kinds, slots, beside_training, nice, host
    ) -> None:
        self.waiting, self.by_id = list(stages), {s.id: s for s in stages}
        self.ledger, self.out, self.order, self.runner, self.on_event = ledger, out, order, run, on_event
        self.parallel, self.slots = tuple(parallel_kinds), slots
        self.beside = TRAINING_KINDS if beside_training else ()  # kinds the parallel ones may run beside
        yields = QUIET_KINDS if beside_training else ()  # alone, but other stages may overtake them
        self.overtaken = self.parallel + yields  # kinds a later stage may start before; the rest hold the order
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.nice = nice  # of the parallel kinds
        self.host = host
        self.running: dict[Future, tuple[Stage, dict]] = {}
        self.finished: set[str] = set()
        self.overlap: dict[str, float] = {}

    def run(self) -> None:
        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=self.slots) as pool:
            last = time.monotonic()
            try:
                while self.waiting or self.running:
                    if failure is None:
                        self._start(pool)
                    if not self.running:
                        break
                    ended, _ = wait(self.running, timeout=1.0, return_when=FIRST_COMPLETED)
                    now = time.monotonic()
                    self._charge(now - last)
                    last = now
                    for future in ended:
                        stage, _ = self.running.pop(future)
                        error = future.exception()
                        if error is None:
                            self.finished.add(stage.id)
                        elif failure is None or isinstance(error, KeyboardInterrupt):
                            failure = error
                    if isinstance(failure, KeyboardInterrupt):
                        self.stop.set()
            except BaseException as error:  # a Ctrl-C, or a fault of the chain itself: stop the stages running
                failure = error
                self.stop.set()
            while self.running:  # after a Ctrl-C or a failure: let the others stop or finish, keeping their time
                ended, _ = wait(self.running, return_when=FIRST_COMPLETED)
                now = time.monotonic()
                self._charge(now - last)
                last = now
                for future in ended:
                    self.running.pop(future)
        with self.lock:
            _save(self.ledger, self.out, self.order)
        if failure is not None:
            raise failure
        if self.waiting:
            raise RuntimeError(f"stages never became ready: {', '.join(s.id for s in self.waiting)}")

    def _charge(self, dt: float) -> None:
        k = len(self.running)
        if k < 2:
            return
        with self.lock:
            for stage, entry in self.running.values():
                self.overlap[stage.id] = self.overlap.get(stage.id, 0.0) + dt * (1 - 1 / k)
                entry["overlap_seconds"] = round(self.overlap[stage.id], 1)

    def _ready(self, stage: Stage) -> bool:
        return all(a in self.finished or a not in self.by_id for a in stage.after)

    def _start(self, pool: ThreadPoolExecutor) -> None:
        """Start (or skip, when current) what can start, in plan order; a stage that runs alone is never
        overtaken. With `beside_training` the next training goes first, so it takes the slot that frees; again
        while stages are skipped or started, since a skipped one may let a training start."""
        while True:
            waiting = len(self.waiting)
            if self.beside:
                self._start_training(pool)
            self._start_others(pool)
            if len(self.waiting) == waiting:
                return

    def _start_others(self, pool: ThreadPoolExecutor) -> None:
        for stage in list(self.waiting):
            if stage.kind in self.beside:  # _start_training's
                continue
            alone, holds = stage.kind not in self.parallel, stage.kind not in self.overtaken
            if not self._ready(stage):
                if holds:
                    return
                continue
            if self._skipped(stage):
                continue
            busy = [s for s, _ in self.running.values()]
            if alone and busy:
                if holds:
                    return
                continue  # the benchmark lets the stages after it go first
            if not self._leaves_room(busy):
                return
            self._launch(pool, stage)
            if alone:
                return

    def _start_training(self, pool: ThreadPoolExecutor) -> None:
        """The next training in plan order, if what it reads is done, no other training runs and no stage that
        runs alone is waiting before it."""
        for stage in list(self.waiting):
            if stage.kind not in self.beside:
                if stage.kind not in self.overtaken:  # the audit
                    return
                continue
            if not self._ready(stage):
                return
            if self._skipped(stage):
                continue
            busy = [s for s, _ in self.running.values()]
            if not any(s.kind in self.beside for s in busy) and self._leaves_room(busy):
                self._launch(pool, stage)
            return

    def _leaves_room(self, busy: list[Stage]) -> bool:
        """Whether one more stage may join `busy`: a free slot, and nothing there that runs alone."""
        return len(busy) < self.slots and all(s.kind in self.parallel or s.kind in self.beside for s in busy)

    def _skipped(self, stage: Stage) -> bool:
        """Skip `stage` if its output is current (made by an earlier sitting)."""
        if not _is_current(stage, self.by_id):
            return False
        self.waiting.remove(stage)
        self.finished.add(stage.id)
        self._skip(stage)
        return True

    def _launch(self, pool: ThreadPoolExecutor, stage: Stage) -> None:
        self.waiting.remove(stage)
        entry, resuming = self._begin(stage)
        self.running[pool.submit(self._run_stage, stage, entry, resuming)] = (stage, entry)

    def _skip(self, stage: Stage) -> None:
        with self.lock:
            previous = _entry(self.ledger, stage.id) or {}
            if previous.get("status") != "done":
                # Finished just as the chain was stopped: its time is known. Otherwise made outside the chain.
                known = previous.get("status") == "interrupted"
                _record(
                    self.ledger,
                    _new_entry(
                        stage,
                        "done" if known else "existed",
                        seconds=previous.get("seconds") if known else None,
                        overlap_seconds=previous.get("overlap_seconds") if known else None,
                        log=previous.get("log") if known else None,
                        hosts=previous.get("hosts", []) if known else [],
                    ),
                )
                _save(self.ledger, self.out, self.order)
            entry = _entry(self.ledger, stage.id)
        self.on_event("skip", stage, entry)

    def _begin(self, stage: Stage) -> tuple[dict, bool]:
        """The stage's ledger entry, recorded as "running", and whether it resumes; a resumed training keeps the
        time of its earlier attempts, anything else restarts."""
        with self.lock:
            previous = _entry(self.ledger, stage.id) or {}
        resuming = stage.partial is not None and stage.partial.exists() and not stage.done.exists()
        before = (previous.get("seconds") or 0.0) if resuming else 0.0
        hosts = previous.get("hosts", []) if resuming else []
        self.overlap[stage.id] = (previous.get("overlap_seconds") or 0.0) if resuming else 0.0
        log = self.out / "logs" / f"{stage.id.replace('/', '--')}.log"
        entry = _new_entry(
            stage,
            "running",
            seconds=before,
            overlap_seconds=round(self.overlap[stage.id], 1),
            log=str(log.relative_to(self.out)),
            hosts=list(dict.fromkeys([*hosts, self.host])),
        )
        with self.lock:
            _record(self.ledger, entry)
            _save(self.ledger, self.out, self.order)
        return entry, resuming

    def _run_stage(self, stage: Stage, entry: dict, resuming: bool) -> None:
        """In the stage's thread: run its command, keeping the ledger's time current; a failure is a UserError."""
        command = stage.command(resuming)
        log = self.out / entry["log"]
        before = entry["seconds"]
        self.on_event("start", stage, {"command": _shown(command), "log": _shown_path(log), "resuming": resuming})
        started = time.perf_counter()
        last_save = started

        def on_line(line: str) -> None:
            nonlocal last_save
            if self.stop.is_set():
                raise _Stopped
            now = time.perf_counter()
            if now - last_save >= REFRESH_S:
                with self.lock:
                    entry["seconds"] = round(before + now - started, 1)
                    _save(self.ledger, self.out, self.order)
                last_save = now
            self.on_event("line", stage, {"line": line})

        priority = {"nice": self.nice} if self.nice and stage.kind in self.parallel else {}
        try:
            code = self.runner(command, log, on_line, **priority)
        except KeyboardInterrupt:
            self._end(entry, "interrupted", before + time.perf_counter() - started)
            raise
        if self.stop.is_set() and not stage.done.exists():  # the Ctrl-C reached the child first
            self._end(entry, "interrupted", before + time.perf_counter() - started)
            raise _Stopped
        ok = code == 0 and stage.done.exists()
        self._end(entry, "done" if ok else "failed", before + time.perf_counter() - started)
        self.on_event("end", stage, entry)
        if not ok:
            how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
            raise UserError(f"stage {stage.id} failed ({how}); see {_shown_path(log)}; fix it and re-run to continue")

    def _end(self, entry: dict, status: str, seconds: float) -> None:
        with self.lock:
            entry.update(status=status, seconds=round(seconds, 1))
            if status != "interrupted":
                entry["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            _save(self.ledger, self.out, self.order)


def _new_entry(
    stage: Stage,
    status: str,
    *,
    seconds: float | None,
    overlap_seconds: float | None,
    log: str | None,
    hosts: list[str],
) -> dict:
    """A stage's ledger entry, not yet finished: the one place that lists its fields. `hosts`: the machines its
    time was measured on, one per sitting that ran it (a resumed training may have two)."""
    return {
        "id": stage.id,
        "kind": stage.kind,
        "protocol": stage.protocol,
        "command": _shown(stage.args),
        "status": status,
        "seconds": seconds,
        "overlap_seconds": overlap_seconds,
        "finished": None,
        "log": log,
        "hosts": hosts,
    }


def _shown_path(path: Path) -> str:
    path = Path(path).absolute()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def _shown(args: tuple[str, ...]) -> str:
    """The command as a user would type it in the working directory (the repository's, for `make results`)."""
    return "python cli.py " + shlex.join(args).replace(f"{Path.cwd()}/", "")


def _save(ledger: dict, out: Path, order: list[str]) -> None:
    """Ledger entries in plan order (those of stages no longer planned last), written atomically."""
    ledger["schema_version"] = LEDGER_SCHEMA
    rank = {sid: k for k, sid in enumerate(order)}
    # a new list, not an in-place sort: during list.sort another thread would see an empty list
    ledger["stages"] = sorted(ledger["stages"], key=lambda e: rank.get(e["id"], len(rank)))
    Ledger.from_json(ledger, out / "ledger.json").write(out / "ledger.json")


def total_seconds(ledger: dict) -> float:
    """Wall time of the recorded stages: each stage's time less the part it shared with stages beside it
    (`overlap_seconds`); stages without a time count 0."""
    return math.fsum((e["seconds"] or 0.0) - (e.get("overlap_seconds") or 0.0) for e in ledger["stages"])


def training_seconds(ledger: dict) -> float:
    """Wall time while a training ran: trainings never run beside each other, so each counts whole, also the part
    an export shared with it (`beside_training`): slowed by it, the training still took that long."""
    return math.fsum(e["seconds"] or 0.0 for e in ledger["stages"] if e["kind"] in TRAINING_KINDS)


def clock(seconds: float | None) -> str:
    """h:mm:ss (or m:ss) for a wall time; "—" when none was recorded."""
    if seconds is None:
        return "—"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


# ---------------------------------------------------------------------------------------------- the file

STATUSES = ("running", "done", "failed", "interrupted", "existed")


def _ledger_entry(f: Fields) -> dict:
    return {
        "id": f.take("id", nonempty),
        "kind": f.take("kind", nonempty),
        "protocol": f.take("protocol", optional(text)),
        "command": f.take("command", optional(text)),
        "status": f.take("status", one_of(*STATUSES)),
        "seconds": f.take("seconds", optional(seconds_check)),
        "overlap_seconds": f.take("overlap_seconds", optional(seconds_check), None),
        "finished": f.take("finished", optional(text)),
        "log": f.take("log", optional(text)),
        "hosts": f.take("hosts", list_of(nonempty), []),  # since stop 55; a ledger before it names none
    }


@dataclass(frozen=True)
class Ledger(Artifact):
    """`ledger.json`: every stage of `make results` with its command, status and wall time (results/page.py)."""

    WHAT: ClassVar[str] = "results ledger (ledger.json)"
    VERSION: ClassVar[int] = LEDGER_SCHEMA

    stages: tuple[Mapping[str, Any], ...]
    plan: str | None = None
    data: str | None = None
    schema_version: int = VERSION

    def to_json(self) -> dict:
        obj: dict = {"schema_version": self.schema_version, "stages": [dict(s) for s in self.stages]}
        obj.update({k: getattr(self, k) for k in ("plan", "data") if getattr(self, k) is not None})
        return obj

    @classmethod
    def from_json(cls, obj: Any, source: str | Path) -> "Ledger":
        f = Fields(obj, source)
        v = version(f, "schema_version", (1, cls.VERSION))
        stages = f.take("stages", list_of(record(_ledger_entry)))
        ids = [s["id"] for s in stages]
        if len(set(ids)) != len(ids):
            raise f.error("stages", f"stage {next(i for i in ids if ids.count(i) > 1)!r} listed twice")
        out = cls(tuple(stages), f.take("plan", text, None), f.take("data", text, None), v)
        f.done()
        return out
