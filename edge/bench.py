"""`bench`: latency, throughput and memory of the exported models on this device (LiteRT only, no TensorFlow).

    report = run_bench(Path("runs/NAME/export"), Path("runs/FLAT/export"), threads=[1, 2], images=x_test)
    console.print(bench_table(report)); write_json("bench.json", report)

    python -m neurocascade.edge.bench runs/NAME/export --flat runs/FLAT/export --threads 1 2 --profile rpi5-cores --out bench.json

Every model (gate, subtype, the cascade as one graph when the export has it, flat) × variant (int8, float32) ×
thread count is measured in its own fresh
subprocess (`python -m neurocascade.edge.bench --worker SPEC`), so memory figures do not mix and one model's caches do not warm
the next: model load time, the first invocation, `warmup` untimed invocations, then `runs` timed single-image
(batch 1) `EdgeModel.predict_proba` calls (set the input, invoke, read and dequantize the output; what the device
pays per image), peak RSS (ru_maxrss) and the file size. Then the cascade end to end, also per variant × thread
count in its own process: `Cascade.predict` on one image at a time over the images given (the test split, say), so
the subtype model runs only where the gate calls tumour; the fraction that ran it; and the latency expected at a
tumour prevalence p, gate + p × subtype (means), next to the flat model's.

The INT8 speed-up over float32 is timed apart, paired: per model and thread count one more process loads both
files and times them in alternating blocks (`time_alternating`: a block of single-image calls of the INT8 file, then
one of the float32 file, `PAIRED_BLOCKS` times), so that a slow moment of the host falls on both alike; the
speed-up is the float32 median ÷ the INT8 median (`report["speedups"]`). Two separate processes minutes apart,
as the rows above are, moved the same file's ratio by up to 0.45 on a shared 2-core host (stop 58), where the
alternating blocks agree within a few hundredths; the results page's speed-up targets read these.

Profiles: `host` uses the cores this process may use; `rpi4-cores` / `rpi5-cores` (old names `rpi4` / `rpi5`, still
accepted) pin each worker to min(4, available) cores (`os.sched_setaffinity`) and run that many threads: a Pi's core
count on this host's CPU, not an ARM measurement. The report's `profile.label` says which in a few words ("host
pinned to 4 cores (rpi4-like core count; not an ARM measurement)"), `profile.on_raspberry_pi` is true only on a
Raspberry Pi itself, and `profile.statement` gives the details; `cores=N` pins to N cores.

`profile_ops=True` adds, per model row, what LiteRT 2.3.0's Python API can tell: ops by type and input dtype,
which ops the XNNPACK delegate took (inferred from its DELEGATE nodes) and the estimated multiply-accumulates,
and the measured latency with XNNPACK, with TFLite's optimized builtin kernels only, and with the reference kernels.
Per-op time cannot be measured from Python with this version: `report["notes"]` and each row's
`ops.not_measured` say why.

The report is one JSON-ready dict (`schema_version` 1; `validate_report` checks it); `bench_table` draws it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from neurocascade.edge.cpuinfo import available_cpus, cpu_info
from neurocascade.edge.manifest import verify_export
from neurocascade.edge.runtime import VARIANTS, Cascade, EdgeModel, load_model, model_path, read_sidecar
from neurocascade.artifacts import Artifact, ArtifactError, Fields, json_value
from neurocascade.artifacts import version as artifact_version
from neurocascade.errors import UserError
from neurocascade.hierarchy.stages import ONE_GRAPH
from neurocascade.paths import child_env

SCHEMA_VERSION = 1
STAGES = ("gate", "subtype", ONE_GRAPH, "flat")
PROFILES = ("host", "rpi4-cores", "rpi5-cores")
PROFILE_ALIASES = {"rpi4": "rpi4-cores", "rpi5": "rpi5-cores"}  # the old names, kept for scripts that use them
PI_CORES = 4
PI_SPECS = {
    "rpi4": "a Raspberry Pi 4 has 4× Cortex-A72 at 1.8 GHz, NEON without the int8 dot product (asimddp)",
    "rpi5": "a Raspberry Pi 5 has 4× Cortex-A76 at 2.4 GHz, NEON with the int8 dot product (asimddp)",
}
RANDOM_SEED = 0
PROFILE_RUNS = 30  # timed runs without the delegate (--profile-ops), at most
REFERENCE_RUNS = 10  # timed runs on the reference kernels, at most: they are 10-100× slower on real models
MODEL_IMAGES = 16  # distinct images cycled through per model row (latency does not depend on content)
PAIRED_BLOCKS = 20  # alternating blocks per file in the paired speed-up timing (module doc), at most `runs`
EMULATED_RUNS = 3  # under emulation times are qemu's, not an ARM CPU's: a few runs show the path, not the speed
QUANTIZED_DTYPES = ("int8", "uint8", "int16")
FLOAT_DTYPES = ("float32", "float16")
Progress = Callable[[str], None]

TIMING_METHOD = (
    "latency: wall time (time.perf_counter) of one EdgeModel.predict_proba call on one image (set the "
    f"input, invoke, read and dequantize the output), cycling through up to {MODEL_IMAGES} images; "
    "p50/p90/p99 by numpy.percentile's default linear "
    "interpolation; std is the population std (ddof 0); throughput = 1000 / mean ms (sequential, "
    "batch 1); img/s per core = throughput / min(threads, pinned cores); invoke_p50_ms: LiteRT's "
    "invoke alone with the input already set, to show the Python overhead; peak RSS: ru_maxrss of the "
    "worker process (baseline: after importing numpy and LiteRT, before loading the model)"
)

PAIRED_METHOD = (
    "speed-up: per model and thread count, both files loaded in one more process and timed in alternating blocks "
    f"(up to {PAIRED_BLOCKS} blocks of single-image calls of each, warm-up as above), float32 median ÷ INT8 median; "
    "steadier than the ratio of the rows above, which ran in separate processes one after the other"
)
NOT_MEASURED = [
    "per-op and per-op-type time: ai-edge-litert 2.3.0's Python Interpreter has no profiler hook; its wrapper "
    "exposes only allocate/invoke/tensor access and node introspection (NumNodes, NodeName, NodeInputs, "
    "NodeOutputs). The profiling protos the wheel ships (profiling_info_pb2, model_runtime_info_pb2) are filled by "
    "no Python call, `experimental_force_delegate_node_profiling` only affects a C++ profiler that Python cannot "
    "attach, and the Python CompiledModel API (Options, CpuOptions) has no profiling switch. libLiteRt.so does "
    "export a C profiler (LiteRtCompiledModelGetProfiler, LiteRtGetProfilerEvents, LiteRtGetProfileSummary), but "
    "it is switched on through runtime options whose setter is not exported, so reaching it would mean hand-built "
    "opaque option payloads and event structs through ctypes against undocumented layouts: not done. Per-op times "
    "need the C++ benchmark_model tool (--enable_op_profiling=true), which the wheel does not include. est_macs "
    "(from tensor shapes) is a static cost proxy, not a time.",
    "time per op inside XNNPACK: the delegate replaces each partition by one DELEGATE node, so even TFLite's C++ op "
    "profiler would see one node per partition unless XNNPACK's own profiling is on.",
    "which XNNPACK microkernels ran (e.g. VNNI vs AVX2 int8 GEMM, NEON dotprod or not): chosen inside XNNPACK "
    "from the CPU at run time and not reported; cpu.features says which ones are possible.",
    "the delegated op set is inferred, not reported: Python gets neither the execution plan nor the delegate's "
    "node list. Each DELEGATE node's input and output tensors bound its partition; the original ops between them "
    "(walking back from its outputs to its inputs) are counted as delegated.",
]


# ---------------------------------------------------------------------------------------------- pure helpers


def summarize_timings(times_s: np.ndarray) -> dict:
    """Latency statistics in ms of per-image times in seconds, and the sequential batch-1 throughput.

    Percentiles by numpy.percentile's default linear interpolation; std with ddof 0; throughput = 1000 / mean ms.
    Values rounded to 4 decimals (0.1 µs).
    """
    t = np.asarray(times_s, dtype=np.float64) * 1000.0
    if t.ndim != 1 or len(t) == 0 or not np.isfinite(t).all() or (t < 0).any():
        raise ValueError(f"expected a non-empty 1-D array of finite non-negative times, got shape {t.shape}")
    p50, p90, p99 = np.percentile(t, [50, 90, 99])
    mean = float(t.mean())
    r = lambda x: round(float(x), 4)  # noqa: E731
    return {
        "n": int(len(t)),
        "p50_ms": r(p50),
        "p90_ms": r(p90),
        "p99_ms": r(p99),
        "mean_ms": r(mean),
        "std_ms": r(t.std()),
        "min_ms": r(t.min()),
        "max_ms": r(t.max()),
        "throughput_ips": r(1000.0 / mean) if mean > 0 else None,
    }


def expected_cascade_latency(gate_ms: float, subtype_ms: float, prevalence: float) -> float:
    """Expected per-image cascade time when a fraction `prevalence` of images goes on to the subtype model."""
    if not 0.0 <= prevalence <= 1.0:
        raise UserError(f"prevalence must be between 0 and 1, got {prevalence}")
    return float(gate_ms) + float(prevalence) * float(subtype_ms)


def resolve_profile(
    profile: str, cores: int | None, threads: list[int], available: list[int] | None = None, cpu: dict | None = None
) -> dict:
    """The CPUs to pin to, the thread counts to run and the honest statement of what the profile means."""
    requested, profile = profile, PROFILE_ALIASES.get(profile, profile)
    if profile not in PROFILES:
        raise UserError(
            f"unknown profile {requested!r}; available: {', '.join(PROFILES)} "
            f"(or the old names {', '.join(PROFILE_ALIASES)})"
        )
    pi = profile.removesuffix("-cores")
    threads = list(threads)
    if not threads or any(isinstance(t, bool) or not isinstance(t, int) or t < 1 for t in threads):
        raise UserError(f"threads must be a non-empty list of integers ≥ 1, got {threads}")
    avail = sorted(available if available is not None else available_cpus())
    if cores is not None and not 1 <= cores <= len(avail):
        raise UserError(f"--cores {cores}: this process may use {len(avail)} core(s) (CPU {_ids(avail)})")
    cpu = cpu or {}
    model = cpu.get("model_name", "this CPU")
    if profile == "host":
        cpus = avail[:cores] if cores else avail
        statement = (
            f"host: {model}, {'pinned to' if cores else 'free on'} {len(cpus)} core(s) (CPU {_ids(cpus)}), "
            f"threads {threads}"
        )
        label = f"host, {'pinned to ' if cores else ''}{len(cpus)} core(s) ({model})"
        on_pi = (cpu.get("board") or "").startswith("Raspberry Pi")
        return {
            "name": profile,
            "label": label,
            "on_raspberry_pi": on_pi,
            "cpus": cpus,
            "n_cores": len(cpus),
            "threads": threads,
            "pinned": cores is not None,
            "approximation": False,
            "statement": statement,
        }
    n = cores or min(PI_CORES, len(avail))
    cpus = avail[:n]
    board = cpu.get("board") or ""
    if board.startswith("Raspberry Pi"):
        label = f"{board}, {n} core(s) (measured on the device)"
        statement = f"running on {board} ({model}): pinned to {n} core(s) (CPU {_ids(cpus)}), {n} thread(s)"
        approximation = False
    else:
        count = f"{pi}-like core count" if n == PI_CORES else f"fewer than the {PI_CORES} of an {pi}"
        label = f"host pinned to {n} cores ({count}; not an ARM measurement)"
        features = ", ".join(f for f, on in cpu.get("features", {}).items() if on) or "unknown features"
        statement = (
            f"{label}: pinning approximation on this host's CPU, not a Raspberry Pi: each worker is pinned "
            f"to {n} of this host's cores (CPU {_ids(cpus)}) and runs {n} thread(s), as a Pi would use its "
            f"cores; the instruction set ({features}), clock, caches and memory bandwidth are this host's "
            f"({model}), so the latencies are not a Pi's; {PI_SPECS[pi]}"
        )
        if n < PI_CORES:
            statement += f"; only {n} core(s) are available here, fewer than a Pi's {PI_CORES}"
        approximation = True
    out = {
        "name": profile,
        "label": label,
        "on_raspberry_pi": not approximation,
        "cpus": cpus,
        "n_cores": n,
        "threads": [n],
        "pinned": True,
        "approximation": approximation,
        "statement": statement,
        "threads_requested": threads,
    }
    return out | ({"requested_as": requested} if requested != profile else {})


def _ids(cpus: list[int]) -> str:
    return ",".join(map(str, cpus))


# ---------------------------------------------------------------------------------------------- the worker


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 2)  # bytes on macOS, KiB on Linux


class _Images:
    """The worker's images, one (1, S, S, 3) batch at a time, read from disk on demand.

    Never the whole set in memory: a test split at 260 px is hundreds of MiB and would swamp the peak RSS that is
    meant to be the model's. Given images (a raw uint8 file the parent wrote) are used when their size fits the
    model; otherwise seeded random ones, each generated from (seed, index).
    """

    def __init__(self, spec: dict, size: int, n_random: int):
        given = spec.get("images")
        self.size = size
        if given and given["size"] == size:
            self.source, self.n, self._file = "given", int(given["n"]), open(given["path"], "rb")
        else:
            self.source, self.n, self._file = "random", n_random, None

    def __getitem__(self, i: int) -> np.ndarray:
        shape = (1, self.size, self.size, 3)
        if self._file is None:
            return np.random.default_rng([RANDOM_SEED, i]).integers(0, 256, shape, dtype=np.uint8)
        nbytes = self.size * self.size * 3
        self._file.seek(i * nbytes)
        return np.frombuffer(self._file.read(nbytes), np.uint8).reshape(shape)

    def batches(self) -> list[np.ndarray]:
        """The first `MODEL_IMAGES` images, one batch each: what a model row cycles through (content does not change
        a CNN's time)."""
        return [self[i] for i in range(min(self.n, MODEL_IMAGES))]


def time_calls(fn: Callable[[np.ndarray], object], batches: list[np.ndarray], runs: int, warmup: int) -> np.ndarray:
    """Seconds of each of `runs` calls of `fn` (cycling through `batches`), after `warmup` untimed calls; the
    export's "auto" precision times its candidates with it too, so both measure latency the same way."""
    for i in range(warmup):
        fn(batches[i % len(batches)])
    times = np.empty(runs)
    for i in range(runs):
        x = batches[i % len(batches)]
        t0 = time.perf_counter()
        fn(x)
        times[i] = time.perf_counter() - t0
    return times


def time_alternating(
    fns: Sequence[Callable[[np.ndarray], object]], batches: list[np.ndarray], blocks: int, per_block: int, warmup: int
) -> list[np.ndarray]:
    """Seconds of each call of each of `fns`, timed in alternating blocks: `per_block` calls of the first, then of
    the next, and so on, `blocks` times, after `warmup` untimed calls of each. A slow moment of the host then falls
    on every function alike, so the ratio of their times is steadier than that of two runs one after the other."""
    for fn in fns:
        for i in range(warmup):
            fn(batches[i % len(batches)])
    times = [np.empty(blocks * per_block) for _ in fns]
    for block in range(blocks):
        for fn, kept in zip(fns, times):
            for j in range(block * per_block, (block + 1) * per_block):
                x = batches[j % len(batches)]
                t0 = time.perf_counter()
                fn(x)
                kept[j] = time.perf_counter() - t0
    return times


def _model_job(spec: dict) -> dict:
    threads, runs, warmup = spec["threads"], spec["runs"], spec["warmup"]
    path = model_path(spec["export"], spec["stage"], spec["variant"])
    rss_base = _peak_rss_mb()
    t0 = time.perf_counter()
    model = load_model(path, threads)
    load_ms = (time.perf_counter() - t0) * 1000
    images = _Images(spec, model.size, MODEL_IMAGES)
    batches = images.batches()
    t0 = time.perf_counter()
    model.predict_proba(batches[0])
    first_ms = (time.perf_counter() - t0) * 1000
    latency = summarize_timings(time_calls(model.predict_proba, batches, runs, warmup))
    # The input of the last call is still set: time LiteRT's invoke alone, to separate it from Python's overhead.
    invoke = summarize_timings(time_calls(lambda _: model.interpreter.invoke(), batches[:1], runs, 0))
    peak = _peak_rss_mb()  # before --profile-ops loads more interpreters
    cpus = available_cpus()
    row = {
        "stage": spec["stage"],
        "variant": spec["variant"],
        "threads": threads,
        "cpus": cpus,
        "file": path.name,
        "file_bytes": path.stat().st_size,
        "input_dtype": model.input_dtype.name,
        "input_size": model.size,
        "images": images.source,
        "load_ms": round(load_ms, 3),
        "first_invoke_ms": round(first_ms, 3),
        "warmup": warmup,
        "latency": latency,
        "invoke_p50_ms": invoke["p50_ms"],
        "throughput_ips": latency["throughput_ips"],
        "ips_per_core": round(latency["throughput_ips"] / min(threads, len(cpus)), 4),
        "rss_baseline_mb": rss_base,
        "peak_rss_mb": peak,
        "ops": None,
        "xnnpack": xnnpack_path(model, spec["cpu"]) if spec.get("cpu") else None,
    }
    if spec.get("profile_ops"):
        row["ops"] = _op_profile(model, threads, batches, runs, warmup, latency)
    return row


def _paired_job(spec: dict) -> dict:
    """Both files of one model in one process, timed in alternating blocks: the speed-up the targets read."""
    threads, blocks, per_block = spec["threads"], spec["blocks"], spec["per_block"]
    models = {v: load_model(model_path(spec["export"], spec["stage"], v), threads) for v in VARIANTS}
    batches = _Images(spec, models[VARIANTS[0]].size, MODEL_IMAGES).batches()
    fns = [m.predict_proba for m in models.values()]
    latency = {
        v: summarize_timings(t)
        for v, t in zip(models, time_alternating(fns, batches, blocks, per_block, spec["warmup"]))
    }
    return {
        "stage": spec["stage"],
        "threads": threads,
        "cpus": available_cpus(),
        "blocks": blocks,
        "per_block": per_block,
        "latency": latency,
        "speedup": round(latency["float32"]["p50_ms"] / latency["int8"]["p50_ms"], 4),
    }


def _cascade_job(spec: dict) -> dict:
    threads, runs, warmup = spec["threads"], spec["runs"], spec["warmup"]
    rss_base = _peak_rss_mb()
    t0 = time.perf_counter()
    cascade = Cascade.load(spec["export"], spec["variant"], threads)
    load_ms = (time.perf_counter() - t0) * 1000
    images = _Images(spec, cascade.size, runs)
    n = images.n
    for i in range(warmup):
        cascade.predict(images[i % n])
    n_timed = max(runs, n)  # every image at least once, so the subtype fraction is that of the whole set
    times, ran = np.empty(n_timed), np.zeros(n_timed, bool)
    for i in range(n_timed):
        x = images[i % n]  # read before the clock starts
        t0 = time.perf_counter()
        pred = cascade.predict(x)
        times[i] = time.perf_counter() - t0
        ran[i] = len(pred.stages[0]) == 2
    first = ran[:n]
    return {
        "variant": spec["variant"],
        "threads": threads,
        "cpus": available_cpus(),
        "tau": cascade.tau,
        "images": images.source,
        "n_images": n,
        "n_timed": n_timed,
        "load_ms": round(load_ms, 3),
        "latency": summarize_timings(times),
        "gate_only": summarize_timings(times[~ran]) if (~ran).any() else None,
        "with_subtype": summarize_timings(times[ran]) if ran.any() else None,
        "subtype_fraction": round(float(first.mean()), 4),
        "rss_baseline_mb": rss_base,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _delegated_ops(ops: list[dict], delegate_nodes: list[dict]) -> dict[int, int]:
    """{original op index: partition number}: walk back from each DELEGATE node's outputs to its inputs."""
    producer = {int(t): op["index"] for op in ops for t in op["outputs"] if int(t) >= 0}
    delegated: dict[int, int] = {}
    for k, node in enumerate(delegate_nodes):
        boundary = {int(t) for t in node["inputs"]}
        stack = [int(t) for t in node["outputs"]]
        while stack:
            t = stack.pop()
            if t in boundary or t not in producer or producer[t] in delegated:
                continue
            i = producer[t]
            delegated[i] = k
            stack.extend(int(x) for x in ops[i]["inputs"] if int(x) >= 0)
    return delegated


def _delegation(model: EdgeModel, threads: int = 1) -> tuple[Any, list[dict], dict[int, int] | None, int]:
    """(an interpreter without delegates, its ops, {op index: partition} or None where unknown, partitions)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from neurocascade.edge.quiet import quiet_litert

    with quiet_litert():
        plain = Interpreter(
            model_path=str(model.path),
            num_threads=threads,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        plain.allocate_tensors()
    ops = plain._get_ops_details()
    # load_model's interpreter (default resolver): the original nodes, then one DELEGATE node per partition.
    delegate_nodes = model.interpreter._get_ops_details()[len(ops) :]
    same = [o["op_name"] for o in model.interpreter._get_ops_details()[: len(ops)]] == [o["op_name"] for o in ops]
    return plain, ops, (_delegated_ops(ops, delegate_nodes) if same else None), len(delegate_nodes)


def _op_kind(op: dict) -> str:
    dtype = _dtype_name(op["operand_types"][0]) if op["operand_types"] else "none"
    return "quantized" if dtype in QUANTIZED_DTYPES else "float" if dtype in FLOAT_DTYPES else "other"


def kernel_family(graph: str, cpu: dict) -> str:
    """Which of XNNPACK's kernel families a graph of this kind gets on this CPU, from the features it dispatches on.

    XNNPACK chooses its microkernels inside the library from the CPU's features and reports nothing; this names
    the family its dispatch takes for those features (int8: dot product or i8mm on ARM, VNNI on x86).
    """
    features = {k for k, on in cpu.get("features", {}).items() if on}
    if cpu.get("isa") == "arm":
        if graph == "int8":
            if "i8mm" in features:
                return "INT8 kernels with the int8 matrix multiply (i8mm, SMMLA)"
            if "asimddp" in features:
                return "INT8 kernels with the NEON dot product (asimddp, SDOT)"
            return "INT8 NEON kernels without the dot product (multiply-accumulate in 16 bits)"
        return "float32 NEON kernels"
    if cpu.get("isa") == "x86":
        if graph == "int8":
            if features & {"avx512_vnni", "avx_vnni"}:
                return "INT8 kernels with VNNI"
            return "INT8 kernels without VNNI (AVX2/AVX-512 multiply-add)" if "avx2" in features else "INT8 SSE kernels"
        return "float32 AVX-512 kernels" if "avx512f" in features else "float32 AVX2/FMA kernels"
    return "kernels for an unknown instruction set"


def xnnpack_path(model: EdgeModel, cpu: dict) -> dict:
    """Which path this model's inference takes: how much of the graph XNNPACK took, and which kernel family."""
    _, ops, delegated, partitions = _delegation(model)
    kinds = [_op_kind(op) for op in ops]
    graph = "int8" if kinds.count("quantized") > kinds.count("float") else "float32"
    taken = None if delegated is None else len(delegated)
    if partitions == 0 or taken == 0:
        path = "TFLite's builtin kernels (XNNPACK took no op)"
    else:
        share = "the whole graph" if taken == len(ops) else f"{'?' if taken is None else taken} of {len(ops)} ops"
        path = f"XNNPACK, {share}: {kernel_family(graph, cpu)}"
    return {"ops": len(ops), "delegated_ops": taken, "partitions": partitions, "graph": graph, "path": path}


def _est_macs(op: dict, shape: Callable[[int], list[int]]) -> int:
    """Multiply-accumulates of a conv / depthwise / fully-connected op at batch 1 (0 for other ops)."""
    name, inputs = op["op_name"], [int(t) for t in op["inputs"]]
    if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") or len(inputs) < 2:
        return 0
    out, w = shape(int(op["outputs"][0])), shape(inputs[1])
    if name == "CONV_2D":  # weights (out_c, kh, kw, in_c)
        return int(np.prod(out) * np.prod(w[1:]))
    if name == "DEPTHWISE_CONV_2D":  # weights (1, kh, kw, out_c)
        return int(np.prod(out) * w[1] * w[2])
    return int(np.prod(out) * w[-1])  # FULLY_CONNECTED: weights (out, in)


def _dtype_name(t) -> str:
    try:
        return np.dtype(t).name
    except TypeError:
        return str(t)


def _op_profile(
    model: EdgeModel, threads: int, batches: list[np.ndarray], runs: int, warmup: int, xnnpack: dict
) -> dict:
    """Ops by type and dtype, delegated or not, estimated MACs, and latency with and without XNNPACK."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from neurocascade.edge.quiet import quiet_litert

    def interpreter(resolver):
        with quiet_litert():
            it = Interpreter(model_path=str(model.path), num_threads=threads, experimental_op_resolver_type=resolver)
            it.allocate_tensors()
        return it

    plain, ops, known, partitions = _delegation(model, threads)
    same, delegated = known is not None, known or {}
    shape = lambda i: [int(d) for d in plain._get_tensor_details(i, 0)["shape"]]  # noqa: E731

    by_type: dict[str, dict] = {}
    by_dtype: dict[str, int] = {}
    kinds = {"quantized": 0, "float": 0, "other": 0}
    macs_total = macs_delegated = 0
    for op in ops:
        name = op["op_name"]
        dtype = _dtype_name(op["operand_types"][0]) if op["operand_types"] else "none"
        macs = _est_macs(op, shape)
        entry = by_type.setdefault(name, {"count": 0, "delegated": 0, "input_dtypes": {}, "est_macs": 0})
        entry["count"] += 1
        entry["delegated"] += op["index"] in delegated
        entry["input_dtypes"][dtype] = entry["input_dtypes"].get(dtype, 0) + 1
        entry["est_macs"] += macs
        by_dtype[dtype] = by_dtype.get(dtype, 0) + 1
        kinds[_op_kind(op)] += 1
        macs_total += macs
        macs_delegated += macs if op["index"] in delegated else 0
    not_delegated: dict[str, int] = {}
    for op in ops:
        if op["index"] not in delegated:
            not_delegated[op["op_name"]] = not_delegated.get(op["op_name"], 0) + 1

    short = min(runs, PROFILE_RUNS)
    latency = {
        "xnnpack": xnnpack,
        "builtin_no_delegate": summarize_timings(
            time_calls(EdgeModel(model.path, model.sidecar, plain).predict_proba, batches, short, min(warmup, 3))
        ),
        "reference_kernels": summarize_timings(
            time_calls(
                EdgeModel(model.path, model.sidecar, interpreter(OpResolverType.BUILTIN_REF)).predict_proba,
                batches,
                min(runs, REFERENCE_RUNS),
                1,
            )
        ),
    }
    return {
        "ops": len(ops),
        "delegate": "XNNPACK (LiteRT's default CPU delegate)",
        "delegate_partitions": partitions,
        "delegated_ops": len(delegated) if same else None,
        "delegation_known": same,
        "not_delegated": dict(sorted(not_delegated.items())),
        "by_type": dict(sorted(by_type.items())),
        "by_input_dtype": dict(sorted(by_dtype.items())),
        "by_kind": kinds,
        "est_macs": macs_total,
        "est_macs_delegated_fraction": round(macs_delegated / macs_total, 4) if macs_total and same else None,
        "latency": latency,
        "xnnpack_speedup_vs_builtin": round(latency["builtin_no_delegate"]["mean_ms"] / xnnpack["mean_ms"], 3),
        "runs": {"xnnpack": runs, "builtin_no_delegate": short, "reference_kernels": min(runs, REFERENCE_RUNS)},
        "not_measured": NOT_MEASURED,
    }


def _worker(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["out"])
    if spec.get("cpus") and hasattr(os, "sched_setaffinity"):
        # Before any interpreter exists: LiteRT's and XNNPACK's threads inherit the main thread's affinity.
        os.sched_setaffinity(0, spec["cpus"])
    # load_model imports LiteRT lazily: import it here so it counts in the baseline RSS and not in the load time.
    import ai_edge_litert.interpreter  # noqa: F401

    try:
        result = {"model": _model_job, "paired": _paired_job, "cascade": _cascade_job}[spec["job"]](spec)
    except UserError as exc:
        out.write_text(json.dumps({"error": str(exc)}))
        return 2
    out.write_text(json.dumps(result))
    return 0


def _spawn(spec: dict, tmp: Path, number: int) -> dict:
    """Run one job in a fresh `python -m neurocascade.edge.bench --worker` process; a UserError there is one here."""
    spec = {**spec, "out": str(tmp / f"job{number}.out.json")}
    spec_path = tmp / f"job{number}.json"
    spec_path.write_text(json.dumps(spec))
    env = child_env(OPENBLAS_NUM_THREADS="1")  # numpy's BLAS threads are not used by the worker: keep its RSS small
    proc = subprocess.run(
        [sys.executable, "-m", "neurocascade.edge.bench", "--worker", str(spec_path)],
        env=env,
        capture_output=True,
        text=True,
    )
    out = Path(spec["out"])
    result = json.loads(out.read_text()) if out.is_file() else None
    if result is not None and "error" in result:
        raise UserError(result["error"])
    if proc.returncode != 0 or result is None:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(
            f"benchmark worker for {spec.get('stage', 'cascade')} {spec.get('variant', 'int8 + float32')} failed "
            f"(exit {proc.returncode}):\n{tail}"
        )
    return result


# ---------------------------------------------------------------------------------------------- the benchmark


def _check_export(export: Path, stages: tuple[str, ...]) -> None:
    if not export.is_dir():
        raise UserError(f"{export}: export directory not found (run the export first)")
    for stage in stages:
        for variant in VARIANTS:
            path = model_path(export, stage, variant)
            if not path.is_file():
                raise UserError(f"{path}: model file not found")
    verify_export(export)  # the whole folder against its manifest, before any worker loads a model


def _versions() -> dict:
    from importlib import metadata

    try:
        litert = metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:
        litert = None
    return {"ai_edge_litert": litert, "numpy": np.__version__, "python": platform.python_version()}


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def run_bench(
    cascade_export: Path,
    flat_export: Path | None,
    threads: list[int],
    profile: str = "host",
    cores: int | None = None,
    runs: int = 200,
    warmup: int = 20,
    prevalence: float = 0.5,
    images: np.ndarray | None = None,
    profile_ops: bool = False,
    progress: Progress | None = None,
) -> dict:
    """Benchmark the cascade's gate and subtype models, the flat model, and the cascade end to end (module doc).

    `images`: uint8 (N, S, S, 3) at the models' input size (e.g. the test split) for the cascade's real image mix;
    None: seeded random images of the sidecar's input size (the report says so). `progress(message)` gets one
    line per measured job. A missing or corrupt model is a one-line UserError.
    """
    say = progress or (lambda message: None)
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise UserError(f"runs must be an integer ≥ 1, got {runs}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise UserError(f"warmup must be an integer ≥ 0, got {warmup}")
    expected_cascade_latency(0.0, 0.0, prevalence)  # checks the prevalence
    cascade_export = Path(cascade_export)
    exports = {"gate": cascade_export, "subtype": cascade_export}
    _check_export(cascade_export, ("gate", "subtype"))
    if ONE_GRAPH in verify_export(cascade_export).stages:  # the cascade as one graph too (export.one_graph)
        exports[ONE_GRAPH] = cascade_export
    if flat_export is not None:
        exports["flat"] = Path(flat_export)
        _check_export(exports["flat"], ("flat",))
    gate_sidecar = read_sidecar(cascade_export / "gate.json")
    size = int(gate_sidecar.input["size"])
    cpu = cpu_info()
    prof = resolve_profile(profile, cores, threads, cpu=cpu)
    if cpu.get("emulated"):  # qemu's times say nothing about an ARM CPU: report the path, time only a few runs
        runs, warmup, profile_ops = min(runs, EMULATED_RUNS), min(warmup, 1), False

    started, t_start, load_before = datetime.now(timezone.utc), time.perf_counter(), _loadavg()
    with tempfile.TemporaryDirectory(prefix="neurocascade-bench-") as tmp_name:
        tmp = Path(tmp_name)
        given = None
        if images is not None:
            images = np.asarray(images)
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (size, size, 3) or not len(images):
                raise UserError(
                    f"images must be uint8 (N, {size}, {size}, 3) at the models' input size, "
                    f"got {images.dtype} {images.shape}"
                )
            given = {"path": str(tmp / "images.u8"), "n": int(len(images)), "size": size}
            np.ascontiguousarray(images).tofile(given["path"])  # raw: the workers read one image at a time
        common = {
            "runs": runs,
            "warmup": warmup,
            "cpus": prof["cpus"] if prof["pinned"] else None,
            "images": given,
            "cpu": {k: cpu[k] for k in ("isa", "features", "emulated")},
        }
        numbers = iter(range(1, 1 << 30))  # of the workers' spec files

        def spawn(**job: Any) -> dict:
            return _spawn({**common, **job}, tmp, next(numbers))

        rows = []
        for variant in VARIANTS:
            for n_threads in prof["threads"]:
                for stage, export in exports.items():
                    row = spawn(
                        job="model",
                        export=str(export),
                        stage=stage,
                        variant=variant,
                        threads=n_threads,
                        profile_ops=profile_ops,
                    )
                    rows.append(row)
                    say(
                        f"{stage} {variant}, {n_threads} thread(s): {row['xnnpack']['path']}"
                        if cpu.get("emulated")
                        else f"{stage} {variant}, {n_threads} thread(s): p50 {row['latency']['p50_ms']:.3f} ms, "
                        f"peak RSS {row['peak_rss_mb']} MiB"
                    )
        speedups = []
        blocks = min(PAIRED_BLOCKS, runs)
        for n_threads in [] if cpu.get("emulated") else prof["threads"]:  # qemu's times say nothing
            for stage, export in exports.items():
                row = spawn(
                    job="paired",
                    export=str(export),
                    stage=stage,
                    threads=n_threads,
                    blocks=blocks,
                    per_block=-(-runs // blocks),
                )
                speedups.append(row)
                say(f"{stage} INT8 vs float32 in alternating blocks, {n_threads} thread(s): {row['speedup']:.3f}×")
        cascade_rows = []
        for variant in VARIANTS:
            for n_threads in prof["threads"]:
                row = spawn(job="cascade", export=str(cascade_export), variant=variant, threads=n_threads)
                cascade_rows.append(_with_expectations(row, rows, prevalence))
                say(
                    f"cascade {variant}, {n_threads} thread(s): mean {row['latency']['mean_ms']:.3f} ms per image, "
                    f"subtype ran for {row['subtype_fraction']:.0%}"
                )

    load_after = _loadavg()
    image_info = (
        {"source": "given", "n": int(len(images)), "size": size, "seed": None}
        if images is not None
        else {"source": "random", "n": runs, "size": size, "seed": RANDOM_SEED}
    )
    report = {
        "schema_version": SCHEMA_VERSION,
        "cpu": cpu,
        "profile": prof,
        "settings": {
            "cascade_export": str(cascade_export),
            "flat_export": None if flat_export is None else str(flat_export),
            "threads": prof["threads"],
            "runs": runs,
            "warmup": warmup,
            "prevalence": prevalence,
            "profile_ops": profile_ops,
            "images": image_info,
            "versions": _versions(),
            "timing": TIMING_METHOD,
            "started": started.isoformat(timespec="seconds"),
            "wall_s": round(time.perf_counter() - t_start, 2),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "models": rows,
        "speedups": speedups,
        "cascade": {"tau": cascade_rows[0]["tau"], "prevalence": prevalence, "rows": cascade_rows},
        "notes": _notes(cpu, prof, image_info, prevalence, profile_ops, load_before, load_after),
    }
    validate_report(report)
    return report


def _with_expectations(row: dict, model_rows: list[dict], prevalence: float) -> dict:
    """Add the expected latency (gate + p × subtype, per-model means) and the flat model's mean to a cascade row."""
    mean = {
        r["stage"]: r["latency"]["mean_ms"]
        for r in model_rows
        if r["variant"] == row["variant"] and r["threads"] == row["threads"]
    }
    gate, subtype, flat = mean["gate"], mean["subtype"], mean.get("flat")
    expected = expected_cascade_latency(gate, subtype, prevalence)
    return {
        **row,
        "gate_mean_ms": gate,
        "subtype_mean_ms": subtype,
        "expected_ms_at_prevalence": round(expected, 4),
        "expected_ms_at_measured_fraction": round(expected_cascade_latency(gate, subtype, row["subtype_fraction"]), 4),
        "flat_mean_ms": flat,
        "expected_speedup_vs_flat": round(flat / expected, 3) if flat else None,
    }


def _notes(
    cpu: dict,
    prof: dict,
    image_info: dict,
    prevalence: float,
    profile_ops: bool,
    before: list[float] | None,
    after: list[float] | None,
) -> list[str]:
    notes = [prof["statement"]]
    if cpu.get("emulated"):
        notes.append(
            f"emulated aarch64 (qemu user mode): times are qemu's translation on the host, not an ARM CPU's, so only "
            f"{EMULATED_RUNS} runs were timed and the table shows the path each model took instead: how much of the "
            "graph XNNPACK took and the kernel family its dispatch picks for the CPU features qemu emulates"
        )
    if image_info["source"] == "random":
        notes.append(
            f"no images given: seeded random uint8 noise images ({image_info['n']}, "
            f"{image_info['size']}×{image_info['size']}, seed {RANDOM_SEED}); latency per model does not "
            f"depend on content, but the cascade's subtype fraction on noise says nothing about real scans"
        )
    else:
        notes.append(f"cascade measured on the {image_info['n']} images given, one at a time")
    notes.append(f"CPU: {cpu['model_name']} ({cpu['machine']}); {cpu['int8_note']}")
    if before and after:
        busy = max(before[0], after[0])
        n = cpu.get("cores_logical") or 1
        notes.append(
            f"1-minute load average {before[0]} before and {after[0]} after, on {n} logical core(s): "
            + (
                "other processes were competing for the CPU, latencies are pessimistic"
                if busy > 0.5
                else "the machine looked otherwise idle"
            )
        )
    notes.append(
        f"expected cascade latency = gate mean + p × subtype mean at tumour prevalence p = {prevalence}, "
        "assuming the gate calls tumour exactly for tumour images; the measured cascade runs the subtype "
        "model for the fraction the gate actually calls tumour (subtype_fraction)"
    )
    notes.append("each model × variant × thread count ran in its own fresh process (peak RSS not mixed)")
    if not cpu.get("emulated"):
        notes.append(PAIRED_METHOD)
    notes.append(TIMING_METHOD)
    if profile_ops:
        notes.append(
            "profile_ops: latency without XNNPACK uses OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES "
            f"(TFLite's optimized builtin kernels, ≤ {PROFILE_RUNS} runs) and BUILTIN_REF (reference "
            f"kernels, ≤ {REFERENCE_RUNS} runs); not measured with ai-edge-litert 2.3.0:"
        )
        notes.extend(NOT_MEASURED)
    return notes


# ---------------------------------------------------------------------------------------------- validation


class _Opt:
    def __init__(self, spec):
        self.spec = spec


_NUM = "number"
SUMMARY_SCHEMA = {k: _NUM for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms")} | {
    "n": int,
    "throughput_ips": _Opt(_NUM),
}
OPS_SCHEMA = {
    "ops": int,
    "delegate_partitions": int,
    "delegated_ops": _Opt(int),
    "not_delegated": dict,
    "by_type": dict,
    "by_input_dtype": dict,
    "by_kind": dict,
    "est_macs": int,
    "latency": {"xnnpack": SUMMARY_SCHEMA, "builtin_no_delegate": SUMMARY_SCHEMA, "reference_kernels": SUMMARY_SCHEMA},
    "not_measured": [str],
}
MODEL_SCHEMA = {
    "stage": str,
    "variant": str,
    "threads": int,
    "cpus": [int],
    "file": str,
    "file_bytes": int,
    "input_dtype": str,
    "input_size": int,
    "images": str,
    "load_ms": _NUM,
    "first_invoke_ms": _NUM,
    "warmup": int,
    "latency": SUMMARY_SCHEMA,
    "invoke_p50_ms": _NUM,
    "throughput_ips": _NUM,
    "ips_per_core": _NUM,
    "rss_baseline_mb": _Opt(_NUM),
    "peak_rss_mb": _Opt(_NUM),
    "ops": _Opt(OPS_SCHEMA),
    "xnnpack": _Opt({"ops": int, "delegated_ops": _Opt(int), "partitions": int, "graph": str, "path": str}),
}
SPEEDUP_SCHEMA = {
    "stage": str,
    "threads": int,
    "cpus": [int],
    "blocks": int,
    "per_block": int,
    "latency": {variant: SUMMARY_SCHEMA for variant in VARIANTS},
    "speedup": _NUM,
}
CASCADE_ROW_SCHEMA = {
    "variant": str,
    "threads": int,
    "cpus": [int],
    "tau": _NUM,
    "images": str,
    "n_images": int,
    "n_timed": int,
    "load_ms": _NUM,
    "latency": SUMMARY_SCHEMA,
    "gate_only": _Opt(SUMMARY_SCHEMA),
    "with_subtype": _Opt(SUMMARY_SCHEMA),
    "subtype_fraction": _NUM,
    "gate_mean_ms": _NUM,
    "subtype_mean_ms": _NUM,
    "expected_ms_at_prevalence": _NUM,
    "expected_ms_at_measured_fraction": _NUM,
    "flat_mean_ms": _Opt(_NUM),
    "expected_speedup_vs_flat": _Opt(_NUM),
    "rss_baseline_mb": _Opt(_NUM),
    "peak_rss_mb": _Opt(_NUM),
}
REPORT_SCHEMA = {
    "schema_version": int,
    "cpu": {
        "model_name": str,
        "isa": str,
        "features": dict,
        "int8_dot_product": bool,
        "int8_note": str,
        "machine": str,
        "cores_logical": _Opt(int),
        "cores_available": int,
        "emulated": _Opt(bool),
    },
    "profile": {
        "name": str,
        "cpus": [int],
        "n_cores": int,
        "threads": [int],
        "pinned": bool,
        "approximation": bool,
        "statement": str,
        "label": _Opt(str),
        "on_raspberry_pi": _Opt(bool),
    },  # optional: older reports
    "settings": {
        "cascade_export": str,
        "flat_export": _Opt(str),
        "threads": [int],
        "runs": int,
        "warmup": int,
        "prevalence": _NUM,
        "profile_ops": bool,
        "timing": str,
        "versions": dict,
        "images": {"source": str, "n": int, "size": int, "seed": _Opt(int)},
    },
    "models": [MODEL_SCHEMA],
    "speedups": _Opt([SPEEDUP_SCHEMA]),  # optional: reports from before the paired timing
    "cascade": {"tau": _NUM, "prevalence": _NUM, "rows": [CASCADE_ROW_SCHEMA]},
    "notes": [str],
}


def _check(value, spec, where: str, problems: list[str]) -> None:
    if isinstance(spec, _Opt):
        if value is not None:
            _check(value, spec.spec, where, problems)
        return
    if spec == _NUM:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{where}: expected a number, got {type(value).__name__}")
        return
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            problems.append(f"{where}: expected an object, got {type(value).__name__}")
            return
        for key, sub in spec.items():
            if key not in value:
                if not isinstance(sub, _Opt):
                    problems.append(f"{where}.{key}: missing")
                continue
            _check(value[key], sub, f"{where}.{key}", problems)
        return
    if isinstance(spec, list):
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _check(item, spec[0], f"{where}[{i}]", problems)
        return
    if (spec is int and isinstance(value, bool)) or not isinstance(value, spec):
        problems.append(f"{where}: expected {spec.__name__}, got {type(value).__name__}")


def validate_report(report: dict) -> dict:
    """Check a bench report's structure and values (required keys, types, ranges, JSON without NaN).

    Returns the report; raises ValueError listing every problem.
    """
    problems: list[str] = []
    _check(report, REPORT_SCHEMA, "report", problems)
    if not problems:
        if report["schema_version"] != SCHEMA_VERSION:
            problems.append(f"report.schema_version: expected {SCHEMA_VERSION}, got {report['schema_version']}")
        if not report["models"]:
            problems.append("report.models: empty")
        for i, row in enumerate(report["models"]):
            if row["stage"] not in STAGES or row["variant"] not in VARIANTS:
                problems.append(f"report.models[{i}]: unknown stage/variant {row['stage']}/{row['variant']}")
            lat = row["latency"]
            if not lat["min_ms"] <= lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]:
                problems.append(f"report.models[{i}].latency: percentiles out of order")
        for i, row in enumerate(report.get("speedups") or []):
            if row["stage"] not in STAGES or not row["speedup"] > 0:
                problems.append(f"report.speedups[{i}]: unknown stage {row['stage']} or speed-up not > 0")
        for i, row in enumerate(report["cascade"]["rows"]):
            if not 0.0 <= row["subtype_fraction"] <= 1.0:
                problems.append(f"report.cascade.rows[{i}].subtype_fraction: not in [0, 1]")
        if not 0.0 <= report["settings"]["prevalence"] <= 1.0:
            problems.append("report.settings.prevalence: not in [0, 1]")
        try:
            json.dumps(report, allow_nan=False)
        except (TypeError, ValueError) as exc:
            problems.append(f"report: not plain JSON ({exc})")
    if problems:
        raise ValueError("invalid bench report: " + "; ".join(problems))
    return report


# ---------------------------------------------------------------------------------------------- display


def _f(x: float | None, fmt: str = ".3f") -> str:
    return "—" if x is None else format(x, fmt)


def bench_table(report: dict):
    """The report as a rich Table: one row per model × variant × threads, then the cascade rows."""
    from rich.table import Table

    cpu, prof, settings = report["cpu"], report["profile"], report["settings"]
    if cpu.get("emulated"):
        return path_table(report)
    table = Table(
        title=f"Edge benchmark on {cpu['model_name']} ({cpu['machine']}), "
        f"profile {prof['name']}: {prof.get('label', prof['name'])}, "
        f"batch 1, {settings['runs']} runs",
        title_justify="left",
    )
    for col in (
        "model",
        "variant",
        "thr",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "mean ± std ms",
        "img/s",
        "img/s/core",
        "load ms",
        "peak MiB",
        "file KiB",
        "note",
    ):
        table.add_column(col, justify="left" if col in ("model", "variant", "note") else "right")
    for r in report["models"]:
        lat, ops = r["latency"], r["ops"]
        note = "" if not ops or ops["delegated_ops"] is None else f"XNNPACK {ops['delegated_ops']}/{ops['ops']} ops"
        table.add_row(
            r["stage"],
            r["variant"],
            str(r["threads"]),
            _f(lat["p50_ms"]),
            _f(lat["p90_ms"]),
            _f(lat["p99_ms"]),
            f"{_f(lat['mean_ms'])} ± {_f(lat['std_ms'])}",
            _f(lat["throughput_ips"], ".1f"),
            _f(r["ips_per_core"], ".1f"),
            _f(r["load_ms"], ".1f"),
            _f(r["peak_rss_mb"], ".1f"),
            _f(r["file_bytes"] / 1024, ".1f"),
            note,
        )
    table.add_section()
    p = report["cascade"]["prevalence"]
    for r in report["cascade"]["rows"]:
        lat = r["latency"]
        table.add_row(
            "cascade",
            r["variant"],
            str(r["threads"]),
            _f(lat["p50_ms"]),
            _f(lat["p90_ms"]),
            _f(lat["p99_ms"]),
            f"{_f(lat['mean_ms'])} ± {_f(lat['std_ms'])}",
            _f(lat["throughput_ips"], ".1f"),
            "",
            _f(r["load_ms"], ".1f"),
            _f(r["peak_rss_mb"], ".1f"),
            "",
            f"measured: subtype ran for {r['subtype_fraction']:.0%} of {r['n_images']}",
        )
        expected = r["expected_ms_at_prevalence"]
        flat = (
            ""
            if r["flat_mean_ms"] is None
            else (f", flat {r['flat_mean_ms']:.3f} ms (flat/cascade ×{r['expected_speedup_vs_flat']:.2f})")
        )
        table.add_row(
            "cascade",
            r["variant"],
            str(r["threads"]),
            "",
            "",
            "",
            _f(expected),
            _f(1000 / expected if expected else None, ".1f"),
            "",
            "",
            "",
            "",
            f"expected at prevalence {p:g}: gate + {p:g} × subtype{flat}",
        )
    images = settings["images"]
    table.caption = f"{prof['statement']}. Images: {images['source']} ({images['n']}). {cpu['int8_note']}."
    return table


def speedup_table(report: dict):
    """The paired INT8 speed-ups (module doc) as a rich Table; None for a report without them."""
    from rich.table import Table

    if not report.get("speedups"):
        return None
    table = Table(title="INT8 speed-up over float32, timed in alternating blocks in one process", title_justify="left")
    for col in ("model", "thr", "INT8 p50 ms", "float32 p50 ms", "speed-up", "calls per file"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in report["speedups"]:
        lat = r["latency"]
        table.add_row(
            r["stage"],
            str(r["threads"]),
            _f(lat["int8"]["p50_ms"]),
            _f(lat["float32"]["p50_ms"]),
            f"{r['speedup']:.3f}×",
            f"{r['blocks']} × {r['per_block']}",
        )
    table.caption = "float32 median ÷ INT8 median; each block times one file, the next block the other."
    return table


def path_table(report: dict):
    """Under emulation: the path each model took (XNNPACK's share of the graph, the kernel family), no times."""
    from rich.table import Table

    cpu = report["cpu"]
    table = Table(
        title=f"Edge check on {cpu['model_name']}: the path each model takes, not its speed", title_justify="left"
    )
    for col in ("model", "variant", "thr", "path", "ops in XNNPACK", "partitions", "peak MiB", "file KiB"):
        table.add_column(col, justify="left" if col in ("model", "variant", "path") else "right")
    for r in report["models"]:
        x = r.get("xnnpack") or {}
        taken = "—" if x.get("delegated_ops") is None else f"{x['delegated_ops']}/{x['ops']}"
        table.add_row(
            r["stage"],
            r["variant"],
            str(r["threads"]),
            x.get("path", "not recorded"),
            taken,
            str(x.get("partitions", "—")),
            _f(r["peak_rss_mb"], ".1f"),
            _f(r["file_bytes"] / 1024, ".1f"),
        )
    for r in report["cascade"]["rows"]:
        table.add_row(
            "cascade",
            r["variant"],
            str(r["threads"]),
            f"subtype ran for {r['subtype_fraction']:.0%} of {r['n_images']}",
        )
    table.caption = f"Times not shown: qemu's, not an ARM CPU's. {cpu['int8_note']}."
    return table


def ops_table(report: dict):
    """--profile-ops rows: ops, delegation and latency with XNNPACK, builtin kernels only and reference kernels."""
    from rich.table import Table

    table = Table(
        title="Ops and the XNNPACK delegate (per-op time is not measurable from Python, see notes)",
        title_justify="left",
    )
    for col in (
        "model",
        "variant",
        "thr",
        "ops",
        "XNNPACK",
        "partitions",
        "int8/float ops",
        "MACs in XNNPACK",
        "not delegated",
        "XNNPACK ms",
        "builtin ms",
        "reference ms",
    ):
        table.add_column(col, justify="left" if col in ("model", "variant", "not delegated") else "right")
    for r in report["models"]:
        ops = r["ops"]
        if not ops:
            continue
        lat = ops["latency"]
        frac = ops["est_macs_delegated_fraction"]
        table.add_row(
            r["stage"],
            r["variant"],
            str(r["threads"]),
            str(ops["ops"]),
            _f(ops["delegated_ops"], "d"),
            str(ops["delegate_partitions"]),
            f"{ops['by_kind']['quantized']}/{ops['by_kind']['float']}",
            "—" if frac is None else f"{frac:.1%}",
            ", ".join(f"{k}×{v}" for k, v in ops["not_delegated"].items()) or "none",
            _f(lat["xnnpack"]["mean_ms"]),
            _f(lat["builtin_no_delegate"]["mean_ms"]),
            _f(lat["reference_kernels"]["mean_ms"]),
        )
    return table


# ---------------------------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """`python -m neurocascade.edge.bench EXPORT [...]` without click (a Pi needs only the `edge` extra); `--worker SPEC`."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return _worker(argv[1])
    import argparse

    parser = argparse.ArgumentParser(prog="python -m neurocascade.edge.bench", description=__doc__.split("\n")[0])
    parser.add_argument("cascade_export", type=Path)
    parser.add_argument("--flat", type=Path, help="the flat model's export directory")
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--profile", choices=PROFILES + tuple(PROFILE_ALIASES), default="host")
    parser.add_argument("--cores", type=int)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--prevalence", type=float, default=0.5)
    parser.add_argument("--images", type=Path, help="a .npy of uint8 (N, S, S, 3) images for the cascade")
    parser.add_argument("--profile-ops", action="store_true")
    parser.add_argument("--out", type=Path, help="write the report JSON here")
    args = parser.parse_args(argv)
    from rich.console import Console

    err = Console(stderr=True)
    try:
        images = np.load(args.images) if args.images else None
        report = run_bench(
            args.cascade_export,
            args.flat,
            args.threads,
            args.profile,
            args.cores,
            args.runs,
            args.warmup,
            args.prevalence,
            images,
            args.profile_ops,
            progress=lambda m: err.print(m, highlight=False),
        )
    except UserError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        return 2
    console = Console()
    console.print(bench_table(report))
    if (speedups := speedup_table(report)) is not None:
        console.print(speedups)
    if args.profile_ops:
        console.print(ops_table(report))
    if args.out:
        BenchReport.from_json(report, args.out).write(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())


# ---------------------------------------------------------------------------------------------- the file


@dataclass(frozen=True)
class BenchReport(Artifact):
    """`bench.json`: one edge-bench report; `from_json` is `validate_report` plus unknown-key refusal."""

    WHAT: ClassVar[str] = "edge-bench report (bench.json)"

    cpu: Mapping[str, Any]
    profile: Mapping[str, Any]
    settings: Mapping[str, Any]
    models: tuple[Mapping[str, Any], ...]
    cascade: Mapping[str, Any]
    notes: tuple[str, ...]
    schema_version: int = SCHEMA_VERSION
    speedups: tuple[Mapping[str, Any], ...] | None = None  # absent from reports before the paired timing

    def to_json(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "cpu": dict(self.cpu),
            "profile": dict(self.profile),
            "settings": dict(self.settings),
            "models": [dict(m) for m in self.models],
            **({} if self.speedups is None else {"speedups": [dict(r) for r in self.speedups]}),
            "cascade": dict(self.cascade),
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, obj: Any, source: str | Path) -> "BenchReport":
        f = Fields(obj, source)
        taken = {"schema_version": artifact_version(f, "schema_version", (SCHEMA_VERSION,))}
        for key, spec in REPORT_SCHEMA.items():  # finite numbers; an optional key may be absent
            if key not in taken:
                taken[key] = f.take(key, json_value, None) if isinstance(spec, _Opt) else f.take(key, json_value)
        f.done()
        try:
            validate_report(taken)
        except ValueError as exc:
            first = str(exc).removeprefix("invalid bench report: ").split("; ")[0].removeprefix("report.")
            raise ArtifactError(f"{source}: {first}") from None
        return cls(
            taken["cpu"],
            taken["profile"],
            taken["settings"],
            tuple(taken["models"]),
            taken["cascade"],
            tuple(taken["notes"]),
            taken["schema_version"],
            None if taken["speedups"] is None else tuple(taken["speedups"]),
        )
