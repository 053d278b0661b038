"""`neurocascade.edge.bench` on the tiny exported runs (tests/edge/conftest.py `exported`), plus golden cases for the pure parts.

The benchmark itself runs with runs=5, warmup=1, one thread, pinned to one core: the numbers are meaningless, the
test checks the report's structure and its internal consistency (the cascade's subtype fraction against
`Cascade.predict` run here, the expected latency against the per-model means). Golden timing statistics use
numpy.percentile's default linear interpolation (position (n − 1)·q between the sorted values) and the population
std (ddof 0); they are exact to the 4 decimals the function rounds to, so they are compared with abs=1e-9.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from neurocascade.data.layout import CLASSES
from neurocascade.data.phantoms import make_phantom
from neurocascade.edge import bench
from neurocascade.edge.bench import (
    BenchReport,
    time_alternating,
    speedup_table,
    kernel_family,
    bench_table,
    expected_cascade_latency,
    ops_table,
    resolve_profile,
    run_bench,
    summarize_timings,
    validate_report,
)
from neurocascade.edge import cpuinfo
from neurocascade.edge.cpuinfo import cpu_info, host_label, parse_cpuinfo
from neurocascade.edge.preprocess import to_model_input
from neurocascade.edge.runtime import VARIANTS, Cascade
from neurocascade.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def fixed_images(n: int = 6) -> np.ndarray:
    """Phantoms of every class at the runs' 32 px input, the same every time."""
    return np.stack(
        [to_model_input(make_phantom(CLASSES[k % 4], np.random.default_rng(200 + k), 64), 32) for k in range(n)]
    )


@pytest.fixture(scope="module")
def exports(exported) -> tuple[Path, Path]:
    return exported["cascade"][0] / "export", exported["flat"][0] / "export"


@pytest.fixture(scope="module")
def report(exports) -> dict:
    """Given images, the flat baseline, --profile-ops, pinned to one core."""
    return run_bench(
        exports[0],
        exports[1],
        threads=[1],
        cores=1,
        runs=5,
        warmup=1,
        prevalence=0.4,
        images=fixed_images(),
        profile_ops=True,
    )


def test_report_is_valid_and_consistent(report, exports):
    assert validate_report(report) is report
    json.loads(json.dumps(report, allow_nan=False))
    rows = report["models"]
    assert [(r["stage"], r["variant"]) for r in rows] == [(s, v) for v in VARIANTS for s in ("gate", "subtype", "flat")]
    for r in rows:
        assert r["threads"] == 1 and len(r["cpus"]) == 1  # the worker really was pinned
        assert r["latency"]["n"] == 5 and r["images"] == "given"
        export = exports[1] if r["stage"] == "flat" else exports[0]
        assert r["file_bytes"] == (export / r["file"]).stat().st_size
        assert r["peak_rss_mb"] >= r["rss_baseline_mb"] > 0
        assert r["input_dtype"] == ("uint8" if r["variant"] == "int8" else "float32")
        ops = r["ops"]
        assert sum(t["count"] for t in ops["by_type"].values()) == ops["ops"] == sum(ops["by_input_dtype"].values())
        assert ops["delegation_known"] and 0 < ops["delegated_ops"] <= ops["ops"] and ops["delegate_partitions"] >= 1
        assert ops["delegated_ops"] + sum(ops["not_delegated"].values()) == ops["ops"]
        assert ops["by_type"]["CONV_2D"]["est_macs"] > 0 and ops["not_measured"]
        quantized = r["variant"] == "int8"
        assert (ops["by_kind"]["quantized"] > ops["by_kind"]["float"]) == quantized
        x = r["xnnpack"]  # the path, without --profile-ops too: the same delegation facts
        assert (x["ops"], x["delegated_ops"], x["partitions"]) == (
            ops["ops"],
            ops["delegated_ops"],
            ops["delegate_partitions"],
        )
        assert x["graph"] == ("int8" if quantized else "float32") and x["path"].startswith("XNNPACK, ")
        assert x["path"].endswith(kernel_family(x["graph"], report["cpu"]))
    mean = {(r["stage"], r["variant"]): r["latency"]["mean_ms"] for r in rows}
    images = fixed_images()
    assert [c["variant"] for c in report["cascade"]["rows"]] == list(VARIANTS)
    for c in report["cascade"]["rows"]:
        v = c["variant"]
        assert c["n_images"] == c["n_timed"] == len(images) and c["images"] == "given"
        ran = [len(s) == 2 for s in Cascade.load(exports[0], v).predict(images).stages]
        assert c["subtype_fraction"] == pytest.approx(np.mean(ran), abs=1e-4)
        counts = [(c[k] or {"n": 0})["n"] for k in ("gate_only", "with_subtype")]
        assert sum(counts) == c["n_timed"]
        assert c["expected_ms_at_prevalence"] == pytest.approx(mean["gate", v] + 0.4 * mean["subtype", v], abs=1e-3)
        assert c["flat_mean_ms"] == mean["flat", v]
    assert any("per-op" in n for n in report["notes"]) and report["profile"]["statement"].startswith("host")
    # the paired speed-up: both files of each model in one pinned process, five calls each (5 blocks of 1)
    assert [(r["stage"], r["threads"]) for r in report["speedups"]] == [(s, 1) for s in ("gate", "subtype", "flat")]
    for r in report["speedups"]:
        lat = r["latency"]
        assert len(r["cpus"]) == 1 and (r["blocks"], r["per_block"]) == (5, 1)
        assert lat["int8"]["n"] == lat["float32"]["n"] == 5
        assert r["speedup"] == pytest.approx(lat["float32"]["p50_ms"] / lat["int8"]["p50_ms"], rel=1e-3)
    assert any("alternating blocks" in n for n in report["notes"])


