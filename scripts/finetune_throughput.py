#!/usr/bin/env python
"""What fine-tuning on fresh augmentation would cost here: images/s of EfficientNetLite2 forward passes and of
training steps with the top k blocks trainable (issue 13). Random pixels, batch 32, after a warm-up batch.

    python scripts/finetune_throughput.py [IMAGE_SIZE] [K ...]      # default: 260, then k = 3 8 99
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from neurocascade.config import load_config  # noqa: E402
from neurocascade.models.build import build_classifier, set_trainable_top_blocks  # noqa: E402
from neurocascade.models.registry import get_backbone  # noqa: E402
from neurocascade.models.weights import resolve_weights  # noqa: E402
from neurocascade.paths import resolve_config, weight_dirs  # noqa: E402
from neurocascade.tf import keras  # noqa: E402

BATCH, BATCHES = 32, 3


def main(argv: list[str]) -> None:
    size = int(argv[0]) if argv else 260
    cfg = load_config(resolve_config("lite2"), [f"data.image_size={size}"])
    spec = get_backbone(cfg.model.backbone)
    source = resolve_weights(spec, "imagenet", weight_dirs(cfg.model.weights_dir), False, "error")
    model = build_classifier(cfg.model, 3, size, source)
    rng = np.random.default_rng(0)
    x = (rng.random((BATCH, size, size, 3)) * 255).astype(np.float32)
    y = rng.integers(0, 3, BATCH)
    model.predict(x, batch_size=BATCH, verbose=0)
    start = time.perf_counter()
    for _ in range(BATCHES):
        model.predict(x, batch_size=BATCH, verbose=0)
    print(f"{size} px forward: {BATCH * BATCHES / (time.perf_counter() - start):.1f} images/s", flush=True)
    for k in [int(a) for a in argv[1:]] or [3, 8, 99]:
        set_trainable_top_blocks(model, spec, k)
        model.compile(keras.optimizers.Adam(1e-5), "sparse_categorical_crossentropy")
        model.train_on_batch(x, y)
        start = time.perf_counter()
        for _ in range(BATCHES):
            model.train_on_batch(x, y)
        print(f"{size} px, top {k} blocks trainable: {BATCH * BATCHES / (time.perf_counter() - start):.1f} images/s")


if __name__ == "__main__":
    main(sys.argv[1:])
