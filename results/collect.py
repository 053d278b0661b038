"""Every number docs/RESULTS.md shows, read from the JSON reports `make results` writes, plus what follows from them.

`collect` reads the plan (configs/results.toml) and every report under the results directory into one plain
dict, None wherever a file does not exist yet, and derives from it the seed means, the stage costs and the
target verdicts; results/page.py only formats that dict. Each file is read through its artifact class
(neurocascade.artifacts): a key it lacks is a one-line error, not a blank. No TensorFlow, no Pillow.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from neurocascade.data.layout import CLASSES
from neurocascade.edge.bench import BenchReport
from neurocascade.edge.manifest import Agreement
from neurocascade.eval.agreement import prediction_agreement
from neurocascade.eval.predictions import PREDICTIONS_FILE
from neurocascade.eval.report_file import EvalReport
from neurocascade.eval.report_text import table_rows
from neurocascade.hierarchy.artifacts import RunManifest, Tau, TrainingSummary
from neurocascade.hierarchy.stages import ONE_GRAPH
from neurocascade.artifacts import Artifact
from neurocascade.results.chain import Ledger, total_seconds, training_seconds
from neurocascade.results.plan import TRAINING_KINDS, Protocol, load_plan

__all__ = [
    "BACKENDS",
    "DASH",
    "INT8_MODELS",
    "MODELS",
    "NETWORKS",
    "ONE_GRAPH_MODELS",
    "TOP_ERRORS",
    "collect",
    "evaluate_targets",
    "family",
    "int8_test_macro_f1",
    "lookup",
    "macro_f1",
    "seed_summary",
    "spread",
    "stage_costs",
]

DASH = "—"  # a value that does not exist (yet)
MODELS = ("cascade", "flat")
BACKENDS = (("keras", "Keras"), ("tflite-int8", "LiteRT INT8"))
INT8_MODELS = ("gate", "subtype", "cascade", "flat")
NETWORKS = ("gate", "subtype", "flat")  # the model files; the cascade is two of them at τ
# the cascade as one graph (export.one_graph): a model file and a four-class cascade, there when it was exported
ONE_GRAPH_MODELS = (ONE_GRAPH,)
MB = 10**6  # the INT8 size target is in megabytes: the stricter reading of "10 MB"
TOP_ERRORS = 5


# ---------------------------------------------------------------- reading


def _json(path: Path) -> Any | None:
    """A JSON file, or None when it is not there yet: the page renders a chain that stopped half way."""
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _read(cls: type[Artifact], path: Path) -> dict[str, Any] | None:
    """An artifact's JSON after its class checked it (a missing or unknown key is a one-line error naming the
    file and the key, not a blank on the page), or None when the file is not there yet."""
    found = cls.read_if_exists(path)
    return None if found is None else found.to_json()


def lookup(obj: Any, *keys: str) -> Any:
    """Nested lookup that yields None for any missing level: for the optional parts of a checked artifact
    (a model a report does not have, a key older runs did not write)."""
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _shown_path(path: Path, root: Path) -> str:
    """A path as the page shows it: relative to the repository when inside it, so no machine's layout leaks in."""
    path, root = Path(path).resolve(), Path(root).resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()


def family(protocol_id: str) -> str:
    """ "C-seed1" -> "C": the family whose split seeds are averaged."""
    return protocol_id.split("-seed")[0]


def _ci(model: Mapping[str, Any], key: str) -> dict[str, float | None] | None:
    """{value, low, high} of one metric, from the bootstrap "ci" block, else the bare metric (no interval)."""
    entry = lookup(model, "ci", key)
    if isinstance(entry, Mapping) and entry.get("value") is not None:
        return {"value": entry["value"], "low": entry.get("low"), "high": entry.get("high")}
    value = lookup(model, "metrics", key)
    if value is None and key == "ece":
        value = lookup(model, "calibration", "ece")
    return None if value is None else {"value": value, "low": None, "high": None}


