"""The results chain: stages from the plan, skipped when done, resumed when partial, timed in a ledger."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from neurocascade.edge.cpuinfo import host_label
from neurocascade.errors import ConfigError, UserError
from neurocascade.results.chain import run_chain, total_seconds, training_seconds
from neurocascade.results.display import clock
from neurocascade.results.plan import build_stages, load_plan, select

REPO = Path(__file__).resolve().parents[2]
PLAN = """
out = "{out}"
config = "configs/test.toml"
[[protocol]]
id = "P1"
name = "first"
set = ["data.protocol=grouped"]
export = "ptq"
bench = true
[[protocol]]
id = "P2"
name = "second"
[targets]
c_macro_f1 = 0.93
c_tumour_sensitivity = 0.97
int8_max_mb = 10.0
int8_min_agreement = 0.98
int8_min_speedup = 1.0
int8_min_speedup_one_thread = 2.0
int8_max_macro_f1_drop = 0.01
chain_max_hours = 2.0
training_max_minutes = 90
protocol_training_max_minutes = 30
"""
BUDGETS = {"chain_max_hours": 2.0, "training_max_minutes": 90, "protocol_training_max_minutes": 30}  # as PLAN's


@pytest.fixture
def plan(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text(PLAN.format(out=tmp_path / "out"))
    return load_plan(path, REPO)


def test_the_shipped_plan_loads_and_names_every_protocol():
    plan = load_plan(REPO / "configs" / "results.toml", REPO)
    assert [p.id for p in plan.protocols] == ["C-seed0", "B", "C-seed1", "C-seed2", "A"]
    assert plan.targets["c_macro_f1"] == 0.93


def test_stages_follow_the_chain_in_order(plan):
    stages = build_stages(plan, "DATA")
    kinds = [s.id for s in stages]
    assert kinds[:9] == [
        "audit",
        "P1/train-cascade",
        "P1/train-flat",
        "P1/export-cascade",
        "P1/export-flat",
        "P1/eval-keras",
        "P1/eval-tflite-int8",
        "P1/edge-bench",
        "P2/train-cascade",
    ]
    assert "P2/edge-bench" not in kinds  # bench only where the plan asks
    train = stages[1]
    assert train.args[:2] == ("train-cascade", "--config")
    assert ("--set", "data.protocol=grouped") == train.args[-2:]
    assert "export.after_training=false" in train.args  # export is its own stage
    assert train.resume[-1] == "--resume" and "--set" not in train.resume
    assert stages[3].args[-2:] == ("--set", "export.qat=false")  # ptq
    assert "--set" not in stages[-4].args  # P2 exports with QAT (the default)


def test_a_cascade_on_the_flat_runs_backbone_trains_after_it_and_a_retrained_flat_makes_it_stale(tmp_path, plan):
    path = tmp_path / "shared.toml"
    path.write_text('cascade_set = ["model.backbone_from={flat}", "train.phase2_epochs=0"]\n' + plan.path.read_text())
    shared = load_plan(path, REPO)
    stages = build_stages(shared, "DATA", select(shared, ["P1"]))
    assert [s.id for s in stages[1:3]] == ["P1/train-flat", "P1/train-cascade"]
    flat, cascade = stages[1], stages[2]
    assert cascade.after == ("P1/train-flat",)
    assert cascade.args[-4:] == (
        "--set",
        f"model.backbone_from={shared.out / 'P1' / 'flat'}",
        "--set",
        "train.phase2_epochs=0",
    )
    assert not any("backbone_from" in a for a in flat.args)  # the cascade's overrides are its own
    test_every_stage_command_parses_with_the_real_cli(shared)
    run_chain(stages, shared.out, shared.path, "DATA", run=FakeRunner(stages))
    old = time.time() - 3600
    for stage in stages:
        os.utime(stage.done, (old, old))
    flat.done.touch()  # the flat model was retrained: the cascade on its backbone is trained again
    runner = FakeRunner(stages)
    run_chain(stages, shared.out, shared.path, "DATA", run=runner)
    assert runner.commands[0][0] == "train-cascade"


def test_export_set_goes_to_every_export_and_nothing_else(tmp_path, plan):
    path = tmp_path / "export-set.toml"
    path.write_text('export_set = ["export.calibration=\\"auto\\""]\n' + plan.path.read_text())
    with_set = load_plan(path, REPO)
    stages = build_stages(with_set, "DATA")
    exports = [s for s in stages if s.kind.startswith("export-")]
    assert len(exports) == 2 * len(with_set.protocols)
    assert all(s.args[-2:] == ("--set", 'export.calibration="auto"') for s in exports)
    assert not any('export.calibration="auto"' in s.args for s in stages if not s.kind.startswith("export-"))
    test_every_stage_command_parses_with_the_real_cli(with_set)


@pytest.mark.parametrize(
    "edit, message",
    [
        (('export = "ptq"', 'export = "fp16"'), "export must be one of qat, ptq"),
        (('set = ["data.protocol=grouped"]', 'set = "data.protocol=grouped"'), "set must be a list"),
        (('set = ["data.protocol=grouped"]', 'set = ["grouped"]'), "set must be a list of .section.key=value. strings"),
        (("bench = true", 'bench = "yes"'), "bench must be true or false"),
        (("config =", 'bench_runs = "x"\nconfig ='), "bench_runs must be an integer"),
        (("int8_max_mb = 10.0", "int8_max_MB = 10.0"), "unknown key 'int8_max_MB'"),
        (("chain_max_hours = 2.0\n", ""), r"\[targets\]: missing chain_max_hours"),
        (('name = "second"', 'name = "second"\nbaseline = { cascade = 0.5 }'), "baseline must be"),
        (("config =", 'cascade_set = ["flat"]\nconfig ='), "cascade_set must be a list of .section.key=value. strings"),
        (("config =", 'export_set = ["train.seed=1"]\nconfig ='), "export_set may only change export.. settings"),
    ],
)
def test_plan_mistakes_are_one_line_errors(tmp_path, plan, edit, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(plan.path.read_text().replace(*edit))
    with pytest.raises(ConfigError, match=message):
        load_plan(bad)


def test_plan_errors_are_one_line(tmp_path, plan):
    with pytest.raises(ConfigError, match="unknown protocol Z; the plan has P1, P2"):
        select(plan, ["Z"])
    with pytest.raises(ConfigError, match="no such plan file"):
        load_plan(tmp_path / "missing.toml")


class FakeRunner:
    """Writes each stage's output file (or fails on `fail`), recording the commands it was given."""

    def __init__(self, stages, fail: str | None = None):
        self.by_args = {s.args: s for s in stages}
        self.by_args.update({s.resume: s for s in stages if s.resume})
        self.fail, self.commands = fail, []

    def __call__(self, command, log, on_line):
        self.commands.append(command)
        stage = self.by_args[command]
        if stage.id == self.fail:
            return 1
        if stage.partial:
            stage.partial.parent.mkdir(parents=True, exist_ok=True)
            stage.partial.write_text("")
        stage.done.parent.mkdir(parents=True, exist_ok=True)
        stage.done.write_text("{}")
        return 0


