"""`train.strategy = "multi_worker"`: two worker processes on localhost (TF_CONFIG, ports chosen at run time)
run the same `neurocascade train-flat` of configs/test.toml's tiny flat run, and the result equals one process's
with the default strategy.

What is compared: the chief's validation probabilities and every weight of its saved model against the
single-process run's, and the epochs and best epochs of its phases. Equal means within TOLERANCE
(absolute). What may differ is the order of floating-point sums only: the all-reduce adds the workers'
gradients and the head's BatchNormalization statistics (synchronized across replicas) in another order than
one process adds its batch. Measured on this training (5 epochs, 320 weight tensors): 3.0e-8 on the
probabilities, 7.5e-9 on the weights, per-epoch losses equal to 1e-7. 1e-5 leaves a margin of 300x for other
CPUs and thread counts and is still 600x below a real difference: unsynchronized BatchNormalization (each
worker normalizing by its half of the batch, as before issue 16) gave 5.9e-3 on the probabilities.

It holds only when the run is the same computation: dropout is off (each replica draws its own masks, so a
run with dropout differs from one process's by chance, not by error), and every global batch splits evenly
between the workers (24 training images, batch 8: Keras averages the loss per replica, so an uneven last
batch weighs its images unequally). Both workers get the same --out and cache folder, as on a shared file
system: only the chief may write the run there.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

TOLERANCE = 1e-5
TIMEOUT = 480  # seconds per worker: ~150 s measured on 2 busy cores; a hung collective fails here, not in CI's limit
OVERRIDES = ["model.dropout=0"]  # see the module's docstring
TRAIN_IMAGES = 24  # the flat stage's training images on configs/test.toml's phantoms (checked below)


def free_ports(n: int) -> list[int]:
    """`n` ports free on localhost now (bound to port 0, then released for the workers)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start_workers(tmp: Path, config: Path, n: int) -> list[subprocess.Popen]:
    """`n` workers, each running the same `neurocascade train-flat` as a user would, with its own TF_CONFIG."""
    from neurocascade.paths import CACHE_ENV, child_env

    addresses = [f"localhost:{port}" for port in free_ports(n)]
    command = [sys.executable, "-m", "neurocascade", "train-flat", "--config", str(config)]
    command += ["--data", str(tmp / "phantoms"), "--out", str(tmp / "run"), "--set", "train.strategy=multi_worker"]
    command += [arg for override in OVERRIDES for arg in ("--set", override)]
    procs = []
    for index in range(n):
        tf_config = json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})
        env = child_env(TF_CONFIG=tf_config, TF_CPP_MIN_LOG_LEVEL="2", **{CACHE_ENV: str(tmp / "cache")})
        procs.append(
            subprocess.Popen(command, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    return procs


def finish(procs: list[subprocess.Popen], deadline: float) -> list[str]:
    """Each worker's last line of output; a worker that fails or outlives the deadline fails the test (all killed)."""
    lines = []
    try:
        for index, proc in enumerate(procs):
            try:
                stdout, stderr = proc.communicate(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                pytest.fail(f"worker {index} still running after {TIMEOUT} s (a hung collective?)")
            assert proc.returncode == 0, f"worker {index} failed:\n{stderr[-3000:]}"
            lines.append(stdout.strip().splitlines()[-1])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return lines


def weights(path: Path) -> list[np.ndarray]:
    from neurocascade.tf import keras

    return keras.models.load_model(str(path), compile=False).get_weights()


def test_two_workers_train_what_one_process_trains(tmp_path, test_config_path):
    from neurocascade.config import load_config
    from neurocascade.data.phantoms import write_phantom_dataset
    from neurocascade.hierarchy.run import train_models

    cfg = load_config(test_config_path, OVERRIDES)
    p = cfg.phantoms
    write_phantom_dataset(tmp_path / "phantoms", p.n_per_class, p.size, p.seed, p.test_fraction, p.copies_fraction)
    procs = start_workers(tmp_path, test_config_path, 2)
    deadline = time.monotonic() + TIMEOUT
    try:  # the single-process run meanwhile, in this process
        single = train_models(
            cfg, ("flat",), tmp_path / "single", data=str(tmp_path / "phantoms"), cache_root=tmp_path / "single-cache"
        )
    finally:
        chief_line, other_line = finish(procs, deadline)

    manifest = json.loads((tmp_path / "single" / "manifest.json").read_text())
    assert manifest["dataset"]["counts"]["train"] == TRAIN_IMAGES
    assert TRAIN_IMAGES % cfg.train.batch_size == 0 and cfg.train.batch_size % 2 == 0  # even splits (docstring)

    # Only the chief wrote the run; the other worker's scratch run is gone, its cache is its own subfolder.
    assert chief_line == f"run: {tmp_path / 'run'}"
    assert other_line == "worker1 of 2: trained with the chief, which writes the run"
    assert (tmp_path / "run" / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "phantoms", "run", "single", "single-cache"]
    assert (tmp_path / "cache" / "worker1").is_dir()

    chief = json.loads((tmp_path / "run" / "summary.json").read_text())["stages"]["flat"]
    single = single["stages"]["flat"]
    phases = [k for k in single if k.startswith("phase")]
    assert phases == ["phase1", "phase2"]
    for phase in phases:
        assert (chief[phase]["epochs"], chief[phase]["best_epoch"]) == (
            single[phase]["epochs"],
            single[phase]["best_epoch"],
        )
    assert chief["val_macro_f1"] == pytest.approx(single["val_macro_f1"], abs=TOLERANCE)

    probs = {k: np.load(tmp_path / k / "val_predictions.npz")["flat"] for k in ("run", "single")}
    assert probs["run"].shape == probs["single"].shape
    prob_diff = float(np.abs(probs["run"] - probs["single"]).max())
    pairs = list(
        zip(weights(tmp_path / "run" / "models" / "flat.keras"), weights(tmp_path / "single" / "models" / "flat.keras"))
    )
    assert pairs and all(a.shape == b.shape for a, b in pairs)
    weight_diff = max(float(np.abs(a - b).max()) for a, b in pairs)
    print(f"multi-worker vs one process: probabilities {prob_diff:.2e}, weights {weight_diff:.2e}")
    assert prob_diff <= TOLERANCE and weight_diff <= TOLERANCE