def _report(path: Path) -> dict[str, Any] | None:
    """The numbers of one eval report.json that the page shows."""
    r = _read(EvalReport, path)
    if r is None:
        return None
    models = {}
    rows = table_rows(CLASSES, r.get("ece_bins", 10))
    for name in MODELS:
        m = lookup(r, "models", name)
        if m is None:
            continue
        models[name] = {
            "ci": {key: _ci(m, key) for key, _ in rows},
            "gate": None
            if m.get("gate") is None
            else {
                "tau": lookup(m, "gate", "tau"),
                "sensitivity": lookup(m, "gate", "tumour_sensitivity"),
                "specificity": lookup(m, "gate", "tumour_specificity"),
            },
            "errors": {
                k: lookup(m, "error_propagation", k)
                for k in ("gate_misses", "gate_false_alarms", "subtype_confusions", "errors", "n")
            },
            "top_errors": [
                {k: e.get(k) for k in ("path", "true", "predicted", "probability")}
                for e in (m.get("most_confident_errors") or [])[:TOP_ERRORS]
            ],
        }
    return {"images": lookup(r, "meta", "images"), "models": models, "rows": rows, "comparison": r.get("comparison")}


def _agreement(path: Path) -> dict[str, Any] | None:
    """INT8 vs Keras on validation, per model, from export/agreement.json."""
    a = _read(Agreement, path)
    if a is None:
        return None
    keys = (
        "int8_bytes",
        "float32_bytes",
        "int8_top1_agreement",
        "tau_decision_agreement",
        "int8_max_abs_prob_diff",
        "keras_macro_f1",
        "int8_macro_f1",
        "calibration",
        "head_refit",
    )
    return {
        "method": a.get("method"),
        "min_agreement": a.get("min_agreement"),
        "flagged": sorted(a.get("flagged") or []),
        "models": {name: {k: m.get(k) for k in keys} for name, m in sorted((a.get("models") or {}).items())},
    }


def _test_agreement(eval_dir: Path) -> dict[str, Any] | None:
    """INT8 vs Keras on test, per model, from the two evaluations' predictions.csv (None before both ran)."""
    keras, int8 = (eval_dir / f"test-{b}" / PREDICTIONS_FILE for b in ("keras", "tflite-int8"))
    if not (keras.is_file() and int8.is_file()):
        return None
    return prediction_agreement(keras, int8)["models"]


def _latency(block: Any) -> dict[str, float | None]:
    return {k: lookup(block, f"{k}_ms") for k in ("mean", "p50", "p90")}


def _bench(path: Path) -> dict[str, Any] | None:
    """Sizes, latencies, cascade rows, CPU and settings of one edge-bench report."""
    b = _read(BenchReport, path)
    if b is None:
        return None
    cpu = b.get("cpu") or {}
    return {
        "cpu": {
            "model": cpu.get("model_name"),
            "machine": cpu.get("machine"),
            "isa": cpu.get("isa"),
            "cores": cpu.get("cores_available"),
            "int8_dot_product": cpu.get("int8_dot_product"),
            "flags": sorted(k for k, v in (cpu.get("features") or {}).items() if v),
        },
        "models": [
            {
                "model": m.get("stage"),
                "variant": m.get("variant"),
                "threads": m.get("threads"),
                "bytes": m.get("file_bytes"),
                **_latency(m.get("latency")),
            }
            for m in b.get("models") or []
        ],
        # None for a report from before the paired timing: the speed-up is then the ratio of the models' means
        "speedups": None
        if b.get("speedups") is None
        else {(r["stage"], r["threads"]): r["speedup"] for r in b["speedups"]},
        "cascade": [
            {
                "variant": r.get("variant"),
                "threads": r.get("threads"),
                "expected": r.get("expected_ms_at_prevalence"),
                "subtype_fraction": r.get("subtype_fraction"),
                "n_images": r.get("n_images"),
                **_latency(r.get("latency")),
            }
            for r in lookup(b, "cascade", "rows") or []
        ],
        "prevalence": lookup(b, "cascade", "prevalence"),
        "settings": {
            "runs": lookup(b, "settings", "runs"),
            "warmup": lookup(b, "settings", "warmup"),
            "images": lookup(b, "settings", "images", "n"),
            "source": lookup(b, "settings", "images", "source"),
            "started": lookup(b, "settings", "started"),
        },
    }