def test_a_rerun_skips_finished_stages_and_keeps_their_times(plan):
    stages = build_stages(plan, "DATA", select(plan, ["P1"]))
    failing = FakeRunner(stages, fail="P1/export-flat")
    with pytest.raises(UserError, match="stage P1/export-flat failed .exit 1.; see .*P1--export-flat.log"):
        run_chain(stages, plan.out, plan.path, "DATA", run=failing)
    ledger = json.loads((plan.out / "ledger.json").read_text())
    assert [e["status"] for e in ledger["stages"]] == ["done", "done", "done", "done", "failed"]
    runner = FakeRunner(stages)
    ledger = run_chain(stages, plan.out, plan.path, "DATA", run=runner)
    assert [c[0] for c in runner.commands] == ["export", "eval", "eval", "edge-bench"]  # only what was left
    assert [e["id"] for e in ledger["stages"]] == [s.id for s in stages]
    assert all(e["status"] == "done" and e["seconds"] is not None for e in ledger["stages"])
    assert total_seconds(ledger) == pytest.approx(sum(e["seconds"] for e in ledger["stages"]))


def test_an_interrupted_training_resumes_and_outputs_made_elsewhere_are_marked(plan):
    stages = build_stages(plan, "DATA", select(plan, ["P1"]))
    train = stages[1]
    train.partial.parent.mkdir(parents=True)
    train.partial.write_text("")  # a run directory without summary.json: killed half-way
    stages[0].done.parent.mkdir(parents=True)
    stages[0].done.write_text("{}")  # the audit was made by hand: no time can be claimed for it
    runner = FakeRunner(stages)
    ledger = run_chain(stages, plan.out, plan.path, "DATA", run=runner)
    assert runner.commands[0] == train.resume
    assert ledger["stages"][0]["status"] == "existed" and ledger["stages"][0]["seconds"] is None


