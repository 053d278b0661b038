"""What the emulated aarch64 Python sees: machine, versions, no TensorFlow, the CPU features XNNPACK will read.

Run inside the arm64 root by scripts/check-aarch64.sh (under QEMU_CPU=...); prints one JSON object. /proc/cpuinfo
there is the x86 host's (qemu 7.2 does not emulate it for aarch64), so the features come from the auxiliary vector
(getauxval(AT_HWCAP / AT_HWCAP2)), which qemu does emulate and which XNNPACK's cpuinfo reads on Linux.
"""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata

from neurocascade.edge.cpuinfo import arm_hwcap  # the bundle's code (PYTHONPATH): the same reader edge-bench uses


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
                "hwcap": arm_hwcap(),
            }
        )
    )


if __name__ == "__main__":
    main()
