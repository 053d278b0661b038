#!/usr/bin/env python
"""Which of two or more .tflite files is faster, when the difference is smaller than edge-bench's run-to-run noise.

`edge-bench` times one model after another; on a shared 2-core host the same file's 1-thread speed-up moved by up to
0.45 between two runs (stop 58), so a 0.3 ms change in a 7 ms model is invisible to it. This times the files in
alternating blocks (each file `--per-block` invokes, then the next, `--blocks` times), so slow moments of the host
fall on all of them alike, and prints each file's median and 10th percentile. One image of random pixels per file
(latency does not depend on pixel values), LiteRT with XNNPACK at `--threads`, after `--warmup` invokes.

    python scripts/ab_latency.py runs/A/export/subtype.int8.tflite runs/B/export/subtype.int8.tflite
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def interleaved_ms(paths: list[Path], threads: int, blocks: int, per_block: int, warmup: int) -> list[np.ndarray]:
    """Each file's invoke times in ms, taken in alternating blocks (edge-bench's `time_alternating`)."""
    from ai_edge_litert.interpreter import Interpreter

    from neurocascade.edge.bench import time_alternating

    invokes = []
    for path in paths:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        pixels = np.random.default_rng(0).integers(0, 256, detail["shape"])
        interpreter.set_tensor(detail["index"], pixels.astype(detail["dtype"]))
        invokes.append(lambda _, interpreter=interpreter: interpreter.invoke())
    return [t * 1e3 for t in time_alternating(invokes, [None], blocks, per_block, warmup)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--per-block", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    for path, ms in zip(args.files, interleaved_ms(args.files, args.threads, args.blocks, args.per_block, args.warmup)):
        print(f"{np.median(ms):8.3f} ms p50 {np.percentile(ms, 10):8.3f} ms p10  {len(ms)} invokes  {path}")


if __name__ == "__main__":
    main()