def test_clock_formats():
    assert clock(None) == "—" and clock(59.6) == "1:00" and clock(3725) == "1:02:05"


def test_time_before_a_ctrl_c_counts_towards_the_resumed_stage(plan, monkeypatch):
    stages = build_stages(plan, "DATA", select(plan, ["P1"]))[:2]
    clock_now = iter([0.0, 100.0, 1000.0, 1030.0, 2000.0, 2010.0])
    monkeypatch.setattr("neurocascade.results.chain.time.perf_counter", lambda: next(clock_now))

    def interrupted(command, log, on_line):
        if command[0] == "train-cascade":  # killed after its run directory (config.toml) was made
            stages[1].partial.parent.mkdir(parents=True)
            stages[1].partial.write_text("")
            raise KeyboardInterrupt
        return FakeRunner(stages)(command, log, on_line)

    with pytest.raises(KeyboardInterrupt):
        run_chain(stages, plan.out, plan.path, "DATA", run=interrupted)
    ledger = json.loads((plan.out / "ledger.json").read_text())
    assert ledger["stages"][-1]["status"] == "interrupted" and ledger["stages"][-1]["seconds"] == 30.0
    ledger = run_chain(stages, plan.out, plan.path, "DATA", run=FakeRunner(stages))
    assert ledger["stages"][-1]["status"] == "done" and ledger["stages"][-1]["seconds"] == 40.0  # 30 + 10


def test_every_stage_command_parses_with_the_real_cli(plan):
    from neurocascade.cli import main

    for stage in build_stages(plan, "DATA"):
        for args in filter(None, (stage.args, stage.resume)):
            command = main.commands[args[0]]
            command.make_context(args[0], list(args[1:]))  # raises on an unknown option or a bad value


def test_a_retrained_model_makes_its_exports_and_evaluations_stale(plan):
    import os

    stages = build_stages(plan, "DATA", select(plan, ["P1"]))
    run_chain(stages, plan.out, plan.path, "DATA", run=FakeRunner(stages))
    for k, stage in enumerate(stages):  # everything made an hour ago, one second apart, in order
        made = time.time() - 3600 + k
        os.utime(stage.done, (made, made))
    by_id = {s.id: s for s in stages}
    by_id["P1/train-flat"].done.touch()  # the flat model was retrained since
    runner = FakeRunner(stages)
    run_chain(stages, plan.out, plan.path, "DATA", run=runner)
    assert [c[0] + ("-" + c[-1] if c[0] == "eval" else "") for c in runner.commands] == [
        "export",
        "eval-keras",
        "eval-tflite-int8",
        "edge-bench",
    ]  # the cascade's export is still current


def test_an_output_made_by_another_command_is_refused(plan):
    stages = build_stages(plan, "DATA", select(plan, ["P1"]))[:2]
    run_chain(stages, plan.out, plan.path, "DATA", run=FakeRunner(stages))
    changed = build_stages(plan, "OTHER", select(plan, ["P1"]))[:2]
    with pytest.raises(UserError, match="was made by `python cli.py audit-data DATA .*delete it"):
        run_chain(changed, plan.out, plan.path, "OTHER", run=FakeRunner(changed))


def test_a_chain_killed_mid_stage_keeps_the_time_it_had_written(plan):
    stages = build_stages(plan, "DATA", select(plan, ["P1"]))[:2]
    train = stages[1]
    plan.out.mkdir(parents=True)
    (plan.out / "ledger.json").write_text(
        json.dumps(
            {
                "schema_version": 1,
                "stages": [
                    {
                        "id": train.id,
                        "kind": train.kind,
                        "protocol": "P1",
                        "command": None,
                        "status": "running",
                        "seconds": 120.0,
                        "finished": None,
                        "log": None,
                    }
                ],
            }
        )
    )  # what a SIGKILLed chain leaves behind
    train.partial.parent.mkdir(parents=True)
    train.partial.write_text("")
    runner = FakeRunner(stages)
    ledger = run_chain(stages, plan.out, plan.path, "DATA", run=runner)
    assert train.resume in runner.commands
    entry = next(e for e in ledger["stages"] if e["id"] == train.id)
    assert entry["status"] == "done" and entry["seconds"] >= 120.0