def _dataset(manifest: Any) -> dict[str, Any] | None:
    if manifest is None:
        return None
    d = manifest.get("dataset") or {}
    return {
        "counts": d.get("counts") or {},
        "dropped_as_copies_of_test": d.get("dropped_as_copies_of_test"),
        "protocol": d.get("protocol"),
        "protocol_name": d.get("protocol_name"),
    }


def _protocol(spec: Protocol, results_dir: Path, stages: Sequence[Mapping[str, Any]], root: Path) -> dict[str, Any]:
    """Everything the page shows about one protocol of the plan, read from OUT/<id>/."""
    pid = spec.id
    base = results_dir / pid
    cascade, flat = base / "cascade", base / "flat"
    summary_c = _read(TrainingSummary, cascade / "summary.json") or {}
    summary_f = _read(TrainingSummary, flat / "summary.json") or {}
    tau = _read(Tau, cascade / "tau.json") or {}
    return {
        "id": pid,
        "name": spec.name,
        "family": family(pid),
        "export": spec.export,
        "bench_planned": spec.bench,
        "baseline": spec.baseline,
        "dir": _shown_path(base, root),
        "dataset": (
            _dataset(_read(RunManifest, cascade / "manifest.json"))
            or _dataset(_read(RunManifest, flat / "manifest.json"))
        ),
        "tau": {
            "tau": tau.get("tau"),
            "target_sensitivity": tau.get("target_sensitivity"),
            "chosen_on": tau.get("chosen_on"),
        }
        if tau
        else None,
        "validation": {
            "gate": lookup(summary_c, "stages", "gate", "val_macro_f1"),
            "subtype": lookup(summary_c, "stages", "subtype", "val_macro_f1"),
            "cascade": lookup(summary_c, "cascade", "val_macro_f1"),
            "flat": lookup(summary_f, "stages", "flat", "val_macro_f1"),
            "sensitivity": lookup(summary_c, "cascade", "val_tumour_sensitivity"),
            "specificity": lookup(summary_c, "cascade", "val_tumour_specificity"),
        },
        "agreement": {
            "cascade": _agreement(cascade / "export" / "agreement.json"),
            "flat": _agreement(flat / "export" / "agreement.json"),
        },
        "test_agreement": _test_agreement(cascade / "eval"),
        "reports": {b: _report(cascade / "eval" / f"test-{b}" / "report.json") for b, _ in BACKENDS},
        "bench": _bench(base / "bench.json"),
        "failed": sorted(s["id"] for s in stages if s.get("protocol") == pid and s.get("status") == "failed"),
    }


def _audit(path: Path) -> dict[str, Any] | None:
    """The duplicate audit's counts (cli.py audit-data)."""
    a = _json(path)
    if a is None:
        return None
    au = a.get("audit") or {}
    return {
        "dataset": a.get("dataset"),
        "fingerprint": a.get("fingerprint"),
        "images": au.get("images"),
        "readable": au.get("readable"),
        "unreadable": len(au.get("unreadable") or []),
        "threshold_bits": au.get("threshold_bits"),
        "groups": au.get("groups") or {},
        "copy_pairs": au.get("copy_pairs") or {},
        "copy_pairs_by_split": au.get("copy_pairs_by_split") or {},
        "label_conflicts": len(au.get("label_conflicts") or []),
        "test_with_copy_in_train": au.get("test_with_copy_in_train") or {},
        "split": {
            k: lookup(a, "split", k) for k in ("protocol", "protocol_name", "counts", "dropped_as_copies_of_test")
        }
        if a.get("split")
        else None,
    }


# ---------------------------------------------------------------- derived numbers


