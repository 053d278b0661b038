"""`predict --backend auto`: run whichever of an export's two files is faster on this host, timed at load.

INT8 is the export's point where the CPU has int8 dot-product instructions (about 2× float32 at one thread on an
AVX-512 VNNI host, docs/RESULTS.md section 5). On an x86 CPU with AVX2 alone XNNPACK's INT8 kernels are no faster
than its float32 ones (0.84–1.22× measured, docs/results-reading.md), and the float32 file carries the Keras
model's own numbers where INT8 only approximates them (top-1 agreement 0.97–0.99). So `auto` times both files on
this host, in turns and with the threads predict will use, and keeps INT8 only when it is faster by `INT8_MARGIN`:
a tie goes to float32, which loses nothing. The choice is printed; `--backend tflite-int8` / `tflite-float` pins
it, so a result can be reproduced on another host.

    predictor, choice = load_fastest("runs/NAME/export", num_threads=1)
    choice.variant        # "int8" or "float32"
    choice.text()         # "auto: float32 on this host (1 thread(s), median ms per image: int8 21.3, ...)"
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from neurocascade.edge.predict import Predictor, load_predictor
from neurocascade.edge.runtime import VARIANTS, Cascade

# INT8 must be at least this much faster than float32 to be chosen. Where INT8 pays it pays about 2× (1.97–2.42× on
# an AVX-512 VNNI host, docs/RESULTS.md section 5); where it does not, the timing at load scatters around 1 (0.92–1.14×
# over 30 loads on an AVX2-only host whose steady state was 0.96–1.03×), and a margin of 1.10 let 4 of 10 loads
# there pick INT8 and the next pick float32: a choice that flips from one run to the next.
INT8_MARGIN = 1.25
# Timed in rounds, a few images of one file then of the other: a neighbour's load or a clock change then slows both
# files alike instead of whichever happened to be timed second (timed one after the other, the same pair of files
# came out 1.20× one run and 0.86× another on one AVX2 host). Each turn starts with one untimed image: it brings
# the file's weights back into the caches the other file evicted (timed image by image in turns, the flat INT8
# model measured 0.94–0.97× float32 where predict over 394 images ran it 1.0–1.2× faster).
ROUNDS = 3
WARM_RUNS = 1  # untimed, at the start of each turn
TIMED_RUNS = 3  # per turn: 9 timed images per file in all
Timer = Callable[[Predictor, np.ndarray], float]  # milliseconds of one image through the predictor


@dataclass(frozen=True)
class VariantChoice:
    """Which file `auto` runs, and the median milliseconds per image of each that decided it."""

    variant: str
    ms: dict[str, float]
    threads: int | None

    def text(self) -> str:
        """One line for the terminal: the choice, the timings and the rule."""
        threads = "LiteRT's default threads" if self.threads is None else f"{self.threads} thread(s)"
        timings = ", ".join(f"{v} {self.ms[v]:.1f}" for v in VARIANTS)
        speedup = self.ms["float32"] / self.ms["int8"]
        return (
            f"auto: {self.variant} on this host ({threads}, median ms per image: {timings}; INT8 {speedup:.2f}× "
            f"float32, kept only at ≥ {INT8_MARGIN:.2f}×); --backend tflite-int8 / tflite-float pins it"
        )


def choose_variant(ms: dict[str, float], margin: float = INT8_MARGIN) -> str:
    """The variant to run: INT8 when its median is at least `margin` times faster than float32's; float32 on a
    tie or anything closer, since it loses nothing there."""
    return "int8" if ms["int8"] * margin <= ms["float32"] else "float32"


def probe_image(size: int) -> np.ndarray:
    """A fixed uint8 image (1, size, size, 3), a smooth gradient: XNNPACK's time does not depend on the pixels,
    and a fixed input keeps the timing free of any file the user passes."""
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    gray = ((ramp[:, None] + ramp[None, :]) / 2).astype(np.uint8)
    return np.repeat(gray[None, :, :, None], 3, axis=3)


def run_ms(predictor: Predictor, image: np.ndarray) -> float:
    """Wall time of one image through the whole predictor; a cascade runs its subtype model too (the image's gate
    score must not decide what is timed)."""
    start = time.perf_counter()
    if isinstance(predictor, Cascade):
        predictor.predict(image, subtype_for_all=True)
    else:
        predictor.predict(image)
    return (time.perf_counter() - start) * 1000


def median_ms(predictors: dict[str, Predictor], timer: Timer = run_ms) -> dict[str, float]:
    """Each predictor's median milliseconds per image, timed in `ROUNDS` turns (see `ROUNDS`)."""
    images = {variant: probe_image(p.size) for variant, p in predictors.items()}
    times: dict[str, list[float]] = {variant: [] for variant in predictors}
    for _ in range(ROUNDS):
        for variant, predictor in predictors.items():
            for run in range(WARM_RUNS + TIMED_RUNS):
                ms = timer(predictor, images[variant])
                if run >= WARM_RUNS:
                    times[variant].append(ms)
    return {variant: float(np.median(t)) for variant, t in times.items()}


def load_fastest(
    models_dir: str | Path, num_threads: int | None = None, timer: Timer = run_ms
) -> tuple[Predictor, VariantChoice]:
    """The export's predictor in the variant `choose_variant` picks on this host, and the choice with its
    timings; each variant is loaded (and verified) as `load_predictor` does, and the other one dropped."""
    predictors = {variant: load_predictor(models_dir, variant, num_threads) for variant in VARIANTS}
    ms = median_ms(predictors, timer)
    choice = VariantChoice(choose_variant(ms), ms, num_threads)
    return predictors[choice.variant], choice