def test_one_chain_at_a_time(tmp_path):
    from neurocascade.results.chain import chain_lock

    with chain_lock(tmp_path):
        with pytest.raises(UserError, match="another `make results` is running"):
            with chain_lock(tmp_path):
                pass
    with chain_lock(tmp_path):  # released
        pass


def test_log_lines_with_brackets_are_shown_not_parsed(plan):
    import io

    from rich.console import Console

    from neurocascade.results.display import show_event

    console = Console(file=io.StringIO(), width=200)
    stage = build_stages(plan, "DATA")[1]
    with console.status("") as status:
        show_event(
            console,
            status,
            "start",
            stage,
            {"command": "python cli.py x --out [/work/x]", "log": "l[/b]", "resuming": False},
        )
        show_event(console, status, "line", stage, {"line": "epoch 3 [/work/main/runs/x] [bold]"})
        show_event(console, status, "end", stage, {"status": "done", "seconds": 61.0})
    text = console.file.getvalue()
    assert "--out [/work/x]" in text and "log: l[/b]" in text and "P1/train-cascade: done in 1:01" in text


def test_time_table_total_matches_the_page_total():
    """The terminal's total and RESULTS.md's are the same sum: a naive float sum rounded 47:36 down to 47:35."""
    from neurocascade.results.collect import stage_costs

    stages = [
        {"id": f"s{i}", "kind": "eval-keras", "seconds": s, "status": "done"}
        for i, s in enumerate([2855.0] + [0.1] * 5)
    ]
    page_total = stage_costs(stages, BUDGETS)["total_s"]
    assert clock(total_seconds({"stages": stages})) == clock(page_total) == "47:36"


PARALLEL = ("export-cascade", "export-flat", "eval-keras", "eval-tflite-int8")


class TimedRunner(FakeRunner):
    """A FakeRunner whose stages take `seconds` of wall time, each recording when it ran."""

    def __init__(self, stages, seconds: float = 0.3, fail: str | None = None):
        super().__init__(stages, fail)
        self.seconds, self.spans = seconds, {}

    def __call__(self, command, log, on_line):
        start = time.monotonic()
        while time.monotonic() - start < self.seconds:
            time.sleep(0.02)
            on_line("working")
        code = super().__call__(command, log, on_line)
        self.spans[self.by_args[command].id] = (start, time.monotonic())
        return code


def _beside(spans, a, b) -> bool:
    return spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]


def _union(spans) -> float:
    """Seconds covered by at least one span."""
    covered, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        covered += max(0.0, b - max(a, end))
        end = max(end, b)
    return covered


def test_exports_and_evaluations_run_side_by_side_and_the_ledger_counts_wall_time(plan):
    stages = build_stages(plan, "DATA", select(plan, ["P1"]))
    runner = TimedRunner(stages, seconds=1.0)
    started = time.monotonic()
    ledger = run_chain(stages, plan.out, plan.path, "DATA", run=runner, parallel_kinds=PARALLEL, slots=2)
    elapsed = time.monotonic() - started
    spans = runner.spans
    assert _beside(spans, "P1/export-cascade", "P1/export-flat")
    # eval-keras reads only the trainings; eval-tflite-int8 waits for both exports
    assert spans["P1/eval-tflite-int8"][0] >= max(spans["P1/export-cascade"][1], spans["P1/export-flat"][1])
    alone = ("audit", "P1/train-cascade", "P1/train-flat", "P1/edge-bench")
    assert not any(_beside(spans, a, b) for a in alone for b in spans if b != a)
    assert all(e["status"] == "done" for e in ledger["stages"])
    total, rounding = total_seconds(ledger), 0.05 * 2 * len(spans)  # seconds and overlaps are kept to 0.1 s
    # the stages' time counted once: the time some stage ran (plus the chain's own ledger writes between stages)
    assert _union(spans.values()) - rounding <= total <= elapsed + rounding
    assert total < sum(e["seconds"] for e in ledger["stages"]) - 1.5  # two pairs of 1 s stages side by side