def test_time_alternating_times_each_function_in_turn_by_blocks():
    calls = []
    fns = [lambda x, k=k: calls.append((k, int(x[0]))) for k in range(2)]
    batches = [np.array([i]) for i in range(3)]
    times = time_alternating(fns, batches, blocks=2, per_block=2, warmup=1)
    assert [t.shape for t in times] == [(4,), (4,)] and all((t >= 0).all() for t in times)
    # warm-up: one untimed call of each, then blocks of two calls, the functions taking turns, batches cycled
    assert calls == [(0, 0), (1, 0), (0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 0), (1, 2), (1, 0)]


def test_bench_report_reads_a_report_from_before_the_paired_timing(report, tmp_path):
    old = {k: v for k, v in report.items() if k != "speedups"}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(old))
    read = BenchReport.read(path)
    assert read.speedups is None and "speedups" not in read.to_json()
    assert BenchReport.from_json(report, path).to_json()["speedups"] == report["speedups"]


def test_tables_render(report):
    console = Console(record=True, width=220)
    console.print(bench_table(report))
    console.print(ops_table(report))
    console.print(speedup_table(report))
    text = console.export_text()
    for word in (
        "gate",
        "subtype",
        "flat",
        "cascade",
        "int8",
        "float32",
        "expected at prevalence 0.4",
        "XNNPACK",
        "alternating blocks",
    ):
        assert word in text


def test_random_images_without_a_flat_model(exports):
    report = run_bench(exports[0], None, threads=[1], runs=3, warmup=0)
    assert {r["stage"] for r in report["models"]} == {"gate", "subtype"}
    assert report["settings"]["images"] == {"source": "random", "n": 3, "size": 32, "seed": 0}
    assert all(c["flat_mean_ms"] is None and c["images"] == "random" for c in report["cascade"]["rows"])
    assert any("random" in n for n in report["notes"])
    console = Console(record=True, width=220)
    console.print(bench_table(report))


def test_validate_report_rejects_broken_reports(report):
    broken = copy.deepcopy(report)
    del broken["cpu"]
    broken["models"][0]["latency"]["p50_ms"] = "fast"
    broken["cascade"]["rows"][0]["subtype_fraction"] = None
    with pytest.raises(ValueError) as err:
        validate_report(broken)
    for where in ("report.cpu: missing", "report.models[0].latency.p50_ms", "report.cascade.rows[0].subtype_fraction"):
        assert where in str(err.value)
    slower = copy.deepcopy(report)
    slower["speedups"][0]["speedup"] = 0.0
    with pytest.raises(ValueError, match=r"report.speedups\[0\]: .* speed-up not > 0"):
        validate_report(slower)
    nan = copy.deepcopy(report)
    nan["models"][0]["load_ms"] = math.nan
    with pytest.raises(ValueError, match="not plain JSON"):
        validate_report(nan)


