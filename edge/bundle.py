"""`bundle`: one .tar.gz to copy to a Raspberry Pi — a run's verified export, the edge code and a pinned install.

    path = write_bundle(Path("runs/NAME"))                 # → runs/NAME/NAME-edge.tar.gz
    python cli.py bundle --run runs/NAME [--out FILE] [--force]

The archive holds one folder, `<run>-edge/`:
- `export/`: the run's export exactly as `neurocascade.edge.export` wrote it (INT8 and float32 models, sidecars,
  `agreement.json`, `MODEL_CARD.md`, `export-manifest.json`). The float32 models come along because the device
  verifies the folder against its manifest (all or nothing, `neurocascade.edge.manifest`) and `edge-bench` compares INT8 with
  float32. Every file's bytes are checked against the manifest as they are read into the archive, so what is packed is
  what was verified; a run whose export does not verify is refused (the manifest's one-line error).
- the code `python cli.py predict` and `edge-bench` import (`EDGE_CODE`; tests/edge/test_bundle.py checks it
  against what those commands import, and that they run from the unpacked bundle with TensorFlow blocked);
- `requirements.txt`: the edge packages pinned to this environment's versions (`EDGE_PACKAGES`), binary wheels
  only, so a Pi never compiles numpy; each pin has cp311–cp313 manylinux aarch64 wheels on PyPI;
- `README.md` (install, predict, edge-bench, expected memory) and `bundle.json` (run, versions, file list).

The archive is reproducible: sorted members, owner root, fixed modes, every mtime the export's creation time.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from datetime import datetime
from importlib import metadata
from pathlib import Path

import neurocascade
from neurocascade import SOURCE_ROOT
from neurocascade.edge.manifest import MANIFEST_FILE, MODEL_CARD_FILE, ExportManifest, verify_export
from neurocascade.edge.fastest import INT8_MARGIN
from neurocascade.errors import UserError
from neurocascade.hierarchy.stages import ONE_GRAPH

BUNDLE_SCHEMA = "neurocascade-bundle/1"
# What `python cli.py predict` and `edge-bench` import from this repository (and nothing of TensorFlow), as paths of
# a clone; the bundle has the clone's layout, whose neurocascade/__init__.py finds edge/ etc. beside it.
EDGE_CODE = (
    "cli.py",
    "data/__init__.py",
    "data/dicom.py",
    "data/images.py",
    "data/layout.py",
    "edge/__init__.py",
    "edge/bench.py",
    "edge/cpuinfo.py",
    "edge/fastest.py",
    "edge/manifest.py",
    "edge/outputs.py",
    "edge/predict.py",
    "edge/preprocess.py",
    "edge/quiet.py",
    "edge/runtime.py",
    "hierarchy/__init__.py",
    "hierarchy/cascade.py",
    "hierarchy/stages.py",
    "neurocascade/__init__.py",
    "neurocascade/artifacts.py",
    "neurocascade/config.py",
    "neurocascade/console.py",
    "neurocascade/errors.py",
    "neurocascade/io.py",
    "neurocascade/paths.py",
    "neurocascade/version.py",
)
# The edge install: the project's core dependencies and the `edge` extra (pyproject.toml), no TensorFlow.
EDGE_PACKAGES = ("numpy", "pillow", "click", "rich", "ai-edge-litert", "pydicom")
PYTHON_RANGE = ">=3.11,<3.14"  # every pin in EDGE_PACKAGES has cp311, cp312 and cp313 aarch64 wheels


def code_file(rel: str) -> Path:
    """Where EDGE_CODE's `rel` is in this copy: in the clone, or in the installed package (neurocascade/edge/...)."""
    if SOURCE_ROOT is not None:
        return SOURCE_ROOT / rel
    return Path(neurocascade.__file__).resolve().parent / rel.removeprefix("neurocascade/")


def pins() -> list[str]:
    """`name==version` for each of EDGE_PACKAGES, the versions installed here."""
    out = []
    for name in EDGE_PACKAGES:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            raise UserError(
                f'{name} is not installed here, so the bundle cannot pin it: pip install -e ".[edge]"'
            ) from None
    return out