def test_a_failure_beside_another_stage_lets_it_finish_and_starts_nothing_new(plan):
    stages = build_stages(plan, "DATA", select(plan, ["P1"]))
    runner = TimedRunner(stages, seconds=0.5)

    def flat_fails_at_once(command, log, on_line):
        if command[0] == "export" and "flat" in command[2]:
            return 1
        return runner(command, log, on_line)

    with pytest.raises(UserError, match="stage P1/export-flat failed"):
        run_chain(stages, plan.out, plan.path, "DATA", run=flat_fails_at_once, parallel_kinds=PARALLEL, slots=2)
    status = {e["id"]: e["status"] for e in json.loads((plan.out / "ledger.json").read_text())["stages"]}
    assert status["P1/export-cascade"] == "done" and status["P1/export-flat"] == "failed"
    assert "P1/eval-keras" not in status  # ready, and a slot was free, but nothing starts after a failure


def test_a_ctrl_c_stops_every_stage_running_side_by_side(plan):
    import signal
    import threading

    # Python's own handler must be the one a Ctrl-C meets (a real signal below would otherwise end the process)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    stages = build_stages(plan, "DATA", select(plan, ["P1"]))
    runner = TimedRunner(stages, seconds=0.05)

    def export(command, log, on_line):
        if "flat" in command[2]:
            time.sleep(0.2)
            # A real SIGINT to the main thread, which is waiting on the stages, as a Ctrl-C delivers it; not
            # _thread.interrupt_main(), which only sets a flag: once in a full run of the suite beside a busy
            # worker, the main thread had not raised it 10 s later.
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        for _ in range(500):  # converts until told to stop (run_subprocess's poll loop calls on_line)
            time.sleep(0.02)
            on_line("converting")
        pytest.fail("a running stage was not stopped")

    def interrupted(command, log, on_line):
        return export(command, log, on_line) if command[0] == "export" else runner(command, log, on_line)

    with pytest.raises(KeyboardInterrupt):
        run_chain(stages, plan.out, plan.path, "DATA", run=interrupted, parallel_kinds=PARALLEL, slots=2)
    entries = {e["id"]: e for e in json.loads((plan.out / "ledger.json").read_text())["stages"]}
    assert entries["P1/export-cascade"]["status"] == entries["P1/export-flat"]["status"] == "interrupted"
    assert entries["P1/train-flat"]["status"] == "done" and "P1/eval-keras" not in entries
    assert entries["P1/export-flat"]["overlap_seconds"] > 0  # saved after both stopped


def _most_at_once(spans) -> int:
    ends = sorted([(a, 1) for a, _ in spans.values()] + [(b, -1) for _, b in spans.values()])
    count = most = 0
    for _, step in ends:  # an end at the same instant as a start comes first
        count += step
        most = max(most, count)
    return most


def test_beside_training_the_exports_fill_the_cores_a_training_leaves_and_trainings_never_meet(tmp_path):
    path = tmp_path / "plan.toml"
    # as the shipped plan: the cascade's heads on the flat run's backbone
    text = 'cascade_set = ["model.backbone_from={flat}"]\n' + PLAN.format(out=tmp_path / "out")
    path.write_text(text.replace("bench = true", "bench = false"))
    plan = load_plan(path, REPO)
    stages = build_stages(plan, "DATA", select(plan, ["P1", "P2"]))
    runner = TimedRunner(stages, seconds=0.5)
    ledger = run_chain(
        stages, plan.out, plan.path, "DATA", run=runner, parallel_kinds=PARALLEL, slots=2, beside_training=True
    )
    spans = runner.spans
    training = [i for i in spans if i.endswith(("/train-flat", "/train-cascade"))]
    assert not any(_beside(spans, a, b) for a in training for b in training if a != b)
    assert not any(_beside(spans, "audit", b) for b in spans if b != "audit")
    # the flat export needs only the flat run: it converts while the cascade trains on that run's backbone
    assert _beside(spans, "P1/train-cascade", "P1/export-flat")
    # the next protocol's training starts when the last one's ends, while that one's exports and evaluations run
    assert spans["P2/train-flat"][0] < max(spans[f"P1/{k}"][1] for k in PARALLEL)
    assert _most_at_once(spans) == 2
    assert all(e["status"] == "done" for e in ledger["stages"])
    assert total_seconds(ledger) < sum(e["seconds"] for e in ledger["stages"]) - 1.0


