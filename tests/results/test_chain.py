"""The results chain: stages from the plan, skipped when done, resumed when partial, timed in a ledger."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurocascade.errors import ConfigError, UserError
from results.chain import run_chain, total_seconds
from results.display import clock
from results.plan import build_stages, load_plan, select

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
"""


@pytest.fixture
def plan(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text(PLAN.format(out=tmp_path / "out"))
    return load_plan(path, REPO)


def test_the_shipped_plan_loads_and_names_every_protocol():
    plan = load_plan(REPO / "configs" / "results.toml", REPO)
    assert [p.id for p in plan.protocols] == ["C-seed0", "B", "A", "C-seed1", "C-seed2"]
    assert plan.targets["c_macro_f1"] == 0.93


def test_stages_follow_the_chain_in_order(plan):
    stages = build_stages(plan, "DATA")
    kinds = [s.id for s in stages]
    assert kinds[:9] == ["audit", "P1/train-cascade", "P1/train-flat", "P1/export-cascade", "P1/export-flat",
                         "P1/eval-keras", "P1/eval-tflite-int8", "P1/edge-bench", "P2/train-cascade"]
    assert "P2/edge-bench" not in kinds  # bench only where the plan asks
    train = stages[1]
    assert train.args[:2] == ("train-cascade", "--config")
    assert ("--set", "data.protocol=grouped") == train.args[-2:]
    assert "export.after_training=false" in train.args  # export is its own stage
    assert train.resume[-1] == "--resume" and "--set" not in train.resume
    assert stages[3].args[-2:] == ("--set", "export.qat=false")  # ptq
    assert "--set" not in stages[-4].args  # P2 exports with QAT (the default)


def test_plan_errors_are_one_line(tmp_path, plan):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[protocol]]\nid = "X"\nname = "x"\nexport = "fp16"\n')
    with pytest.raises(ConfigError, match="export must be one of qat, ptq"):
        load_plan(bad)
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
    monkeypatch.setattr("results.chain.time.perf_counter", lambda: next(clock_now))

    def interrupted(command, log, on_line):
        if command[0] == "train-cascade":
            raise KeyboardInterrupt
        return FakeRunner(stages)(command, log, on_line)

    with pytest.raises(KeyboardInterrupt):
        run_chain(stages, plan.out, plan.path, "DATA", run=interrupted)
    ledger = json.loads((plan.out / "ledger.json").read_text())
    assert ledger["stages"][-1]["status"] == "interrupted" and ledger["stages"][-1]["seconds"] == 30.0
    ledger = run_chain(stages, plan.out, plan.path, "DATA", run=FakeRunner(stages))
    assert ledger["stages"][-1]["status"] == "done" and ledger["stages"][-1]["seconds"] == 40.0  # 30 + 10