def macro_f1(protocol: Mapping[str, Any], model: str, backend: str = "keras") -> float | None:
    return lookup(protocol, "reports", backend, "models", model, "ci", "macro_f1", "value")


def int8_test_macro_f1(protocol: Mapping[str, Any], model: str) -> tuple[float | None, float | None]:
    """(Keras, INT8) test macro-F1 of a four-class model: the evaluations' reports score the cascade and the flat
    model; the one graph's INT8 labels are scored beside the cascade's (`test_agreement`), against the Keras cascade,
    whose float function it is."""
    if model in ONE_GRAPH_MODELS:
        return macro_f1(protocol, "cascade"), lookup(protocol, "test_agreement", model, "macro_f1")
    return macro_f1(protocol, model), macro_f1(protocol, model, "tflite-int8")


def spread(values: Sequence[float]) -> dict[str, float | int]:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values), "n": len(values)}


def seed_summary(protocols: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and range (min–max) of test macro-F1 and gate sensitivity over the split seeds of each family that ran.

    A single split seed of protocol C moved the frozen-feature baseline by 0.08: one seed is not a result.
    """
    out = []
    for fam in sorted({p["family"] for p in protocols if "-seed" in p["id"]}):
        planned = [p for p in protocols if p["family"] == fam and "-seed" in p["id"]]
        ran = [p for p in planned if all(macro_f1(p, m) is not None for m in MODELS)]
        if not ran:
            continue
        sens = [
            s
            for p in ran
            if (s := lookup(p, "reports", "keras", "models", "cascade", "gate", "sensitivity")) is not None
        ]
        out.append(
            {
                "family": fam,
                "ids": [p["id"] for p in ran],
                "planned": len(planned),
                "baseline": planned[0]["baseline"],
                "cascade": spread([macro_f1(p, "cascade") for p in ran]),
                "flat": spread([macro_f1(p, "flat") for p in ran]),
                "sensitivity": spread(sens) if sens else None,
            }
        )
    return out


# Idle this long between one stage's end and the next one's start: the chain was stopped and run again later (or
# stages were deleted and made again), a new sitting. A chain in one sitting starts each stage within seconds.
SITTING_GAP_S = 600.0


def sittings(stages: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The chain's busy periods (first start, last end, ISO times): each timed stage's [finished − seconds, finished],
    merged where less than SITTING_GAP_S apart.

    More than one means the chain ran in sittings, and its total is not one chain's wall time: it adds times charged
    in different sittings, and a stage that shared the cores with a stage made again later keeps the share it was
    charged then. A training resumed in a later sitting spans the gap and merges the two (fewer sittings, never
    more)."""
    spans = sorted(
        (end - timedelta(seconds=s["seconds"]), end)
        for s in stages
        if s.get("finished") and s.get("seconds") is not None
        for end in [datetime.fromisoformat(s["finished"])]
    )
    merged: list[list[datetime]] = []
    for start, end in spans:
        if merged and (start - merged[-1][1]).total_seconds() < SITTING_GAP_S:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a.isoformat(timespec="seconds"), b.isoformat(timespec="seconds")) for a, b in merged]