def test_a_training_beside_an_export_counts_whole_in_the_training_time():
    # 100 s of training, the last 60 of them beside a 60 s export: 100 s of wall time in all, all of it training
    ledger = {
        "stages": [
            {"kind": "train-flat", "seconds": 100.0, "overlap_seconds": 30.0},
            {"kind": "export-cascade", "seconds": 60.0, "overlap_seconds": 30.0},
        ]
    }
    assert total_seconds(ledger) == training_seconds(ledger) == 100.0


def test_beside_training_a_rerun_skips_what_is_done_and_goes_on(plan):
    done = build_stages(plan, "DATA", select(plan, ["P1"]))
    first = TimedRunner(done, seconds=0.05)
    run_chain(done, plan.out, plan.path, "DATA", run=first, parallel_kinds=PARALLEL, slots=2, beside_training=True)
    stages = build_stages(plan, "DATA", select(plan, ["P1", "P2"]))
    runner = TimedRunner(stages, seconds=0.05)
    ledger = run_chain(
        stages, plan.out, plan.path, "DATA", run=runner, parallel_kinds=PARALLEL, slots=2, beside_training=True
    )
    assert set(runner.spans) == {s.id for s in stages if s.protocol == "P2"}
    assert all(e["status"] == "done" for e in ledger["stages"])


def test_beside_training_the_edge_bench_runs_alone_and_lets_trainings_pass(plan):
    stages = build_stages(plan, "DATA", select(plan, ["P1", "P2"]))
    runner = TimedRunner(stages, seconds=0.3)
    ledger = run_chain(
        stages, plan.out, plan.path, "DATA", run=runner, parallel_kinds=PARALLEL, slots=2, beside_training=True
    )
    spans = runner.spans
    assert not any(_beside(spans, "P1/edge-bench", b) for b in spans if b != "P1/edge-bench")
    # it waits for a quiet machine without holding the next protocol's trainings back
    assert min(spans[f"P2/{k}"][0] for k in ("train-flat", "train-cascade")) < spans["P1/edge-bench"][0]
    assert [e["id"] for e in ledger["stages"]] == [s.id for s in stages]  # the ledger keeps plan order


@pytest.mark.parametrize(
    "line, message",
    [
        ("beside_training = true", "beside_training needs parallel_kinds and parallel_slots of at least 2"),
        ('parallel_kinds = ["export-flat", "exprot-cascade"]', "unknown stage kind 'exprot-cascade'"),
        ('parallel_kinds = ["edge-bench"]', "edge-bench times the CPU and must run alone"),
        ("parallel_slots = 0", "parallel_slots must be at least 1"),
        ("beside_nice = 10", "beside_nice needs beside_training = true"),
        ("beside_nice = 20", "beside_nice must be a niceness from 0 to 19"),
    ],
)
def test_parallel_plan_mistakes_are_one_line_errors(tmp_path, line, message):
    path = tmp_path / "plan.toml"
    path.write_text(line + "\n" + PLAN.format(out=tmp_path / "out"))
    with pytest.raises(ConfigError, match=message):
        load_plan(path, REPO)


class PriorityRunner(TimedRunner):
    """A TimedRunner that records the niceness each stage was asked to run at."""

    def __init__(self, stages, seconds: float = 0.05):
        super().__init__(stages, seconds)
        self.nice = {}

    def __call__(self, command, log, on_line, **priority):
        self.nice[self.by_args[command].id] = priority.get("nice", 0)
        return super().__call__(command, log, on_line)


def test_beside_a_training_the_parallel_stages_run_at_the_plans_niceness(plan):
    stages = build_stages(plan, "DATA", select(plan, ["P1"]))
    runner = PriorityRunner(stages)
    run_chain(
        stages,
        plan.out,
        plan.path,
        "DATA",
        run=runner,
        parallel_kinds=PARALLEL,
        slots=2,
        beside_training=True,
        beside_nice=7,
    )
    kinds = {s.id: s.kind for s in stages}
    assert {i: n for i, n in runner.nice.items() if kinds[i] in PARALLEL} == {f"P1/{k}": 7 for k in PARALLEL}
    assert all(n == 0 for i, n in runner.nice.items() if kinds[i] not in PARALLEL)  # trainings, audit, benchmark
    assert {"P1/train-flat", "P1/edge-bench"} <= set(runner.nice)
    # without beside_training nothing is lowered: stages side by side share the cores as equals
    shutil.rmtree(plan.out)
    again = PriorityRunner(stages)
    run_chain(stages, plan.out, plan.path, "DATA", run=again, parallel_kinds=PARALLEL, slots=2, beside_nice=7)
    assert len(again.nice) == len(stages) and set(again.nice.values()) == {0}


