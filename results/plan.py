"""The `make results` plan (configs/results.toml) → the ordered list of CLI stages that produce the evidence.

Each stage is one documented `python cli.py ...` command with the file whose existence proves it finished,
so a re-run skips what is done and continues an interrupted training with `--resume`.

    plan = load_plan(Path("configs/results.toml"))
    for stage in build_stages(plan, data="../shared/data/sartaj-brain-mri"): ...
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from neurocascade.errors import ConfigError

EXPORT_MODES = ("qat", "ptq")
TRAINING_KINDS = ("train-cascade", "train-flat")


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol: overrides of the training config, export mode, and whether to benchmark."""

    id: str
    name: str
    overrides: tuple[str, ...]
    export: str = "qat"
    bench: bool = False


@dataclass(frozen=True)
class Plan:
    path: Path
    out: Path
    config: Path
    page: Path
    figures: Path
    notes: Path
    bench_threads: str
    bench_runs: int
    protocols: tuple[Protocol, ...]
    targets: dict = field(default_factory=dict)
    baseline: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """A CLI command (`args` after `cli.py`), done when `done` exists; `resume` continues a partial one."""

    id: str
    kind: str
    protocol: str | None
    args: tuple[str, ...]
    done: Path
    resume: tuple[str, ...] | None = None
    partial: Path | None = None

    def command(self, resuming: bool = False) -> tuple[str, ...]:
        return self.resume if resuming and self.resume else self.args


def load_plan(path: Path, root: Path | None = None) -> Plan:
    """Read and check a plan file; relative paths in it are relative to `root` (default: the current dir)."""
    root = root or Path.cwd()
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such plan file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    protocols = []
    for k, p in enumerate(raw.get("protocol", [])):
        missing = [key for key in ("id", "name") if key not in p]
        if missing:
            raise ConfigError(f"{path}: protocol #{k + 1} lacks {', '.join(missing)}")
        if p.get("export", "qat") not in EXPORT_MODES:
            raise ConfigError(f"{path}: protocol {p['id']}: export must be one of {', '.join(EXPORT_MODES)}")
        protocols.append(Protocol(p["id"], p["name"], tuple(p.get("set", ())), p.get("export", "qat"),
                                  bool(p.get("bench", False))))
    ids = [p.id for p in protocols]
    if not ids:
        raise ConfigError(f"{path}: no [[protocol]] entries")
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: protocol ids repeat: {', '.join(ids)}")
    return Plan(path=Path(path), out=root / raw.get("out", "runs/results"), config=root / raw.get("config", "configs/lite2.toml"),
                page=root / raw.get("page", "docs/RESULTS.md"), figures=root / raw.get("figures", "docs/figures"),
                notes=root / raw.get("notes", "docs/results-reading.md"),
                bench_threads=str(raw.get("bench_threads", "1,2")), bench_runs=int(raw.get("bench_runs", 200)),
                protocols=tuple(protocols), targets=raw.get("targets", {}), baseline=raw.get("baseline", {}))


def select(plan: Plan, only: list[str] | None) -> tuple[Protocol, ...]:
    """The plan's protocols, or just those named in `only` (unknown names fail with the list)."""
    if not only:
        return plan.protocols
    known = {p.id: p for p in plan.protocols}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ConfigError(f"unknown protocol {', '.join(unknown)}; the plan has {', '.join(known)}")
    return tuple(known[name] for name in only)


def _sets(overrides: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(arg for o in overrides for arg in ("--set", o))


def build_stages(plan: Plan, data: str, protocols: tuple[Protocol, ...] | None = None) -> list[Stage]:
    """Audit, then per protocol: train both, export both, evaluate with Keras and INT8, benchmark if asked."""
    out = plan.out
    stages = [Stage("audit", "audit", None, ("audit-data", data, "--config", str(plan.config), "--out", str(out / "audit"),
                                             "--force"), out / "audit" / "audit.json")]
    for p in protocols if protocols is not None else plan.protocols:
        d = out / p.id
        cascade, flat = d / "cascade", d / "flat"
        for kind, run in (("train-cascade", cascade), ("train-flat", flat)):
            stages.append(Stage(f"{p.id}/{kind}", kind, p.id,
                                (kind, "--config", str(plan.config), "--data", data, "--out", str(run),
                                 *_sets(("export.after_training=false", *p.overrides))),
                                run / "summary.json", resume=(kind, "--data", data, "--out", str(run), "--resume"),
                                partial=run / "config.toml"))
        qat = () if p.export == "qat" else ("--set", "export.qat=false")
        for name, run in (("cascade", cascade), ("flat", flat)):
            stages.append(Stage(f"{p.id}/export-{name}", f"export-{name}", p.id, ("export", "--run", str(run), "--data", data, *qat),
                                run / "export" / "agreement.json"))
        for backend in ("keras", "tflite-int8"):
            stages.append(Stage(f"{p.id}/eval-{backend}", f"eval-{backend}", p.id,
                                ("eval", "--run", str(cascade), "--flat", str(flat), "--compare-flat", "--data", data,
                                 "--backend", backend), cascade / "eval" / f"test-{backend}" / "report.json"))
        if p.bench:
            stages.append(Stage(f"{p.id}/edge-bench", "edge-bench", p.id,
                                ("edge-bench", "--run", str(cascade), "--flat", str(flat), "--threads", plan.bench_threads,
                                 "--runs", str(plan.bench_runs), "--json", str(d / "bench.json")), d / "bench.json"))
    return stages