def stage_costs(stages: Sequence[Mapping[str, Any]], targets: Mapping[str, Any]) -> dict[str, Any]:
    """Per-stage wall time from ledger.json, the chain's wall time (stages side by side counted once) and the
    training share, against the plan's budgets."""
    budget_total, budget_training = targets["chain_max_hours"] * 3600, targets["training_max_minutes"] * 60
    budget_protocol = targets["protocol_training_max_minutes"] * 60
    rows = [
        {
            "id": s.get("id"),
            "kind": s.get("kind"),
            "protocol": s.get("protocol"),
            "seconds": s.get("seconds"),
            "overlap_seconds": s.get("overlap_seconds"),
            "status": s.get("status"),
            "hosts": s.get("hosts") or [],
        }
        for s in stages
    ]
    # the same sums as the terminal's time table, so the two never disagree in the last second
    total, training = total_seconds({"stages": rows}), training_seconds({"stages": rows})
    by_protocol = {
        protocol: training_seconds({"stages": [r for r in rows if r["protocol"] == protocol]})
        for protocol in dict.fromkeys(r["protocol"] for r in rows if r["kind"] in TRAINING_KINDS)
    }
    slowest = max(by_protocol, key=lambda p: (by_protocol[p], p), default=None)
    hosts = list(dict.fromkeys(h for r in rows for h in r["hosts"]))
    return {
        "rows": rows,
        "total_s": total,
        "overlap_s": math.fsum(r["overlap_seconds"] or 0.0 for r in rows),
        "training_s": training,
        "total_ok": total <= budget_total,
        "training_ok": training <= budget_training,
        "budget_total_s": budget_total,
        "budget_training_s": budget_training,
        "slowest_protocol": slowest,  # the protocol whose train-cascade + train-flat took longest
        "slowest_protocol_training_s": by_protocol.get(slowest),
        "protocol_training_ok": all(t <= budget_protocol for t in by_protocol.values()),
        "budget_protocol_training_s": budget_protocol,
        "failed": sum(r["status"] == "failed" for r in rows),
        "not_done": sum(r["status"] not in ("done", "existed") for r in rows),
        "untimed": sum(r["status"] == "existed" for r in rows),
        "last_finished": max((s["finished"] for s in stages if s.get("finished")), default=None),
        "sittings": sittings(stages),
        "hosts": hosts,  # every machine a stage's time was measured on, first seen first
        # timed stages whose ledger entry names no machine (written before hosts were recorded)
        "host_unknown": [r["id"] for r in rows if r["seconds"] is not None and not r["hosts"]],
    }


def _verdict(value: float | None, op: str, threshold: float | None) -> str:
    if value is None or threshold is None:
        return "not run"
    ok = {">=": value >= threshold, "<=": value <= threshold, ">": value > threshold}[op]
    return "met" if ok else "not met"


def _target(name: str, value: float | None, op: str, threshold: float | None, where: str) -> dict[str, Any]:
    return {
        "target": name,
        "value": value,
        "op": op,
        "threshold": threshold,
        "where": where,
        "status": _verdict(value, op, threshold),
    }


@dataclass(frozen=True)
class _Evidence:
    """What the targets are judged on: the plan's thresholds and the protocols each target reads."""

    targets: Mapping[str, Any]
    c_head: Mapping[str, Any] | None  # the headline seed: the first C protocol of the plan
    c_seeds: Mapping[str, Any] | None  # protocol C's seed summary
    c_mean: Mapping[str, Any] | None  # the same, once every planned seed ran
    head: Mapping[str, Any] | None  # the first protocol of the plan: its exports
    benched: Mapping[str, Any] | None  # the first protocol with an edge-bench report
    costs: Mapping[str, Any]
    complete: bool  # every stage ran and was timed, every protocol has its reports

    @classmethod
    def of(cls, collected: Mapping[str, Any]) -> "_Evidence":
        protocols, k = collected["protocols"], collected["costs"]
        c_seeds = next((s for s in collected["seeds"] if s["family"] == "C"), None)
        return cls(
            targets=collected["plan"]["targets"],
            c_head=next((p for p in protocols if p["family"] == "C"), None),
            c_seeds=c_seeds,
            c_mean=c_seeds if c_seeds and c_seeds["cascade"]["n"] == c_seeds["planned"] else None,
            head=protocols[0] if protocols else None,
            benched=next((p for p in protocols if p["bench"]), None),
            costs=k,
            complete=bool(k["rows"]) and not k["not_done"] and not k["untimed"] and not collected["missing"],
        )

    @property
    def head_id(self) -> str:
        return self.c_head["id"] if self.c_head else "C"

    @property
    def seeds_where(self) -> str:
        return _seeds_label(self.c_seeds)

    @property
    def where(self) -> str:
        return self.head["id"] if self.head else DASH

    def c_f1(self, model: str) -> float | None:
        return self.c_head and macro_f1(self.c_head, model)

    def c_mean_of(self, *keys: str) -> float | None:
        value = self.c_mean
        for key in keys:
            value = value and value[key]
        return value


