"""This process's place in a multi-worker training (`train.strategy = "multi_worker"`), read from TF_CONFIG.

Every worker of a tf.distribute.MultiWorkerMirroredStrategy runs the same training and must save what it
trains (saving can involve collectives), but only the chief's files are the run: the chief (the task of type
"chief", or worker 0 when the cluster has none) writes `--out`; any other worker writes a scratch run folder
that is deleted at the end, and keeps its activation cache in its own `worker<i>` subfolder, so that workers
sharing a file system never touch the same files (issue 16, item 6).

    role = worker_role(os.environ.get("TF_CONFIG"))
    with worker_output(out, role) as run_dir:
        ...
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from neurocascade.errors import UserError

HINT = "see the README, 'Training on a cluster or on GPUs'"
TASK_TYPES = ("chief", "worker")


@dataclass(frozen=True)
class WorkerRole:
    """One task of the cluster: its type and index, and how many tasks train."""

    task_type: str = "worker"
    index: int = 0
    count: int = 1
    has_chief: bool = False  # the cluster names a "chief" task; else worker 0 is the chief

    @property
    def chief(self) -> bool:
        return self.task_type == "chief" or (self.index == 0 and not self.has_chief)

    @property
    def name(self) -> str:
        return f"{self.task_type}{self.index}"


def _error(reason: str) -> UserError:
    return UserError(f"TF_CONFIG: {reason}; {HINT}")


def worker_role(tf_config: str | None) -> WorkerRole:
    """The role TF_CONFIG gives this process; unset or empty: a single worker, the chief.

    A malformed TF_CONFIG is a one-line UserError here, before TensorFlow reads it (it would raise with a
    traceback, or wait for a worker that never comes).
    """
    if not tf_config or not tf_config.strip():
        return WorkerRole()
    try:
        spec = json.loads(tf_config)
    except json.JSONDecodeError as exc:
        raise _error(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    if (
        not isinstance(spec, dict)
        or not isinstance(spec.get("cluster"), dict)
        or not isinstance(spec.get("task"), dict)
    ):
        raise _error('must be a JSON object with "cluster" and "task" objects')
    cluster, task = spec["cluster"], spec["task"]
    for kind, addresses in cluster.items():
        if kind not in TASK_TYPES:
            raise _error(f'cluster has {kind!r} tasks; multi_worker training has only "chief" and "worker" tasks')
        if not isinstance(addresses, list) or not addresses or not all(_is_address(a) for a in addresses):
            raise _error(f'cluster.{kind} must be a non-empty list of "host:port" addresses')
    if len(cluster.get("chief", [])) > 1:
        raise _error("cluster.chief must list one address")
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster:
        raise _error(f"task.type {kind!r} is not one of the cluster's task types ({', '.join(cluster)})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[kind]):
        raise _error(f"task.index {index!r} is not an index of cluster.{kind} (0..{len(cluster[kind]) - 1})")
    count = sum(len(addresses) for addresses in cluster.values())
    return WorkerRole(kind, index, count, has_chief="chief" in cluster)


def _is_address(value: object) -> bool:
    host, sep, port = str(value).rpartition(":")
    return isinstance(value, str) and bool(host) and bool(sep) and port.isdigit()


@contextmanager
def worker_output(out: Path, role: WorkerRole) -> Iterator[Path]:
    """The folder this worker trains into: `out` for the chief, else a scratch folder removed afterwards."""
    if role.chief:
        yield Path(out)
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"neurocascade-{role.name}-"))
    try:
        yield scratch / "run"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def worker_cache(cache_root: Path, role: WorkerRole) -> Path:
    """The activation cache of this worker: the chief's is `cache_root`, another worker's a subfolder of it."""
    return Path(cache_root) if role.chief else Path(cache_root) / role.name
