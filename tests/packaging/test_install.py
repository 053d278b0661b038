"""Issue 16's "done when", as a user does it: fresh venvs in an empty folder outside the repository.

    pytest -m slow tests/packaging/test_install.py        # or: make check-install

1. venv A: `pip install -c constraints.txt <source>[train]`, then in an empty folder `neurocascade make-phantoms`,
   `train-cascade`, `train-flat`, `export` and `eval --compare-flat`, all with the built-in `test` config;
   site-packages gets the `neurocascade` package and its dist-info, nothing else of ours.
2. venv B: `pip install -c constraints.txt <source>[edge]`: no TensorFlow, Keras or tf_keras is installed, and
   `neurocascade predict` on venv A's export gives venv A's answers to the bit; `edge-bench` runs.
Neither venv sees this repository's virtualenv (no --system-site-packages). Minutes: TensorFlow is downloaded
once (pip's cache keeps it), then each step runs on the test config's 64 px phantoms.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

_ENSUREPIP = subprocess.run([sys.executable, "-m", "ensurepip", "--version"], capture_output=True).returncode == 0
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not _ENSUREPIP, reason="venv without pip here (apt-get install python3-venv)"),
]
REPO = Path(__file__).resolve().parents[2]
TENSORFLOW = {"tensorflow", "tensorflow-cpu", "tf-keras", "keras", "tensorflow-model-optimization"}
# PTQ rather than the config's QAT: the same export path minus the QAT epochs, which the edge tests cover.
EXPORT = ("--set", "export.qat=false", "--set", "export.representative_samples=16")


def _venv(path: Path, source: Path, extra: str) -> Path:
    """A fresh venv with `source[extra]` installed at the verified versions; returns its bin folder."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    proc = subprocess.run(
        [*pip, "-c", str(source / "constraints.txt"), f"{source}[{extra}]"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return path / "bin"


def _run(bin_dir: Path, cwd: Path, *args: str) -> str:
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(cwd)),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "NO_ALBUMENTATIONS_UPDATE": "1",
    }
    proc = subprocess.run([str(bin_dir / "neurocascade"), *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"neurocascade {' '.join(args)}:\n{proc.stderr[-3000:]}"
    return proc.stdout


def _installed(bin_dir: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "list", "--format", "json"], check=True, capture_output=True, text=True
    ).stdout
    return {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(out)}


def _own_files(bin_dir: Path) -> set[str]:
    """Top-level site-packages entries of the neurocascade distribution (its RECORD)."""
    (record,) = (bin_dir.parent / "lib").glob("python3.*/site-packages/neurocascade-*.dist-info/RECORD")
    tops = {line.split(",")[0].split("/")[0] for line in record.read_text().splitlines()}
    return {t for t in tops if t != ".."}  # ../../../bin/neurocascade: the script


def test_train_venv_runs_the_whole_path_and_the_edge_venv_predicts_without_tensorflow(source_tree, tmp_path):
    assert not tmp_path.is_relative_to(REPO)
    work = tmp_path / "work"
    work.mkdir()
    train = _venv(tmp_path / "venv-train", source_tree, "train")
    assert _own_files(train) == {
        "neurocascade",
        next(p.name for p in (train.parent / "lib").glob("python3.*/site-packages/neurocascade-*.dist-info")),
    }
    _run(train, work, "make-phantoms", "--config", "test", "--out", "runs/phantoms-test")  # the config's data.root
    _run(train, work, "train-cascade", "--config", "test")
    _run(train, work, "train-flat", "--config", "test")
    _run(train, work, "export", "--run", "runs/cascade-test", *EXPORT)
    _run(train, work, "eval", "--compare-flat", "--config", "test")
    assert (work / "runs" / "cascade-test" / "eval").is_dir() and (work / "runs" / ".cache").is_dir()
    images = str(work / "runs" / "phantoms-test" / "Testing")
    want = json.loads(_run(train, work, "predict", "--models", "runs/cascade-test/export", images, "--json"))

    edge = _venv(tmp_path / "venv-edge", source_tree, "edge")
    installed = _installed(edge)
    assert not TENSORFLOW & set(installed), sorted(installed)
    assert {"numpy", "pillow", "click", "rich", "pydicom", "ai-edge-litert"} <= set(installed)
    got = json.loads(_run(edge, work, "predict", "--models", "runs/cascade-test/export", images, "--json"))
    assert len(got) == len(want) > 0 and got == want
    _run(
        edge,
        work,
        "edge-bench",
        "--run",
        "runs/cascade-test",
        "--threads",
        "1",
        "--runs",
        "3",
        "--warmup",
        "0",
        "--json",
        str(tmp_path / "bench.json"),
    )
    assert json.loads((tmp_path / "bench.json").read_text())["models"]
