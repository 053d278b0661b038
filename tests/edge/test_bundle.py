"""The edge bundle: what the archive holds, and that the unpacked bundle predicts and benchmarks without TensorFlow.

The unpacked bundle runs in a subprocess whose `sitecustomize` refuses any import of tensorflow / keras / tf_keras
and records, at exit, every such attempt and where the project's modules were loaded from (the bundle, not the
repository). Its predictions must be the run's export's, to the bit: same models, same LiteRT, same machine.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner

from neurocascade.cli import main
from neurocascade.edge.bundle import EDGE_CODE, EDGE_PACKAGES, write_bundle
from neurocascade.edge.predict import predict_paths
from neurocascade.errors import UserError

REPO = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = ("neurocascade",)  # the one namespace; `python cli.py` itself runs as __main__
BLOCKER = """
import atexit, json, os, sys
_attempts = []
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            _attempts.append(name)
            raise ImportError(f"{name} is blocked: the edge path must not import it")
        return None
sys.meta_path.insert(0, _Block())
def _record():
    files = {n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())
             if n.split(".")[0] in %r}
    blocked = sorted(n for n in sys.modules if n.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
    with open(os.environ["NC_IMPORT_LOG"], "a") as fh:
        fh.write(json.dumps({"attempts": _attempts, "loaded": blocked, "files": files}) + "\\n")
atexit.register(_record)
""" % (PROJECT_PACKAGES,)


@pytest.fixture(scope="module")
def bundle(exported, tmp_path_factory) -> dict:
    """The cascade run's bundle, written and unpacked once for this module."""
    run = exported["cascade"][0]
    base = tmp_path_factory.mktemp("bundle")
    archive = write_bundle(run, base / "edge.tar.gz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        tar.extractall(base / "unpacked", filter="data")
    (tops,) = {n.split("/")[0] for n in names}
    return {"run": run, "archive": archive, "names": names, "root": base / "unpacked" / tops, "top": tops}


def _run_unpacked(root: Path, tmp: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """`python cli.py ARGS` in the unpacked bundle with TensorFlow blocked; (process, one import log per process)."""
    block = tmp / "block"
    block.mkdir(exist_ok=True)
    (block / "sitecustomize.py").write_text(BLOCKER)
    log = tmp / f"imports-{args[0]}.jsonl"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(block), "NC_IMPORT_LOG": str(log), "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "cli.py", *args], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    logs = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    return proc, logs


def _assert_edge_only(root: Path, logs: list[dict]) -> None:
    assert logs, "the sitecustomize that blocks TensorFlow did not run"
    for entry in logs:
        assert entry["attempts"] == [] and entry["loaded"] == [], entry
        outside = {n: f for n, f in entry["files"].items() if f and not Path(f).resolve().is_relative_to(root)}
        assert not outside, f"modules loaded from outside the bundle: {outside}"


def test_bundle_holds_the_verified_export_the_edge_code_pins_and_a_readme(bundle, tmp_path):
    run, top, root = bundle["run"], bundle["top"], bundle["root"]
    export = run / "export"
    manifest = json.loads((export / "export-manifest.json").read_text())
    expected = (
        {f"export/{n}" for n in manifest["files"]}
        | {"export/export-manifest.json"}
        | set(EDGE_CODE)
        | {"requirements.txt", "README.md", "bundle.json"}
    )
    assert top == f"{run.name}-edge" and {n.removeprefix(f"{top}/") for n in bundle["names"]} == expected
    assert not any(n.endswith(("bench.json", ".keras", ".pyc")) for n in bundle["names"])
    for name in manifest["files"]:
        assert (root / "export" / name).read_bytes() == (export / name).read_bytes()
    for rel in EDGE_CODE:
        assert (root / rel).read_bytes() == (REPO / rel).read_bytes()

    requirements = [
        line for line in (root / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")
    ]
    assert requirements == ["--only-binary :all:", *(f"{p}=={metadata.version(p)}" for p in EDGE_PACKAGES)]
    assert not any("tensorflow" in line or "keras" in line for line in requirements)

    readme = (root / "README.md").read_text()
    for text in (
        "pip install -r requirements.txt",
        "python cli.py predict --models export",
        "python cli.py edge-bench --run .",
        "## Expected memory",
        "not a medical device",
    ):
        assert text.lower() in readme.lower(), text
    info = json.loads((root / "bundle.json").read_text())
    assert info["run"] == manifest["run"] and info["kind"] == "cascade"
    for rel, rec in info["files"].items():
        assert hashlib.sha256((root / rel).read_bytes()).hexdigest() == rec["sha256"], rel
    # Reproducible: the same run bundles to the same bytes.
    assert write_bundle(run, tmp_path / "again.tar.gz").read_bytes() == bundle["archive"].read_bytes()


def test_unpacked_bundle_predicts_without_tensorflow_as_the_export_does(bundle, phantom_root, tmp_path):
    images = phantom_root / "Testing"
    proc, logs = _run_unpacked(bundle["root"], tmp_path, "predict", "--models", "export", str(images), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    _assert_edge_only(bundle["root"], logs)
    got = json.loads(proc.stdout)
    want = predict_paths(bundle["run"] / "export", [str(images)])
    assert len(got) == len(want) > 0
    assert [(r["path"], r["label"], r["stages"]) for r in got] == [(r["path"], r["label"], r["stages"]) for r in want]
    assert [r["probabilities"] for r in got] == [r["probabilities"] for r in want]


def test_unpacked_bundle_runs_edge_bench_with_an_honest_profile(bundle, tmp_path):
    out = tmp_path / "bench.json"
    proc, logs = _run_unpacked(
        bundle["root"],
        tmp_path,
        "edge-bench",
        "--run",
        ".",
        "--profile",
        "rpi4-cores",
        "--runs",
        "3",
        "--warmup",
        "0",
        "--json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    _assert_edge_only(bundle["root"], logs)
    assert len(logs) > 1  # the workers too: each model ran in its own process
    profile = json.loads(out.read_text())["profile"]
    assert profile["name"] == "rpi4-cores" and not profile["on_raspberry_pi"]
    assert "not an ARM measurement" in profile["label"]


def test_bundle_refuses_an_export_that_does_not_verify(exported, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(exported["cascade"][0] / "export", run / "export")
    sidecar = run / "export" / "gate.json"
    sidecar.write_text(sidecar.read_text().replace('"tau"', '"tau" ', 1))
    with pytest.raises(UserError, match="gate.json: sha256 differs from export-manifest.json"):
        write_bundle(run)
    result = CliRunner().invoke(main, ["bundle", "--run", str(run)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "sha256 differs" in result.output and not (run / "run-edge.tar.gz").exists()
    (run / "export" / "export-manifest.json").unlink()
    with pytest.raises(UserError, match="export manifest not found"):
        write_bundle(run)
    with pytest.raises(UserError, match="run directory not found"):
        write_bundle(tmp_path / "nowhere")


def test_bundle_cli_writes_the_default_path_and_will_not_overwrite(exported, tmp_path):
    run = tmp_path / "myrun"
    shutil.copytree(exported["flat"][0] / "export", run / "export")
    result = CliRunner().invoke(main, ["bundle", "--run", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "myrun-edge.tar.gz").is_file() and "bundle:" in result.output
    again = CliRunner().invoke(main, ["bundle", "--run", str(run)])
    assert again.exit_code == 2 and "exists; choose another --out or pass --force" in again.output
    assert CliRunner().invoke(main, ["bundle", "--run", str(run), "--force"]).exit_code == 0


def test_edge_code_is_exactly_what_predict_and_edge_bench_import(tmp_path):
    """EDGE_CODE must follow the code: a new import on the edge path fails here, not on a Pi."""
    probe = (
        "import json, sys; import neurocascade.cli, neurocascade.edge.predict, neurocascade.edge.fastest, neurocascade.edge.bench, neurocascade.edge.preprocess, neurocascade.edge.runtime, "
        "neurocascade.console, neurocascade.io; "
        "print(json.dumps({n: m.__file__ for n, m in sys.modules.items() if getattr(m, '__file__', None)}))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    files = json.loads(proc.stdout)
    ours = {
        Path(f).resolve().relative_to(REPO).as_posix()
        for n, f in files.items()
        if n.split(".")[0] in PROJECT_PACKAGES and Path(f).resolve().is_relative_to(REPO)
    }
    assert ours == set(EDGE_CODE)
    assert not any(n.split(".")[0] in ("tensorflow", "keras", "tf_keras", "cv2") for n in files)
