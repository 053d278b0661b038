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
from neurocascade.paths import resolve_config

EXPORT_MODES = ("qat", "ptq")
TRAINING_KINDS = ("train-cascade", "train-flat")
STAGE_KINDS = (
    "audit",
    *TRAINING_KINDS,
    "export-cascade",
    "export-flat",
    "eval-keras",
    "eval-tflite-int8",
    "edge-bench",
)
QUIET_KINDS = ("edge-bench",)  # it times the CPU: never beside another stage


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol: overrides of the training config, export mode, and whether to benchmark."""

    id: str
    name: str
    overrides: tuple[str, ...]
    export: str = "qat"
    bench: bool = False
    baseline: dict[str, float | list[float]] | None = None  # frozen-feature reference test macro-F1 per model


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
    targets: dict[str, float] = field(default_factory=dict)
    baseline_source: str = ""
    parallel_kinds: tuple[str, ...] = ()  # stage kinds that may run beside each other (results/chain.py)
    parallel_slots: int = 1
    beside_training: bool = False  # parallel kinds may also run beside a training (results/chain.py)
    beside_nice: int = 0  # ...at this niceness, so that the training keeps its cores
    # overrides for train-cascade alone, after the protocol's; "{flat}" stands for the protocol's flat run, and
    # naming it makes train-cascade wait for train-flat (a cascade on the flat model's fine-tuned backbone)
    cascade_set: tuple[str, ...] = ()
    # export.* overrides every export stage passes (on top of the run's own config): an export setting measured
    # through the chain without training again
    export_set: tuple[str, ...] = ()


FLAT_RUN = "{flat}"


@dataclass(frozen=True)
class Stage:
    """A CLI command (`args` after `cli.py`) whose output file `done` proves it ran.

    `after`: ids of the stages whose outputs it reads (it is stale when one of them is newer);
    `resume`: the command that continues it when `partial` exists (an interrupted training).
    """

    id: str
    kind: str
    protocol: str | None
    args: tuple[str, ...]
    done: Path
    after: tuple[str, ...] = ()
    resume: tuple[str, ...] | None = None
    partial: Path | None = None

    def command(self, resuming: bool = False) -> tuple[str, ...]:
        """The arguments after `cli.py`: the resume command when continuing a partial run."""
        return self.resume if resuming and self.resume else self.args


PLAN_KEYS = {
    "out": str,
    "config": str,
    "page": str,
    "figures": str,
    "notes": str,
    "bench_threads": str,
    "bench_runs": int,
    "baseline_source": str,
    "parallel_kinds": list,
    "parallel_slots": int,
    "beside_training": bool,
    "beside_nice": int,
    "cascade_set": list,
    "export_set": list,
    "protocol": list,
    "targets": dict,
}
PROTOCOL_KEYS = {"id": str, "name": str, "set": list, "export": str, "bench": bool, "baseline": dict}
KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a table"}
TARGET_KEYS = (
    "c_macro_f1",
    "c_tumour_sensitivity",
    "int8_max_mb",
    "int8_min_agreement",
    "int8_min_speedup",
    "int8_min_speedup_one_thread",
    "int8_max_macro_f1_drop",
    "chain_max_hours",
    "training_max_minutes",
    "protocol_training_max_minutes",
)


def _numbers(value: object) -> bool:
    """A number, or a non-empty list of numbers (one per split seed)."""
    items = value if isinstance(value, list) and value else [value]
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items)


def _check(where: str, table: dict, known: dict[str, type]) -> None:
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r}; known: {', '.join(known)}")
        kind = known[key]
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(f"{where}: {key} must be {KIND_NAMES.get(kind, 'a number')}, got {value!r}")


def load_plan(path: Path, root: Path | None = None) -> Plan:
    """Read and check a plan file; relative paths in it are relative to `root` (default: the current dir)."""
    root = root or Path.cwd()
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such plan file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    _check(str(path), raw, PLAN_KEYS)
    targets = raw.get("targets", {})
    _check(f"{path} [targets]", targets, {key: (int, float) for key in TARGET_KEYS})
    missing = [key for key in TARGET_KEYS if key not in targets]
    if missing:
        raise ConfigError(f"{path} [targets]: missing {', '.join(missing)}")
    protocols = []
    for k, p in enumerate(raw.get("protocol", [])):
        where = f"{path} protocol #{k + 1}"
        _check(where, p, PROTOCOL_KEYS)
        missing = [key for key in ("id", "name") if key not in p]
        if missing:
            raise ConfigError(f"{where}: lacks {', '.join(missing)}")
        if p.get("export", "qat") not in EXPORT_MODES:
            raise ConfigError(f"{where}: export must be one of {', '.join(EXPORT_MODES)}")
        if not all(isinstance(o, str) and "=" in o for o in p.get("set", [])):
            raise ConfigError(f'{where}: set must be a list of "section.key=value" strings')
        baseline = p.get("baseline")
        if baseline is not None and (
            set(baseline) != {"cascade", "flat"} or not all(_numbers(v) for v in baseline.values())
        ):
            raise ConfigError(
                f"{where}: baseline must be {{ cascade = <macro-F1 or list>, flat = <macro-F1 or list> }}"
            )
        protocols.append(
            Protocol(
                p["id"], p["name"], tuple(p.get("set", ())), p.get("export", "qat"), p.get("bench", False), baseline
            )
        )
    for key in ("cascade_set", "export_set"):
        if not all(isinstance(o, str) and "=" in o for o in raw.get(key, [])):
            raise ConfigError(f'{path}: {key} must be a list of "section.key=value" strings')
    if not all(o.strip().startswith("export.") for o in raw.get("export_set", [])):
        raise ConfigError(f"{path}: export_set may only change export.* settings")
    parallel = raw.get("parallel_kinds", [])
    unknown = [k for k in parallel if k not in STAGE_KINDS]
    if unknown:
        raise ConfigError(f"{path}: parallel_kinds: unknown stage kind {unknown[0]!r}; known: {', '.join(STAGE_KINDS)}")
    quiet = [k for k in parallel if k in QUIET_KINDS]
    if quiet:
        raise ConfigError(f"{path}: parallel_kinds: {quiet[0]} times the CPU and must run alone")
    if raw.get("parallel_slots", 1) < 1:
        raise ConfigError(f"{path}: parallel_slots must be at least 1")
    if raw.get("beside_training", False) and not (parallel and raw.get("parallel_slots", 1) >= 2):
        raise ConfigError(f"{path}: beside_training needs parallel_kinds and parallel_slots of at least 2")
    if not 0 <= raw.get("beside_nice", 0) <= 19:
        raise ConfigError(f"{path}: beside_nice must be a niceness from 0 to 19")
    if raw.get("beside_nice", 0) and not raw.get("beside_training", False):
        raise ConfigError(f"{path}: beside_nice needs beside_training = true")
    ids = [p.id for p in protocols]
    if not ids:
        raise ConfigError(f"{path}: no [[protocol]] entries")
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: protocol ids repeat: {', '.join(ids)}")
    return Plan(
        path=Path(path),
        out=root / raw.get("out", "runs/results"),
        config=_config(root, raw.get("config", "configs/lite2.toml")),
        page=root / raw.get("page", "docs/RESULTS.md"),
        figures=root / raw.get("figures", "docs/figures"),
        notes=root / raw.get("notes", "docs/results-reading.md"),
        bench_threads=raw.get("bench_threads", "1,2"),
        bench_runs=raw.get("bench_runs", 200),
        protocols=tuple(protocols),
        targets=targets,
        baseline_source=raw.get("baseline_source", ""),
        parallel_kinds=tuple(parallel),
        parallel_slots=raw.get("parallel_slots", 1),
        beside_training=raw.get("beside_training", False),
        beside_nice=raw.get("beside_nice", 0),
        cascade_set=tuple(raw.get("cascade_set", ())),
        export_set=tuple(raw.get("export_set", ())),
    )


def _config(root: Path, value: str) -> Path:
    """The plan's training config: a file under `root`, else the built-in config it names (neurocascade.paths)."""
    path = root / value
    if path.is_file():
        return path
    try:
        return resolve_config(value)
    except ConfigError:
        return path  # reported by the first stage that reads it, as any missing file


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
    stages = [
        Stage(
            "audit",
            "audit",
            None,
            ("audit-data", data, "--config", str(plan.config), "--out", str(out / "audit"), "--force"),
            out / "audit" / "audit.json",
        )
    ]
    for p in protocols if protocols is not None else plan.protocols:
        d = out / p.id
        run = {"cascade": d / "cascade", "flat": d / "flat"}
        cascade_set = tuple(o.replace(FLAT_RUN, str(run["flat"])) for o in plan.cascade_set)
        on_flat = any(FLAT_RUN in o for o in plan.cascade_set)  # the cascade reads the flat run: train it first
        for name in ("flat", "cascade") if on_flat else ("cascade", "flat"):
            kind = f"train-{name}"
            sets = ("export.after_training=false", *p.overrides, *(cascade_set if name == "cascade" else ()))
            stages.append(
                Stage(
                    f"{p.id}/{kind}",
                    kind,
                    p.id,
                    (
                        kind,
                        "--config",
                        str(plan.config),
                        "--data",
                        data,
                        "--out",
                        str(run[name]),
                        *_sets(sets),
                    ),
                    run[name] / "summary.json",
                    after=(f"{p.id}/train-flat",) if on_flat and name == "cascade" else (),
                    resume=(kind, "--data", data, "--out", str(run[name]), "--resume"),
                    partial=run[name] / "config.toml",
                )
            )
        qat = () if p.export == "qat" else ("--set", "export.qat=false")
        export_set = _sets(plan.export_set)
        for name in ("cascade", "flat"):
            stages.append(
                Stage(
                    f"{p.id}/export-{name}",
                    f"export-{name}",
                    p.id,
                    ("export", "--run", str(run[name]), "--data", data, *qat, *export_set),
                    run[name] / "export" / "agreement.json",
                    after=(f"{p.id}/train-{name}",),
                )
            )
        exports = (f"{p.id}/export-cascade", f"{p.id}/export-flat")
        for backend, after in (("keras", (f"{p.id}/train-cascade", f"{p.id}/train-flat")), ("tflite-int8", exports)):
            stages.append(
                Stage(
                    f"{p.id}/eval-{backend}",
                    f"eval-{backend}",
                    p.id,
                    (
                        "eval",
                        "--run",
                        str(run["cascade"]),
                        "--flat",
                        str(run["flat"]),
                        "--compare-flat",
                        "--data",
                        data,
                        "--backend",
                        backend,
                    ),
                    run["cascade"] / "eval" / f"test-{backend}" / "report.json",
                    after=after,
                )
            )
        if p.bench:
            stages.append(
                Stage(
                    f"{p.id}/edge-bench",
                    "edge-bench",
                    p.id,
                    (
                        "edge-bench",
                        "--run",
                        str(run["cascade"]),
                        "--flat",
                        str(run["flat"]),
                        "--threads",
                        plan.bench_threads,
                        "--runs",
                        str(plan.bench_runs),
                        "--json",
                        str(d / "bench.json"),
                    ),
                    d / "bench.json",
                    after=exports,
                )
            )
    return stages