def test_a_stage_at_a_niceness_runs_its_child_at_it(tmp_path, monkeypatch):
    from neurocascade.results import chain

    # read after a pause: the parent lowers the child's priority just after starting it
    show = "import os, time; time.sleep(0.5); print('niceness', os.nice(0))"
    monkeypatch.setattr(chain, "_child_argv", lambda command: [sys.executable, "-c", show])
    base = os.nice(0)
    for nice in (0, 5):
        log = tmp_path / f"nice{nice}.log"
        assert chain.run_subprocess(("--version",), log, lambda line: None, nice=nice) == 0
        assert log.read_text().splitlines()[-1] == f"niceness {min(base + nice, 19)}"


def test_the_shipped_plan_runs_exports_and_evaluations_side_by_side():
    plan = load_plan(REPO / "configs" / "results.toml", REPO)
    assert set(plan.parallel_kinds) == set(PARALLEL) and plan.parallel_slots == 2 and plan.beside_training
    assert plan.beside_nice > 0  # and beside a training they yield to it


def test_a_ledger_written_before_overlaps_were_recorded_still_reads(plan):
    from neurocascade.results.chain import Ledger, load_ledger

    plan.out.mkdir(parents=True)
    entry = {"id": "audit", "kind": "audit", "protocol": None, "command": None, "status": "done", "seconds": 16.0}
    (plan.out / "ledger.json").write_text(
        json.dumps({"schema_version": 1, "stages": [{**entry, "finished": None, "log": None}]})
    )
    ledger = load_ledger(plan.out)
    assert total_seconds(ledger) == 16.0
    assert Ledger.read_if_exists(plan.out / "ledger.json").stages[0]["overlap_seconds"] is None


def test_the_page_counts_stages_side_by_side_once():
    from neurocascade.results.collect import stage_costs
    from neurocascade.results.page import _costs

    stages = [
        {"id": "P/train-cascade", "kind": "train-cascade", "seconds": 500.0, "status": "done"},  # a v1 entry
        {"id": "P/export-cascade", "kind": "export-cascade", "seconds": 360.0, "overlap_seconds": 113.5},
        {"id": "P/export-flat", "kind": "export-flat", "seconds": 227.0, "overlap_seconds": 113.5},
    ]
    for s in stages[1:]:
        s["status"] = "done"
    costs = stage_costs(stages, BUDGETS)
    assert costs["total_s"] == total_seconds({"stages": stages}) == 500.0 + 360.0  # the exports' pair took 360 s
    text = "\n".join(_costs({"costs": costs, "missing": [], "commands": []}))
    assert "| `P/export-flat` | 3:47 | 1:54 | done |" in text
    assert "Total 14:20 (wall time: the sum of the stage times less 3:47 counted more than once while" in text


def test_each_stage_names_the_machine_it_ran_on_and_a_resumed_training_both(plan):
    stages = build_stages(plan, "DATA", select(plan, ["P1"]))[:2]
    train = stages[1]

    def interrupted(command, log, on_line):
        if command[0] == "train-cascade":  # killed half-way on the first machine
            train.partial.parent.mkdir(parents=True)
            train.partial.write_text("")
            raise KeyboardInterrupt
        return FakeRunner(stages)(command, log, on_line)

    with pytest.raises(KeyboardInterrupt):
        run_chain(stages, plan.out, plan.path, "DATA", run=interrupted, host="first machine")
    ledger = run_chain(stages, plan.out, plan.path, "DATA", run=FakeRunner(stages), host="second machine")
    assert [e["hosts"] for e in ledger["stages"]] == [["first machine"], ["first machine", "second machine"]]
    again = run_chain(stages, plan.out, plan.path, "DATA", run=FakeRunner(stages), host="third machine")
    assert [e["hosts"] for e in again["stages"]] == [e["hosts"] for e in ledger["stages"]]  # skipped: kept
    stages[0].done.unlink()  # made again, by default on this machine
    fresh = run_chain(stages[:1], plan.out / "fresh", plan.path, "DATA", run=FakeRunner(stages))
    assert fresh["stages"][0]["hosts"] == [host_label()]


