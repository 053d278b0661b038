"""What the emulated aarch64 Python sees: machine, versions, no TensorFlow, the CPU features XNNPACK will read.

Run inside the arm64 root by scripts/check-aarch64.sh (under QEMU_CPU=...); prints one JSON object. /proc/cpuinfo
there is the x86 host's (qemu 7.2 does not emulate it for aarch64), so the features come from the auxiliary vector
(getauxval(AT_HWCAP / AT_HWCAP2)), which qemu does emulate and which XNNPACK's cpuinfo reads on Linux.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
from importlib import metadata

AT_HWCAP, AT_HWCAP2 = 16, 26
HWCAP = {"asimd": 1 << 1, "asimddp": 1 << 20, "asimdhp": 1 << 10, "sve": 1 << 22}
HWCAP2 = {"i8mm": 1 << 13, "bf16": 1 << 14, "sve2": 1 << 1}


def features() -> dict[str, bool]:
    """The arm64 HWCAP bits that decide XNNPACK's INT8 kernels (dot product, i8mm) and float16 arithmetic."""
    libc = ctypes.CDLL(None)
    libc.getauxval.restype = ctypes.c_ulong
    hw, hw2 = libc.getauxval(AT_HWCAP), libc.getauxval(AT_HWCAP2)
    return {**{k: bool(hw & bit) for k, bit in HWCAP.items()}, **{k: bool(hw2 & bit) for k, bit in HWCAP2.items()}}


def main() -> None:
    names = {d.metadata["Name"].lower() for d in metadata.distributions()}
    print(
        json.dumps(
            {
                "machine": platform.machine(),
                "python": platform.python_version(),
                "qemu_cpu": os.environ.get("QEMU_CPU", "max (qemu's default)"),
                "tensorflow_installed": any(n.startswith("tensorflow") or n in ("tf-keras", "keras") for n in names),
                "packages": {p: metadata.version(p) for p in ("numpy", "pillow", "click", "rich", "ai-edge-litert")},
                "hwcap": features(),
            }
        )
    )


if __name__ == "__main__":
    main()
