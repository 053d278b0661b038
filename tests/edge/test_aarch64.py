"""The aarch64 check (scripts/check-aarch64.sh) on the tiny exported run: marked slow, so `make test` skips it.

    pytest -m slow tests/edge/test_aarch64.py

Minutes: an arm64 Debian root is built once (kept in runs/.cache/aarch64), the bundle's requirements are installed
there from PyPI, and predict runs under qemu. Skipped where qemu-aarch64-static is missing or we are not root
(chroot, binfmt_misc and apt need root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("qemu-aarch64-static") is None,
        reason="qemu-aarch64-static not installed (apt-get install qemu-user-static)",
    ),
    pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root (chroot, binfmt_misc)"),
]


def test_bundle_predicts_on_aarch64_as_on_x86(exported, phantom_root, tmp_path):
    out = tmp_path / "check"
    env = {
        **os.environ,
        "PY": sys.executable,
        "RUN": str(exported["cascade"][0]),
        "IMAGES": str(phantom_root / "Testing"),
        "OUT": str(out),
    }
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "check-aarch64.sh")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert (out / "result.json").is_file(), proc.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert proc.returncode == 0 and result["passed"], json.dumps(result, indent=1)[:3000]
    assert set(result["checks"]) == {"cortex-a72", "cortex-a76"}
    for cpu, check in result["checks"].items():
        assert check["same_labels"] and check["same_tau_decisions"] and check["max_abs_prob_diff"] <= 1 / 256 + 1e-6
        seen = result["run"]["aarch64"][cpu]
        assert seen["machine"] == "aarch64" and not seen["tensorflow_installed"] and seen["xnnpack_delegate_created"]
        assert seen["hwcap"]["asimddp"] == (cpu == "cortex-a76")  # XNNPACK's INT8 path without and with dot product
