"""The built wheel: one namespace (nothing generic in site-packages), the CLI and configs inside, an edge extra
without TensorFlow; and the installed copy reads nothing from a clone (fast: seconds, no download)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from neurocascade import SUBPACKAGES

REPO = Path(__file__).resolve().parents[2]

TENSORFLOW = ("tensorflow", "tf-keras", "tf_keras", "keras", "tensorflow-model-optimization")


def test_wheel_holds_one_namespace_with_the_cli_configs_and_every_module(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"neurocascade", "neurocascade-0.1.0.dist-info"}
    files = {n for n in names if n.startswith("neurocascade/")}
    want = {f"neurocascade/{p.relative_to(REPO).as_posix()}" for pkg in SUBPACKAGES for p in (REPO / pkg).glob("*.py")}
    want |= {f"neurocascade/configs/{p.name}" for p in (REPO / "configs").glob("*.toml")}
    want |= {f"neurocascade/{p.name}" for p in (REPO / "neurocascade").glob("*.py")} | {"neurocascade/cli.py"}
    assert files == want
    assert zipfile.ZipFile(wheel).read("neurocascade/cli.py") == (REPO / "cli.py").read_bytes()


def test_wheel_metadata_entry_point_python_range_and_a_tensorflow_free_edge_extra(wheel):
    archive = zipfile.ZipFile(wheel)
    meta = Parser().parsestr(archive.read("neurocascade-0.1.0.dist-info/METADATA").decode())
    assert meta["Requires-Python"] in (">=3.11,<3.14", "<3.14,>=3.11")
    requires = meta.get_all("Requires-Dist")
    edge = [r for r in requires if "extra ==" not in r or '"edge"' in r]
    names = {r.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower() for r in edge}
    assert names == {"numpy", "pillow", "click", "rich", "pydicom", "ai-edge-litert"}
    assert not names & set(TENSORFLOW)
    assert any(r.startswith("ruff==") for r in requires)  # pinned in the test extra
    entry = archive.read("neurocascade-0.1.0.dist-info/entry_points.txt").decode()
    assert "neurocascade = neurocascade.cli:main" in entry


def test_installed_copy_finds_its_configs_and_edge_code_and_writes_to_the_working_directory(wheel, tmp_path):
    target, work = tmp_path / "site", tmp_path / "work"
    work.mkdir()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = (
        "import json, neurocascade, neurocascade.cli, neurocascade.data.phantoms as p; "
        "from neurocascade.edge.bundle import EDGE_CODE, code_file; from neurocascade.paths import *; "
        "print(json.dumps({'root': neurocascade.SOURCE_ROOT, 'path': list(neurocascade.__path__), "
        "'files': [neurocascade.cli.__file__, p.__file__], 'configs': builtin_configs(), "
        "'test': str(resolve_config('test')), 'edge': all(code_file(r).is_file() for r in EDGE_CODE)}))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=work, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    package = str(target / "neurocascade")
    assert got["root"] is None and got["path"] == [package]  # never extended with a clone's root
    assert all(f.startswith(package) for f in got["files"]) and got["edge"]
    assert {"default", "demo", "lite2", "results", "test"} <= set(got["configs"])
    assert got["test"] == f"{package}/configs/test.toml"

    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "neurocascade",
            "make-phantoms",
            "--config",
            "test",
            "--out",
            "ph",
            "--n-per-class",
            "2",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert (work / "ph" / "Training").is_dir()
    written = {p.name for p in (target / "neurocascade").iterdir() if not p.name.endswith(".py")}
    assert written - {"__pycache__"} == {"configs", *SUBPACKAGES}  # no runs/ or cache inside the package
    missing = subprocess.run(
        [sys.executable, "-m", "neurocascade", "audit-data", "ph", "--config", "nosuch"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "nosuch: config file not found; give a TOML file or a built-in name (default, demo" in missing.stderr