def test_summarize_timings_golden():
    s = summarize_timings(np.array([3, 1, 5, 2, 4]) / 1000)  # order does not matter
    # sorted 1..5 ms: p90 at position 3.6 → 4 + 0.6·(5 − 4) = 4.6; p99 at 3.96 → 4.96; std = sqrt(2)
    golden = {
        "n": 5,
        "p50_ms": 3.0,
        "p90_ms": 4.6,
        "p99_ms": 4.96,
        "mean_ms": 3.0,
        "std_ms": 1.4142,
        "min_ms": 1.0,
        "max_ms": 5.0,
        "throughput_ips": 333.3333,
    }
    assert s.keys() == golden.keys()
    for key, value in golden.items():
        assert s[key] == pytest.approx(value, abs=1e-9), key
    two = summarize_timings(np.array([0.010, 0.020]))  # p90 at 0.9 → 10 + 0.9·10 = 19; std 5
    assert (two["p50_ms"], two["p90_ms"], two["p99_ms"], two["std_ms"], two["throughput_ips"]) == pytest.approx(
        (15.0, 19.0, 19.9, 5.0, 66.6667), abs=1e-9
    )
    for bad in (np.array([]), np.array([0.001, np.nan]), np.ones((2, 2))):
        with pytest.raises(ValueError):
            summarize_timings(bad)


def test_expected_cascade_latency_golden():
    assert expected_cascade_latency(10.0, 30.0, 0.5) == pytest.approx(25.0)
    assert expected_cascade_latency(10.0, 30.0, 0.0) == pytest.approx(10.0)
    assert expected_cascade_latency(10.0, 30.0, 1.0) == pytest.approx(40.0)
    assert expected_cascade_latency(8.0, 20.0, 0.25) == pytest.approx(13.0)
    with pytest.raises(UserError, match="prevalence"):
        expected_cascade_latency(10.0, 30.0, 1.5)


def _one_line_error(call, match: str) -> None:
    with pytest.raises(UserError, match=match) as err:
        call()
    assert "\n" not in str(err.value)


def test_missing_or_corrupt_models_are_one_line_user_errors(exports, tmp_path, reseal):
    export = tmp_path / "export"
    shutil.copytree(exports[0], export)
    bench = lambda: run_bench(export, None, threads=[1], runs=1, warmup=0)  # noqa: E731
    (export / "subtype.float32.tflite").unlink()
    _one_line_error(bench, "subtype.float32.tflite: model file not found")
    shutil.copy(exports[0] / "subtype.float32.tflite", export)
    # Random bytes: refused by the export manifest before any worker starts.
    (export / "gate.int8.tflite").write_bytes(np.random.default_rng(0).bytes(4096))
    _one_line_error(bench, "gate.int8.tflite: sha256 differs from export-manifest.json")
    # Resealed (as a forger would): the worker process's load_model fails; its UserError arrives here as one line.
    reseal(export)
    _one_line_error(bench, "gate.int8.tflite: not a valid TFLite model")
    _one_line_error(lambda: run_bench(tmp_path / "nowhere", None, [1]), "export directory not found")
    _one_line_error(
        lambda: run_bench(exports[0], None, [1], images=np.zeros((2, 16, 16, 3), np.uint8)), "images must be uint8"
    )