Judged = tuple["float | None", "float | None", str]  # value, threshold, where


@dataclass(frozen=True)
class TargetSpec:
    """One of issue 8's targets: its name, how it compares, and how its value, threshold and place are read."""

    name: str
    op: str
    judge: Callable[[_Evidence], Judged]

    def row(self, e: _Evidence) -> dict[str, Any]:
        value, threshold, where = self.judge(e)
        return _target(self.name, value, self.op, threshold, where)


def _worst(values: Mapping[Any, float], expected: tuple[str, ...], pick: Callable = max) -> Any:
    """The worst key (ties broken by name), or None unless every one of the `expected` models has a value (others,
    such as the one graph, count when they are there)."""
    return pick(values, key=lambda n: (values[n], n)) if set(expected) <= set(values) else None


def _int8_size(e: _Evidence) -> Judged:
    networks = _int8_networks(e.head) if e.head else {}
    sizes = {n: m["int8_bytes"] / MB for n, m in networks.items() if m.get("int8_bytes") is not None}
    worst = _worst(sizes, NETWORKS)
    return worst and sizes[worst], e.targets["int8_max_mb"], f"{e.where}, {worst}" if worst else e.where


def _int8_agreement(e: _Evidence) -> Judged:
    head = e.head
    checked = {
        **(_int8_networks(head) if head else {}),
        **(
            {"cascade": head["agreement"]["cascade"]["models"]["cascade"]}
            if head and lookup(head, "agreement", "cascade", "models", "cascade")
            else {}
        ),
    }
    agree = {n: m["int8_top1_agreement"] for n, m in checked.items() if m.get("int8_top1_agreement") is not None}
    worst = _worst(agree, INT8_MODELS, min)
    return worst and agree[worst], e.targets["int8_min_agreement"], f"{e.where}, {worst}" if worst else e.where


def _int8_f1_drop(e: _Evidence) -> Judged:
    head = e.head
    scores = {m: int8_test_macro_f1(head, m) for m in (*MODELS, *ONE_GRAPH_MODELS)} if head else {}
    drops = {m: keras - int8 for m, (keras, int8) in scores.items() if keras is not None and int8 is not None}
    worst = _worst(drops, MODELS)
    return worst and drops[worst], e.targets["int8_max_macro_f1_drop"], f"{e.where}, {worst}" if worst else e.where


def _int8_speedup(e: _Evidence, threads: int | None = None, target: str = "int8_min_speedup") -> Judged:
    """The lowest INT8 speed-up over float32 of the benchmarked protocol, over every model and thread count, or
    at `threads` only."""
    speedups = _speedups(e.benched["bench"]) if e.benched else {}
    speedups = {k: v for k, v in speedups.items() if threads is None or k[1] == threads}
    worst = min(speedups, key=lambda k: (speedups[k], k)) if speedups else None
    return (
        worst and speedups[worst],
        e.targets[target],
        f"{e.benched['id']}, {worst[0]} at {worst[1]} thread(s)" if worst else e.where,
    )


def _c_sensitivity(e: _Evidence) -> float | None:
    return e.c_head and lookup(e.c_head, "reports", "keras", "models", "cascade", "gate", "sensitivity")


