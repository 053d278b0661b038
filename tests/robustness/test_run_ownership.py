"""A run folder is one writer's and knows what it is (issue 14, items 3 and 6).

One flat run on the session's phantoms, interrupted after its first epoch, is what every test here resumes:
with another data set, other pixels, another config (each refused, naming the difference), while another
process holds its lock (refused), and finally moved to another folder, from another working folder, with a
lock left behind by a killed process (resumed, to the epochs of the uninterrupted run).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from neurocascade.hierarchy.ownership import LOCK, RUN_RECORD, claim_run
from neurocascade.hierarchy.run import train_models
from neurocascade.hierarchy.train import TrainingInterrupted
from neurocascade.config import load_config
from neurocascade.errors import UserError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cfg(test_config_path):
    return load_config(test_config_path)


@pytest.fixture(scope="module")
def interrupted(tiny_runs, cfg, tmp_path_factory):
    """A flat run killed after one epoch: what it recorded at its start, and no manifest.json."""
    out = tmp_path_factory.mktemp("ownership") / "killed"
    with pytest.raises(TrainingInterrupted):
        train_models(
            cfg, ("flat",), out, data=str(tiny_runs["data"]), cache_root=tiny_runs["cache"], stop_after_epochs=1
        )
    return out


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_the_start_record_is_written_before_the_first_epoch_and_finished_still_means_finished(interrupted):
    record = json.loads((interrupted / RUN_RECORD).read_text())
    assert record["stages"] == ["flat"]
    assert set(record["dataset"]) == {"root", "fingerprint", "content", "split_hashes"}
    assert "[train]" in record["config"]
    assert not (interrupted / "manifest.json").exists()  # eval/export keep refusing an unfinished run
    assert not (interrupted / LOCK).exists()  # released when the process left the run


def test_resume_on_another_data_set_is_refused(interrupted, tiny_runs, cfg, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_runs["data"], other)
    next(other.rglob("*.png")).unlink()
    with pytest.raises(UserError, match="another data set .*image paths or labels differ") as exc:
        train_models(cfg, ("flat",), interrupted, data=str(other), resume=True, cache_root=tiny_runs["cache"])
    assert str(other) in _one_line(exc)


def test_resume_on_the_same_paths_with_other_pixels_is_refused(interrupted, tiny_runs, cfg, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_runs["data"], other)
    a, b = sorted(p for p in other.rglob("*.png") if p.parent.name == "glioma")[:2]
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)  # same names, labels and split: only the content tells
    with pytest.raises(UserError, match="same paths, other image content") as exc:
        train_models(cfg, ("flat",), interrupted, data=str(other), resume=True, cache_root=tiny_runs["cache"])
    _one_line(exc)


def test_resume_with_another_config_is_refused_naming_the_key(interrupted, tiny_runs, cfg):
    changed = replace(cfg, train=replace(cfg.train, phase1_epochs=cfg.train.phase1_epochs + 4))
    with pytest.raises(UserError, match=r"another config: train\.phase1_epochs = 7 \(the run has 3\)") as exc:
        train_models(
            changed, ("flat",), interrupted, data=str(tiny_runs["data"]), resume=True, cache_root=tiny_runs["cache"]
        )
    _one_line(exc)


def test_resume_with_other_stages_is_refused(interrupted, tiny_runs, cfg):
    with pytest.raises(UserError, match="stages gate, subtype, but the run trains flat"):
        train_models(
            cfg,
            ("gate", "subtype"),
            interrupted,
            data=str(tiny_runs["data"]),
            resume=True,
            cache_root=tiny_runs["cache"],
        )


def _holder(run: Path, then: str) -> subprocess.Popen:
    """Another process that claims `run` (as a training would), says so on stdout, then `then`s."""
    code = textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        from neurocascade.hierarchy.ownership import claim_run
        with claim_run(Path({str(run)!r}), resume={run.exists()!r}):
            print("claimed", flush=True)
            {then}
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "claimed"
    return proc


def test_a_second_training_into_a_folder_in_use_is_refused(tiny_runs, cfg, tmp_path):
    """The race of two `train-cascade --out X` 0.3 s apart: the second finds the folder taken, not empty."""
    out = tmp_path / "shared"
    proc = _holder(out, "time.sleep(60)")
    try:
        with pytest.raises(UserError, match=f"another training is writing this run \\(pid {proc.pid} ") as exc:
            train_models(cfg, ("flat",), out, data=str(tiny_runs["data"]), cache_root=tiny_runs["cache"])
        _one_line(exc)
        with pytest.raises(UserError, match="another training is writing this run"):
            with claim_run(out, resume=True):
                pass
    finally:
        proc.kill()
        proc.wait()
    with claim_run(out, resume=False):  # the lock its killed holder left behind is taken over
        assert (out / LOCK).is_file()
    assert list(out.iterdir()) == []  # nothing was written; the killed holder's lock file is gone too


def test_a_failed_start_leaves_no_half_made_folder(tiny_runs, cfg, tmp_path):
    out = tmp_path / "typo"
    with pytest.raises(UserError):
        train_models(cfg, ("flat",), out, data=str(tmp_path / "no-such-data"), cache_root=tiny_runs["cache"])
    assert not out.exists()


def test_a_moved_run_resumes_from_another_folder_despite_a_stale_lock(
    interrupted, tiny_runs, cfg, tmp_path, monkeypatch
):
    """state.json names its checkpoint relative to the phase folder; a killed holder's lock blocks nothing."""
    moved = tmp_path / "elsewhere" / "run"
    moved.parent.mkdir()
    shutil.move(str(interrupted), moved)
    proc = _holder(moved, "os.kill(os.getpid(), 9)")
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and (moved / LOCK).is_file()
    state = json.loads((moved / "stages" / "flat" / "phase1" / "state.json").read_text())
    assert state["checkpoint"] == "ckpt/ckpt-1"
    monkeypatch.chdir(tmp_path)
    resumed = train_models(
        None, ("flat",), moved, data=str(tiny_runs["data"]), resume=True, cache_root=tiny_runs["cache"]
    )
    full = json.loads((tiny_runs["flat"] / "summary.json").read_text())
    for phase in ("phase1", "phase2"):
        assert resumed["stages"]["flat"][phase]["epochs"] == full["stages"]["flat"][phase]["epochs"]
    assert (moved / "manifest.json").is_file() and not (moved / LOCK).exists()
    assert os.getcwd() == str(tmp_path)