def test_the_page_names_the_machine_of_the_times_and_marks_each_stage_when_there_are_several():
    from neurocascade.results.collect import COST_TARGETS, stage_costs
    from neurocascade.results.page import _costs

    def entry(stage_id, kind, seconds, hosts=None):
        return {
            "id": stage_id,
            "kind": kind,
            "seconds": seconds,
            "status": "done",
            **({"hosts": hosts} if hosts else {}),
        }

    def page(stages):
        costs = stage_costs(stages, BUDGETS)
        return costs, "\n".join(_costs({"costs": costs, "missing": [], "commands": []}))

    costs, text = page(
        [entry("P/train-flat", "train-flat", 600.0, ["avx2 host"]), entry("P/eval", "eval", 60.0, ["avx2 host"])]
    )
    assert "Every stage ran on avx2 host." in text and "machine" not in text.split("Total")[0]  # no column
    judge = next(t for t in COST_TARGETS if t.name.startswith("make results wall time")).judge
    assert judge(SimpleNamespace(costs=costs, complete=True))[2] == "all stages, on avx2 host"

    costs, text = page(
        [
            entry("audit", "audit", 18.0),  # a ledger entry from before machines were recorded
            entry("P/train-flat", "train-flat", 600.0, ["avx2 host", "vnni host"]),
            entry("P/eval", "eval", 60.0, ["vnni host"]),
        ]
    )
    assert "| `audit` | 0:18 | — | done |" in text and "| `P/train-flat` | 10:00 | A, B | done |" in text
    assert "| `P/eval` | 1:00 | B | done |" in text
    assert "on 2 machines (A: avx2 host; B: vnni host; —: not recorded" in text and "not one machine's" in text
    judge = next(t for t in COST_TARGETS if t.name.startswith("training wall time (minutes")).judge
    assert judge(SimpleNamespace(costs=costs, complete=True))[2] == "all protocols, on 2 machines (section 6)"

    costs, text = page([entry("audit", "audit", 18.0), entry("P/eval", "eval", 60.0, ["avx2 host"])])
    assert "| `audit` | 0:18 | — | done |" in text and "| `P/eval` | 1:00 | A | done |" in text
    assert "Machines (column): A: avx2 host; —: not recorded" in text and "not one machine's" not in text
    judge = next(t for t in COST_TARGETS if t.name.startswith("make results wall time")).judge
    assert judge(SimpleNamespace(costs=costs, complete=True))[2] == "all stages"  # one known, one unknown


def test_a_chain_in_two_sittings_says_its_total_is_not_one_chains_wall_time():
    """Stages deleted and made again an hour and a half later (stop 58: the exports with other settings): the page
    names both sittings, and the wall-time target says what its number is; one sitting says nothing of the kind."""
    from neurocascade.results.collect import COST_TARGETS, sittings, stage_costs
    from neurocascade.results.page import _costs

    def entry(stage_id, kind, seconds, finished):
        return {"id": stage_id, "kind": kind, "seconds": seconds, "status": "done", "finished": finished}

    first = [
        entry("P/train-flat", "train-flat", 600.0, "2026-12-07T16:10:00+00:00"),
        entry("P/train-cascade", "train-cascade", 180.0, "2026-12-07T16:13:05+00:00"),  # 5 s after: one sitting
    ]
    again = [entry("P/export-flat", "export-flat", 120.0, "2026-12-07T17:50:00+00:00")]
    assert sittings(first) == [("2026-12-07T16:00:00+00:00", "2026-12-07T16:13:05+00:00")]
    assert len(sittings(first + again)) == 2
    wall = next(t for t in COST_TARGETS if t.name.startswith("make results wall time")).judge
    for stages, expected in ((first, "all stages"), (first + again, "all stages in 2 sittings, not one chain's")):
        costs = stage_costs(stages, BUDGETS)
        text = "\n".join(_costs({"costs": costs, "missing": [], "commands": []}))
        assert wall(SimpleNamespace(costs=costs, complete=True))[2].startswith(expected)
        assert ("ran in 2 sittings (2026-12-07 16:00:00+00:00 to 2026-12-07 16:13:05+00:00;" in text) == (
            stages is not first
        )
    assert sittings([{"id": "x", "seconds": None, "finished": None}]) == []  # untimed stages are no sitting