# The headline targets, in the page's order; the baseline targets (one per protocol and model) follow them.
HEADLINE_TARGETS: tuple[TargetSpec, ...] = (
    TargetSpec("protocol C cascade macro-F1", ">=", lambda e: (e.c_f1("cascade"), e.targets["c_macro_f1"], e.head_id)),
    TargetSpec(
        "protocol C cascade macro-F1, mean over seeds",
        ">=",
        lambda e: (e.c_mean_of("cascade", "mean"), e.targets["c_macro_f1"], e.seeds_where),
    ),
    TargetSpec(
        "protocol C cascade macro-F1 ≥ flat macro-F1", ">=", lambda e: (e.c_f1("cascade"), e.c_f1("flat"), e.head_id)
    ),
    TargetSpec(
        "protocol C cascade macro-F1 ≥ flat, mean over seeds",
        ">=",
        lambda e: (e.c_mean_of("cascade", "mean"), e.c_mean_of("flat", "mean"), e.seeds_where),
    ),
    TargetSpec(
        "protocol C tumour sensitivity at the validation τ",
        ">=",
        lambda e: (_c_sensitivity(e), e.targets["c_tumour_sensitivity"], e.head_id),
    ),
    TargetSpec(
        "protocol C tumour sensitivity, mean over seeds",
        ">=",
        lambda e: (e.c_mean_of("sensitivity", "mean"), e.targets["c_tumour_sensitivity"], e.seeds_where),
    ),
    TargetSpec("INT8 model size (MB = 10⁶ bytes, largest model)", "<=", _int8_size),
    TargetSpec("INT8 vs Keras top-1 agreement (validation, lowest model)", ">=", _int8_agreement),
    TargetSpec("INT8 test macro-F1 drop from Keras (largest)", "<=", _int8_f1_drop),
    TargetSpec("INT8 speed-up over float32 (lowest model × threads)", ">=", _int8_speedup),
    TargetSpec(
        "INT8 speed-up over float32 at 1 thread (lowest model)",
        ">=",
        lambda e: _int8_speedup(e, threads=1, target="int8_min_speedup_one_thread"),
    ),
)


def _all_stages(costs: Mapping[str, Any]) -> str:
    """What the chain's total covers: all stages, and how many sittings when more than one (`sittings`)."""
    n = len(costs.get("sittings", ()))
    return f"all stages in {n} sittings, not one chain's wall time" if n > 1 else "all stages"


def _on(what: str, costs: Mapping[str, Any]) -> str:
    """`what`, and the machine its times were measured on when the ledger names exactly one."""
    if len(costs["hosts"]) == 1 and not costs["host_unknown"]:
        return f"{what}, on {costs['hosts'][0]}"
    if len(costs["hosts"]) > 1:
        return f"{what}, on {len(costs['hosts'])} machines (section 6)"
    return what


def _minutes(seconds: str, budget: str, where: Callable[[Mapping[str, Any]], str]) -> Callable[[_Evidence], Judged]:
    """A cost target's judge: the costs' `seconds` (none until every stage ran and was timed) against `budget`, in
    minutes, at `where(costs)`."""
    return lambda e: (e.costs[seconds] / 60 if e.complete else None, e.costs[budget] / 60, where(e.costs))


COST_TARGETS: tuple[TargetSpec, ...] = (
    TargetSpec(
        "make results wall time (minutes)",
        "<=",
        _minutes("total_s", "budget_total_s", lambda k: _on(_all_stages(k), k)),
    ),
    TargetSpec(
        "training wall time (minutes, train-cascade + train-flat)",
        "<=",
        _minutes("training_s", "budget_training_s", lambda k: _on("all protocols", k)),
    ),
    TargetSpec(
        "training wall time of one protocol (minutes, train-cascade + train-flat, the slowest)",
        "<=",
        _minutes(
            "slowest_protocol_training_s",
            "budget_protocol_training_s",
            lambda k: k["slowest_protocol"] or "all protocols",
        ),
    ),
)


