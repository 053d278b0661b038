"""The one place TensorFlow is imported: Keras 2 (`tf_keras`) is selected before TensorFlow loads.

TFMOT (quantization-aware training) rejects Keras 3, so `TF_USE_LEGACY_KERAS=1` must be set before the
first `import tensorflow` anywhere in the process. Import `tf` and `keras` from here, never directly.
"""
from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide CUDA-not-found noise on CPU machines

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras"]
