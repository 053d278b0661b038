"""A worker's role from TF_CONFIG: who is the chief, where each worker writes, and a malformed TF_CONFIG as one
line (the two-worker training itself is tests/hierarchy/test_multi_worker.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from neurocascade.errors import UserError
from neurocascade.hierarchy.cluster import WorkerRole, worker_cache, worker_output, worker_role

WORKERS = ["localhost:1111", "localhost:2222"]


def tf_config(cluster: dict, task: dict) -> str:
    return json.dumps({"cluster": cluster, "task": task})


def test_no_tf_config_is_a_single_chief():
    assert worker_role(None) == worker_role("  ") == WorkerRole()
    assert WorkerRole().chief


def test_worker_zero_is_the_chief_unless_the_cluster_names_one():
    zero, one = (worker_role(tf_config({"worker": WORKERS}, {"type": "worker", "index": i})) for i in (0, 1))
    assert (zero.chief, one.chief, zero.count, one.name) == (True, False, 2, "worker1")
    cluster = {"chief": ["localhost:3333"], "worker": WORKERS}
    chief = worker_role(tf_config(cluster, {"type": "chief", "index": 0}))
    worker0 = worker_role(tf_config(cluster, {"type": "worker", "index": 0}))
    assert (chief.chief, worker0.chief, chief.count) == (True, False, 3)


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"cluster": ', "TF_CONFIG: not valid JSON (Expecting value at character 12)"),
        ('{"cluster": {"worker": []}}', 'TF_CONFIG: must be a JSON object with "cluster" and "task" objects'),
        (
            tf_config({"worker": ["localhost"]}, {"type": "worker", "index": 0}),
            'TF_CONFIG: cluster.worker must be a non-empty list of "host:port" addresses',
        ),
        (
            tf_config({"ps": WORKERS}, {"type": "ps", "index": 0}),
            'TF_CONFIG: cluster has \'ps\' tasks; multi_worker training has only "chief" and "worker" tasks',
        ),
        (
            tf_config({"worker": WORKERS}, {"type": "chief", "index": 0}),
            "TF_CONFIG: task.type 'chief' is not one of the cluster's task types (worker)",
        ),
        (
            tf_config({"worker": WORKERS}, {"type": "worker", "index": 2}),
            "TF_CONFIG: task.index 2 is not an index of cluster.worker (0..1)",
        ),
        (
            tf_config({"worker": WORKERS}, {"type": "worker", "index": "0"}),
            "TF_CONFIG: task.index '0' is not an index of cluster.worker (0..1)",
        ),
    ],
)
def test_malformed_tf_config_is_named(text, message):
    with pytest.raises(UserError) as caught:
        worker_role(text)
    assert str(caught.value) == f"{message}; see the README, 'Training on a cluster or on GPUs'"


def test_only_the_chief_writes_out_and_the_shared_cache(tmp_path):
    chief, other = WorkerRole(index=0, count=2), WorkerRole(index=1, count=2)
    with worker_output(tmp_path / "run", chief) as run_dir:
        assert run_dir == tmp_path / "run"
    with worker_output(tmp_path / "run", other) as run_dir:
        assert not run_dir.is_relative_to(tmp_path)
        run_dir.mkdir()
        (run_dir / "x").write_text("x")
    assert not run_dir.parent.exists()  # the scratch folder is removed
    assert worker_cache(tmp_path, chief) == tmp_path and worker_cache(tmp_path, other) == tmp_path / "worker1"


def test_cli_malformed_tf_config_is_one_line_and_leaves_nothing(tmp_path, test_config_path):
    from neurocascade import cli

    args = ["train-flat", "--config", str(test_config_path), "--data", str(tmp_path / "none"), "--out"]
    args += [str(tmp_path / "run"), "--set", "train.strategy=multi_worker"]
    result = CliRunner().invoke(cli.main, args, env={"TF_CONFIG": "{worker: 1}"}, catch_exceptions=False)
    assert result.exit_code == 2
    assert result.output == (
        "error: TF_CONFIG: not valid JSON (Expecting property name enclosed in double quotes at character 1); "
        "see the README, 'Training on a cluster or on GPUs'\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_resuming_a_multi_worker_run_is_refused(tmp_path, test_config_path, monkeypatch):
    from neurocascade.config import load_config
    from neurocascade.hierarchy.run import train_models

    monkeypatch.setenv("TF_CONFIG", tf_config({"worker": WORKERS}, {"type": "worker", "index": 0}))
    cfg = load_config(test_config_path, ["train.strategy=multi_worker"])
    with pytest.raises(UserError, match=r"--resume of a multi_worker run is not supported"):
        train_models(cfg, ("flat",), Path(tmp_path), resume=True)
