"""The one place TensorFlow is imported: Keras 2 (`tf_keras`) is selected before TensorFlow loads.

TFMOT (quantization-aware training) rejects Keras 3, so `TF_USE_LEGACY_KERAS=1` must be set before the
first `import tensorflow` anywhere in the process. Import `tf` and `keras` from here, never directly.

TensorFlow's C++ runtime prints CUDA-not-found and oneDNN notices straight to file descriptor 2 while it
loads and probes devices, before `TF_CPP_MIN_LOG_LEVEL` takes effect; they are held back here and shown
only if the import fails, so a CPU user's terminal shows results, not noise.
"""

from __future__ import annotations

import os
import sys
import tempfile

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_quietly():
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
            import tf_keras

            tensorflow.config.list_physical_devices()  # device probing prints too; do it now
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tensorflow, tf_keras


tf, keras = _import_quietly()

__all__ = ["tf", "keras"]