def test_profiles_pin_and_say_what_they_are():
    cpu = {"model_name": "Some x86", "features": {"avx2": True, "avx512_vnni": False}, "board": None}
    pi4 = resolve_profile("rpi4", None, [1, 2], available=[0, 1], cpu=cpu)
    assert pi4["cpus"] == [0, 1] and pi4["threads"] == [2] and pi4["approximation"] and pi4["pinned"]
    assert "pinning approximation on this host's CPU, not a Raspberry Pi" in pi4["statement"]
    assert pi4["name"] == "rpi4-cores" and pi4["requested_as"] == "rpi4" and not pi4["on_raspberry_pi"]
    assert pi4["label"] == "host pinned to 2 cores (fewer than the 4 of an rpi4; not an ARM measurement)"
    assert pi4["statement"].startswith(pi4["label"])
    new4 = resolve_profile("rpi4-cores", None, [1], available=list(range(8)), cpu=cpu)
    assert new4["label"] == "host pinned to 4 cores (rpi4-like core count; not an ARM measurement)"
    assert "requested_as" not in new4
    assert "only 2 core(s)" in pi4["statement"] and "avx2" in pi4["statement"]
    pi5 = resolve_profile("rpi5", None, [1], available=list(range(8)), cpu=cpu)
    assert pi5["cpus"] == [0, 1, 2, 3] and pi5["threads"] == [4] and "Cortex-A76" in pi5["statement"]
    on_pi = resolve_profile("rpi5", None, [1], available=[0, 1, 2, 3], cpu={**cpu, "board": "Raspberry Pi 5 Model B"})
    assert not on_pi["approximation"] and on_pi["statement"].startswith("running on Raspberry Pi 5")
    assert on_pi["on_raspberry_pi"] and on_pi["label"] == "Raspberry Pi 5 Model B, 4 core(s) (measured on the device)"
    host = resolve_profile("host", 1, [1, 2], available=[2, 3])
    assert host["cpus"] == [2] and host["threads"] == [1, 2] and not host["approximation"]
    assert resolve_profile("host", None, [1], available=[0, 1])["pinned"] is False
    _one_line_error(lambda: resolve_profile("host", 3, [1], available=[0, 1]), "--cores 3")
    _one_line_error(lambda: resolve_profile("rpi3", None, [1]), "unknown profile")
    _one_line_error(lambda: resolve_profile("host", None, [0]), "threads")


X86_CPUINFO = """\
processor\t: 0
vendor_id\t: AuthenticAMD
model\t\t: 1
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2

processor\t: 1
vendor_id\t: AuthenticAMD
model\t\t: 1
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2
"""