def _baseline_targets(collected: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Beat the frozen-feature baseline: per single-split protocol and model, then per seed family's mean."""
    rows = []
    for p in collected["protocols"]:  # single-split protocols; the split-seed families are judged on their mean
        if p["baseline"] and "-seed" not in p["id"]:
            rows += [
                _target(
                    f"beat the frozen-feature baseline: {model} macro-F1",
                    macro_f1(p, model),
                    ">",
                    _mean(p["baseline"][model]),
                    p["id"],
                )
                for model in MODELS
            ]
    for s in collected["seeds"]:
        complete = s["cascade"]["n"] == s["planned"]
        rows += [
            _target(
                f"beat the frozen-feature baseline: {model} macro-F1, mean over seeds",
                s[model]["mean"] if complete else None,
                ">",
                _mean(s["baseline"][model]) if s["baseline"] else None,
                _seeds_label(s),
            )
            for model in MODELS
        ]
    return rows


def evaluate_targets(collected: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Issue 8's targets as met / not met / not run, on test numbers; none of them was tuned for.

    Protocol C: the headline seed (the first C protocol of the plan) and the mean over split seeds, judged only
    once every planned seed ran (one seed moved the frozen-feature baseline by 0.08). INT8: the first protocol of
    the plan; agreement over every model the export checks, the cascade's four-class decision included.
    """
    evidence = _Evidence.of(collected)
    return (
        [spec.row(evidence) for spec in HEADLINE_TARGETS]
        + _baseline_targets(collected)
        + [spec.row(evidence) for spec in COST_TARGETS]
    )


def _mean(value: float | list[float]) -> float:
    return statistics.fmean(value) if isinstance(value, list) else float(value)


def _speedups(bench: Mapping[str, Any]) -> dict[tuple[str, int], float]:
    """INT8 speed-up over float32 per (model, threads) of an edge-bench report: the paired timing's (float32
    median ÷ INT8 median, the two timed in alternating blocks in one process) where the report has it, else float32
    mean ÷ INT8 mean of the separate rows."""
    if bench.get("speedups") is not None:
        return dict(bench["speedups"])
    means = {(m["model"], m["threads"], m["variant"]): m["mean"] for m in bench["models"] if m.get("mean")}
    return {
        (model, threads): means[(model, threads, "float32")] / mean
        for (model, threads, variant), mean in means.items()
        if variant == "int8" and (model, threads, "float32") in means
    }


def _int8_networks(protocol: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """gate, subtype, the one graph (cascade export) and flat (flat export) rows of the two agreement.json files."""
    out = {}
    for run in MODELS:
        for name, m in (lookup(protocol, "agreement", run, "models") or {}).items():
            if name in (*NETWORKS, *ONE_GRAPH_MODELS):
                out[name] = m
    return out


def _seeds_label(summary: Mapping[str, Any] | None) -> str:
    """Which split seeds a mean is over, and how many of the planned ones that is."""
    if not summary:
        return "no seed run"
    return f"{', '.join(summary['ids'])} ({summary['cascade']['n']} of {summary['planned']} seeds)"


def collect(plan_path: Path, results_dir: Path, root: Path | None = None) -> dict[str, Any]:
    """Every number the page needs, from the plan and the JSON files under `results_dir`.

    `root` is what relative paths in the plan (notes) and on the page are relative to: the repository, i.e.
    the working directory of `make results`.
    """
    root = Path.cwd() if root is None else Path(root)
    plan_path, results_dir = Path(plan_path), Path(results_dir)
    plan = load_plan(plan_path, root)
    ledger = _read(Ledger, results_dir / "ledger.json") or {}
    stages = ledger.get("stages") or []
    audit = _audit(results_dir / "audit" / "audit.json")
    notes_path, notes = _shown_path(plan.notes, root), plan.notes
    collected: dict[str, Any] = {
        "plan": {
            "path": ledger.get("plan") or _shown_path(plan_path, root),
            "out": _shown_path(results_dir, root),
            "targets": dict(plan.targets),
            "baseline_source": plan.baseline_source,
        },
        "data": ledger.get("data") or (audit or {}).get("dataset"),
        "audit": audit,
        "protocols": [_protocol(p, results_dir, stages, root) for p in plan.protocols],
        "costs": stage_costs(stages, plan.targets),
        "commands": [s["command"] for s in stages if s.get("command")],
        "notes": {"path": notes_path, "text": notes.read_text(encoding="utf-8") if notes.is_file() else None},
    }
    collected["missing"] = [p["id"] for p in collected["protocols"] if p["reports"]["keras"] is None]
    collected["seeds"] = seed_summary(collected["protocols"])
    collected["targets"] = evaluate_targets(collected)
    return collected