def pinned_requirements() -> str:
    """requirements.txt for the device: the EDGE_PACKAGES at the versions installed here, binary wheels only."""
    lines = [
        "# NeuroCascade edge install (no TensorFlow): pip install -r requirements.txt",
        f"# Versions of the environment that made the bundle; wheels for CPython {PYTHON_RANGE} on",
        "# manylinux aarch64 (Raspberry Pi OS 64-bit, Debian bookworm) and x86_64.",
        "--only-binary :all:",
        *pins(),
    ]
    return "\n".join(lines) + "\n"


def default_out(run_dir: Path) -> Path:
    return run_dir / f"{run_dir.resolve().name}-edge.tar.gz"


def _verified_bytes(folder: Path, manifest: ExportManifest, name: str) -> bytes:
    """The file's bytes, checked against the manifest after reading (what is packed is what was verified)."""
    data = (folder / name).read_bytes()
    record = manifest.files[name]
    if len(data) != record.bytes or hashlib.sha256(data).hexdigest() != record.sha256:
        raise UserError(f"{folder / name}: changed while the bundle was written; run the bundle again")
    return data


def _memory_section(export: Path, manifest: ExportManifest) -> str:
    """Model sizes, and the peak memory edge-bench measured for this export when its bench.json is there."""
    int8 = {n: r.bytes for n, r in manifest.files.items() if n.endswith(".int8.tflite")}
    loaded = (ONE_GRAPH,) if ONE_GRAPH in manifest.stages else manifest.stages  # what predict loads (edge/predict.py)
    lines = [
        "- INT8 model files: " + ", ".join(f"{n} {b / 2**20:.1f} MiB" for n, b in sorted(int8.items())),
        f"- total for `predict` (it loads {' and '.join(loaded)} in one process): about "
        f"{sum(int8[f'{s}.int8.tflite'] for s in loaded) / 2**20:.0f} MiB of weights plus the Python, numpy, Pillow "
        "and LiteRT baseline "
        "(38 MiB peak RSS on x86 with these versions, /usr/bin/time).",
    ]
    try:
        from neurocascade.edge.bench import BenchReport

        bench = BenchReport.read(export / "bench.json").to_json()
        rows = [r for r in bench["models"] if r["variant"] == "int8"]
        peak = ", ".join(f"{r['stage']} {r['threads']} thread(s) {r['peak_rss_mb']:.0f} MiB" for r in rows)
        lines.append(
            f"- peak RSS measured by edge-bench on {bench['cpu']['model_name']} "
            f"({bench['cpu']['machine']}), one model per process: {peak}. An aarch64 build of LiteRT "
            "differs; measure on the device with edge-bench."
        )
    except UserError:  # missing, unreadable or not a valid bench report
        lines.append(
            "- peak RSS not measured for this export (no export/bench.json); `edge-bench` measures it. "
            "For reference, on x86: an EfficientNet-Lite2 cascade at 260 px (two 5.9 MiB INT8 models) "
            "peaked at 88 MiB in `predict` (/usr/bin/time), and edge-bench measured about 68 MiB per "
            "INT8 model process (README, Export and the edge)."
        )
    return "\n".join(lines)


