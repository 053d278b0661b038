"""The CPU a benchmark ran on: model name and the instruction-set features that decide INT8 speed.

    info = cpu_info()                       # this machine (/proc/cpuinfo, platform, affinity)
    info = parse_cpuinfo(text)              # a fixed /proc/cpuinfo text (tests)
    info["int8_dot_product"]                # True: VNNI (x86) or dotprod (ARM) is there, INT8 can beat float

A latency figure means little without these: XNNPACK's INT8 kernels only have a fast path with int8 dot-product
instructions (x86 AVX512-VNNI / AVX-VNNI, ARM `asimddp`; `i8mm` adds int8 matrix multiply on newer ARM cores).
Without them INT8 runs about as fast as float32 (see ../shared/notes/qat-efficientnet.md). Linux only reads
/proc/cpuinfo; elsewhere the features are empty and `source` says so.

Under qemu user-mode emulation of aarch64 (`make check-aarch64`), /proc/cpuinfo is the x86 host's while the
process is aarch64: `cpu_info` then says `emulated` and takes the ARM features from the auxiliary vector
(getauxval(AT_HWCAP / AT_HWCAP2)), which qemu does emulate and which XNNPACK reads to choose its kernels.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
from pathlib import Path

# The flags that matter for XNNPACK's INT8 and float kernels, in the order they are shown.
X86_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni")
ARM_FEATURES = ("asimd", "asimddp", "i8mm")
X86_DOT = ("avx512_vnni", "avx_vnni")
ARM_DOT = ("asimddp",)
# Linux arm64 HWCAP bits (arch/arm64/include/uapi/asm/hwcap.h) of the features above and of float16 arithmetic.
AT_HWCAP, AT_HWCAP2 = 16, 26
HWCAP_BITS = {"asimd": 1 << 1, "asimdhp": 1 << 10, "asimddp": 1 << 20, "sve": 1 << 22}
HWCAP2_BITS = {"sve2": 1 << 1, "i8mm": 1 << 13, "bf16": 1 << 14}

# aarch64 /proc/cpuinfo has no model name: ARM Ltd. (implementer 0x41) part numbers of common cores.
ARM_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",
    "0xd0d": "Cortex-A77",
    "0xd41": "Cortex-A78",
    "0xd44": "Cortex-X1",
    "0xd46": "Cortex-A510",
    "0xd47": "Cortex-A710",
    "0xd48": "Cortex-X2",
    "0xd4d": "Cortex-A715",
    "0xd4e": "Cortex-X3",
}


def _blocks(text: str) -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per blank-line separated block ("key\t: value" lines)."""
    blocks, current = [], {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current[key.strip().lower()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def parse_cpuinfo(text: str, machine: str | None = None) -> dict:
    """Model name, ISA family, the relevant features (present or not) and the processor count from a cpuinfo text.

    `machine` (platform.machine()) picks x86 or ARM when the text alone does not say; otherwise the text decides:
    a `flags` line is x86, a `Features` line is ARM.
    """
    blocks = _blocks(text)
    merged: dict[str, str] = {}
    for block in blocks:
        for key, value in block.items():
            merged.setdefault(key, value)
    processors = sum(1 for b in blocks if "processor" in b and b["processor"].isdigit())
    if "flags" in merged:
        isa = "x86"
    elif "features" in merged:
        isa = "arm"
    else:
        m = (machine or "").lower()
        isa = (
            "x86"
            if m in ("x86_64", "amd64", "i686", "i386")
            else "arm"
            if m.startswith(("arm", "aarch"))
            else "unknown"
        )
    present = (
        set((merged.get("flags") if isa == "x86" else merged.get("features", "")).split())
        if isa != "unknown"
        else set()
    )
    wanted, dot = (X86_FEATURES, X86_DOT) if isa == "x86" else (ARM_FEATURES, ARM_DOT) if isa == "arm" else ((), ())

    name = merged.get("model name")
    if isa == "arm" and (not name or name.lower().startswith("armv")):
        part = merged.get("cpu part", "").lower()
        core = ARM_PARTS.get(part) if merged.get("cpu implementer", "").lower() == "0x41" else None
        name = core or name or (f"ARM part {part}" if part else None)
    board = merged.get("model") if isa == "arm" else None  # Raspberry Pi kernels: "Model : Raspberry Pi 5 ..."
    if board and re.fullmatch(r"\d+", board):
        board = None  # x86-style numeric "model" field, not a board name
    has_dot = any(f in present for f in dot)
    return {
        "model_name": name or "unknown",
        "isa": isa,
        "features": {f: f in present for f in wanted},
        "int8_dot_product": has_dot,
        "int8_note": _int8_note(isa, has_dot, present),
        "processors": processors or None,
        "board": board,
    }


def _int8_note(isa: str, has_dot: bool, present: set[str]) -> str:
    if isa == "x86":
        if has_dot:
            return "int8 dot-product instructions (VNNI) present: XNNPACK's INT8 kernels have a fast path"
        return (
            "no VNNI int8 dot-product instructions: XNNPACK's INT8 kernels have no fast path here, "
            "expect INT8 about as fast as float32 "
            "(`predict --backend auto` runs float32 unless INT8 is clearly faster)"
        )
    if isa == "arm":
        if has_dot:
            extra = " and i8mm" if "i8mm" in present else ""
            return f"ARM dot-product (asimddp){extra} present: INT8 should clearly beat float32"
        return (
            "no ARM dot-product (asimddp): INT8 gains little over float32 beyond memory traffic "
            "(`predict --backend auto` runs float32 unless INT8 is clearly faster)"
        )
    return "instruction-set features unknown on this platform"


def _board() -> str | None:
    try:
        return Path("/proc/device-tree/model").read_text().strip("\x00\n ") or None
    except OSError:
        return None


def available_cpus() -> list[int]:
    """The CPU ids this process may run on (its affinity mask; all CPUs where that is not supported)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def arm_hwcap() -> dict[str, bool] | None:
    """The arm64 HWCAP features of this process (getauxval), None off Linux arm64 or where libc has no getauxval."""
    if platform.system() != "Linux" or not platform.machine().lower().startswith(("aarch64", "arm64")):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.getauxval.restype = ctypes.c_ulong
        libc.getauxval.argtypes = [ctypes.c_ulong]
        hw, hw2 = libc.getauxval(AT_HWCAP), libc.getauxval(AT_HWCAP2)
    except (OSError, AttributeError):
        return None
    return {
        **{k: bool(hw & bit) for k, bit in HWCAP_BITS.items()},
        **{k: bool(hw2 & bit) for k, bit in HWCAP2_BITS.items()},
    }


def emulated_arm(info: dict, hwcap: dict[str, bool] | None) -> dict:
    """`info` parsed from an x86 /proc/cpuinfo in an aarch64 process (qemu user mode), made the emulated ARM CPU's.

    The features come from `hwcap`; the name says it is emulated, which core qemu was asked for (QEMU_CPU) and the
    host it runs on. Times measured here are qemu's translation of ARM code on the host, not an ARM CPU's.
    """
    present = {k for k, on in (hwcap or {}).items() if on}
    has_dot = any(f in present for f in ARM_DOT)
    core = os.environ.get("QEMU_CPU", "qemu's default CPU")
    return {
        **info,
        "model_name": f"emulated aarch64 ({core}) on {info['model_name']}",
        "isa": "arm",
        "features": {f: f in present for f in ARM_FEATURES},
        "int8_dot_product": has_dot,
        "int8_note": _int8_note("arm", has_dot, present)
        + ("" if hwcap is not None else "; HWCAP unreadable, features unknown"),
        "board": None,
        "emulated": True,
    }


def cpu_info(path: str | Path = "/proc/cpuinfo") -> dict:
    """`parse_cpuinfo` of this machine plus platform.machine(), logical and available core counts, and whether it
    is an emulated aarch64 (`emulated_arm`)."""
    machine = platform.machine()
    try:
        text, source = Path(path).read_text(errors="replace"), str(path)
    except OSError:
        text, source = "", f"{path} not readable: features unknown"
    info = parse_cpuinfo(text, machine)
    if info["model_name"] == "unknown" and platform.processor():
        info["model_name"] = platform.processor()
    info["board"] = info["board"] or _board()
    info["emulated"] = False
    if machine.lower().startswith(("aarch64", "arm64")) and info["isa"] == "x86":
        info = emulated_arm(info, arm_hwcap())
        source = f"{source} is the x86 host's (qemu user mode): features from getauxval(AT_HWCAP)"
    return {
        **info,
        "machine": machine,
        "cores_logical": os.cpu_count(),
        "cores_available": len(available_cpus()),
        "source": source,
    }


def host_label(info: dict | None = None) -> str:
    """This machine (or `info`, a `cpu_info()`) in one line that tells two hosts apart where their speed differs:
    model, architecture, the listed flags present, cores available. A wall time is a measurement of one of them:
    the results ledger records it per stage and the page names it."""
    info = info or cpu_info()
    flags = ", ".join(f for f, present in info["features"].items() if present) or "none of the listed flags"
    return f"{info['model_name']} ({info['machine']}; {flags}; {info['cores_available']} cores)"