PI5_CPUINFO = """\
processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x4
CPU part\t: 0xd0b
CPU revision\t: 1

processor\t: 1
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x4
CPU part\t: 0xd0b
CPU revision\t: 1

Revision\t: d04170
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""


def test_cpuinfo_x86():
    info = parse_cpuinfo(X86_CPUINFO, "x86_64")
    assert info["model_name"] == "AMD EPYC 7B12" and info["isa"] == "x86" and info["processors"] == 2
    assert info["features"] == {"avx2": True, "fma": True, "avx512f": False, "avx512_vnni": False, "avx_vnni": False}
    assert info["int8_dot_product"] is False and "no VNNI" in info["int8_note"] and info["board"] is None
    vnni = parse_cpuinfo(X86_CPUINFO.replace("bmi2", "bmi2 avx512f avx512_vnni"))
    assert vnni["int8_dot_product"] and vnni["features"]["avx512_vnni"] and not vnni["features"]["avx_vnni"]


def test_host_label_tells_an_avx2_host_from_a_vnni_one_of_the_same_name():
    avx2 = {**parse_cpuinfo(X86_CPUINFO, "x86_64"), "machine": "x86_64", "cores_available": 2}
    vnni = {**avx2, "features": {**avx2["features"], "avx512f": True, "avx512_vnni": True}}
    assert host_label(avx2) == "AMD EPYC 7B12 (x86_64; avx2, fma; 2 cores)"
    assert host_label(vnni) == "AMD EPYC 7B12 (x86_64; avx2, fma, avx512f, avx512_vnni; 2 cores)"
    assert "none of the listed flags" in host_label({**avx2, "features": {}})
    assert host_label().endswith("cores)")  # this machine's


def test_cpuinfo_arm():
    info = parse_cpuinfo(PI5_CPUINFO, "aarch64")
    assert info["model_name"] == "Cortex-A76" and info["isa"] == "arm" and info["processors"] == 2
    assert info["features"] == {"asimd": True, "asimddp": True, "i8mm": False}
    assert info["int8_dot_product"] and info["board"] == "Raspberry Pi 5 Model B Rev 1.0"
    pi4 = parse_cpuinfo(PI5_CPUINFO.replace("0xd0b", "0xd08").replace(" asimddp", ""), "aarch64")
    assert pi4["model_name"] == "Cortex-A72" and not pi4["int8_dot_product"]
    assert "no ARM dot-product" in pi4["int8_note"]
    assert parse_cpuinfo("", "aarch64")["isa"] == "arm" and parse_cpuinfo("", "riscv64")["isa"] == "unknown"


def test_bench_imports_without_tensorflow_or_click():
    code = (
        "import neurocascade.edge.bench, neurocascade.edge.cpuinfo, sys; bad = [m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tf_keras', 'keras', 'click')]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_emulated_aarch64_reads_the_arm_features_from_hwcap(monkeypatch, tmp_path):
    """Under qemu user mode /proc/cpuinfo is the x86 host's: the emulated core's features come from HWCAP."""
    (tmp_path / "cpuinfo").write_text(X86_CPUINFO)
    monkeypatch.setattr(cpuinfo.platform, "machine", lambda: "aarch64")
    monkeypatch.setenv("QEMU_CPU", "cortex-a76")
    hwcap = {"asimd": True, "asimdhp": True, "asimddp": True, "sve": False, "sve2": False, "i8mm": False, "bf16": False}
    monkeypatch.setattr(cpuinfo, "arm_hwcap", lambda: hwcap)
    info = cpu_info(tmp_path / "cpuinfo")
    assert info["emulated"] and info["isa"] == "arm" and info["machine"] == "aarch64"
    assert info["features"] == {"asimd": True, "asimddp": True, "i8mm": False} and info["int8_dot_product"]
    assert info["model_name"] == "emulated aarch64 (cortex-a76) on AMD EPYC 7B12" and "x86 host" in info["source"]
    monkeypatch.setattr(cpuinfo, "arm_hwcap", lambda: hwcap | {"asimddp": False})
    assert not cpu_info(tmp_path / "cpuinfo")["int8_dot_product"]
    monkeypatch.setattr(cpuinfo.platform, "machine", lambda: "x86_64")
    assert cpu_info(tmp_path / "cpuinfo")["emulated"] is False


@pytest.mark.parametrize(
    "isa,features,graph,family",
    [
        ("arm", {"asimd": True, "asimddp": False, "i8mm": False}, "int8", "without the dot product"),
        ("arm", {"asimd": True, "asimddp": True, "i8mm": False}, "int8", "NEON dot product (asimddp, SDOT)"),
        ("arm", {"asimd": True, "asimddp": True, "i8mm": True}, "int8", "(i8mm, SMMLA)"),
        ("arm", {"asimd": True, "asimddp": True, "i8mm": True}, "float32", "float32 NEON"),
        ("x86", {"avx2": True, "avx512_vnni": True}, "int8", "with VNNI"),
        ("x86", {"avx2": True, "avx512_vnni": False}, "int8", "without VNNI"),
        ("x86", {"avx2": True, "avx512f": False}, "float32", "AVX2/FMA"),
    ],
)
def test_kernel_family_follows_the_features_xnnpack_dispatches_on(isa, features, graph, family):
    assert family in kernel_family(graph, {"isa": isa, "features": features})


def test_under_emulation_the_bench_reports_the_path_not_times(exports, monkeypatch):
    """On an emulated aarch64 (faked here: the parent's CPU facts, which the workers get), a few runs only, and
    the table shows which path each model took, with the emulated core's kernel family."""
    pi4 = parse_cpuinfo(PI5_CPUINFO.replace("0xd0b", "0xd08").replace(" asimddp", ""), "aarch64")
    fake = {**pi4, "emulated": True, "machine": "aarch64", "cores_logical": 2, "cores_available": 2, "source": "x"}
    monkeypatch.setattr(bench, "cpu_info", lambda: fake)
    report = run_bench(exports[0], None, threads=[1], runs=50, warmup=5, profile_ops=True)
    assert report["settings"]["runs"] == bench.EMULATED_RUNS and report["settings"]["profile_ops"] is False
    assert all(r["latency"]["n"] == bench.EMULATED_RUNS and r["ops"] is None for r in report["models"])
    paths = {r["variant"]: r["xnnpack"]["path"] for r in report["models"] if r["stage"] == "gate"}
    assert paths["int8"].endswith("INT8 NEON kernels without the dot product (multiply-accumulate in 16 bits)")
    assert paths["float32"].endswith("float32 NEON kernels")
    assert any(n.startswith("emulated aarch64") for n in report["notes"])
    console = Console(record=True, width=240)
    console.print(bench_table(report))
    text = console.export_text()
    assert "not its speed" in text and "without the dot product" in text and "p50 ms" not in text
