"""The `mirrored` strategy path runs end to end on two logical CPU devices (in a subprocess: logical
devices must be configured before TensorFlow initialises)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from neurocascade.tf import tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from neurocascade.data.phantoms import write_phantom_dataset
    from neurocascade.hierarchy.run import make_strategy, train_models
    from neurocascade.config import load_config
    tmp = Path(sys.argv[1])
    cfg = load_config("configs/test.toml", ["train.strategy=mirrored", "train.phase1_epochs=2", "train.phase2_epochs=1"])
    write_phantom_dataset(tmp / "ds", 12, 64, 0, 0.25, 0.2)
    replicas = make_strategy("mirrored").num_replicas_in_sync
    summary = train_models(cfg, ("flat",), tmp / "run", data=str(tmp / "ds"), cache_root=tmp / "cache")
    print(json.dumps({"replicas": replicas, "epochs": summary["stages"]["flat"]["phase1"]["epochs"]}))
""")


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"replicas": 2, "epochs": 2}