def bundle_readme(name: str, manifest: ExportManifest, export: Path) -> str:
    """The bundle's README: what it is, install, predict, edge-bench and expected memory."""
    kind = "cascade (gate → subtype)" if manifest.kind == "cascade" else "flat four-class model"
    bench = (
        "python cli.py edge-bench --run . --profile rpi4-cores --threads 1,4   # --profile rpi5-cores on a Pi 5"
        if manifest.kind == "cascade"
        else "# edge-bench needs a cascade export (--run); a flat export alone is measured with a cascade's --flat"
    )
    card = (
        f"\nRead `export/{MODEL_CARD_FILE}` first: intended use, training data, metrics, INT8 agreement, τ and "
        "licences.\n"
        if MODEL_CARD_FILE in manifest.files
        else ""
    )
    return f"""# {name}: NeuroCascade on a Raspberry Pi

Research software. Not a medical device; not for diagnosis.

The INT8 (and float32) LiteRT models of run `{manifest.run}`, a {kind} exported {manifest.created},
with the code that runs them: LiteRT, numpy and Pillow only, no TensorFlow. `export/` is checked against
`export/export-manifest.json` (every file's sha256) before anything is loaded: copy it as a whole.
{card}
## Install (Raspberry Pi OS 64-bit or any aarch64 Linux, Python 3.11–3.13)
```bash
python3 -m venv .venv && . .venv/bin/activate
pip install -r requirements.txt        # binary wheels only: nothing is compiled on the device
```

## Predict
```bash
python cli.py predict --models export scan.jpg more_scans/          # a table
python cli.py predict --models export scan.jpg --json               # label, probabilities, stages run
python cli.py predict --models export scans/ --backend auto         # the faster of INT8 and float32 here
```
INT8 is what the export is for, but a CPU without int8 dot-product instructions may run it no faster than
float32; `--backend auto` times both files at load and runs float32 unless INT8 is at least
{INT8_MARGIN:.2f}× faster (it prints the timings). The float32 file gives the Keras model's own probabilities.

## Measure
```bash
{bench}
```
On a Pi, `edge-bench` records the board and the CPU's features next to every latency. The `rpi4-cores` and
`rpi5-cores` profiles pin the benchmark to 4 cores; elsewhere that is only a core count, not a Pi.

## Expected memory
{_memory_section(export, manifest)}

`bundle.json` lists the bundle's files and versions; `requirements.txt` pins the edge packages.
"""


def _add(tar: tarfile.TarFile, arcname: str, data: bytes, mtime: int, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(arcname)
    info.size, info.mtime, info.mode = len(data), mtime, mode
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def _mtime(created: str) -> int:
    try:
        return int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def bundle_members(run_dir: Path) -> tuple[str, dict[str, bytes], int]:
    """(top folder, {path inside it: bytes}, mtime) of a run's bundle; the export is verified first."""
    export = run_dir / "export"
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: run directory not found")
    manifest = verify_export(export)
    name = f"{run_dir.resolve().name}-edge"
    files = {f"export/{n}": _verified_bytes(export, manifest, n) for n in sorted(manifest.files)}
    raw = (export / MANIFEST_FILE).read_bytes()
    if ExportManifest.from_json(json.loads(raw), export / MANIFEST_FILE) != manifest:
        raise UserError(f"{export / MANIFEST_FILE}: changed while the bundle was written; run the bundle again")
    files[f"export/{MANIFEST_FILE}"] = raw
    for rel in EDGE_CODE:
        path = code_file(rel)
        if not path.is_file():
            raise UserError(f"{path}: part of the edge code but missing from this installation")
        files[rel] = path.read_bytes()
    files["requirements.txt"] = pinned_requirements().encode()
    files["README.md"] = bundle_readme(name, manifest, export).encode()
    info = {
        "schema": BUNDLE_SCHEMA,
        "run": manifest.run,
        "kind": manifest.kind,
        "export_created": manifest.created,
        "python": PYTHON_RANGE,
        "requirements": pins(),
        "files": {p: {"sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)} for p, b in sorted(files.items())},
    }
    files["bundle.json"] = (json.dumps(info, indent=2, sort_keys=True) + "\n").encode()
    return name, files, _mtime(manifest.created)


def write_bundle(run_dir: str | Path, out: str | Path | None = None, force: bool = False) -> Path:
    """Write the run's bundle (module doc) atomically and return its path; an existing file needs `force`."""
    run_dir = Path(run_dir)
    target = Path(out) if out else default_out(run_dir)
    if target.exists() and not force:
        raise UserError(f"{target}: exists; choose another --out or pass --force")
    name, files, mtime = bundle_members(run_dir)
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for rel, data in sorted(files.items()):
                _add(tar, f"{name}/{rel}", data, mtime, 0o755 if rel == "cli.py" else 0o644)
    from neurocascade.io import atomic_write_bytes

    atomic_write_bytes(target, buffer.getvalue())
    return target
