"""Decode every image once: byte hash, perceptual hashes (direct and mirrored) and, if asked, the model input.

Decoding dominates the cost of both the audit and training input, so one pass over the files serves both,
spread over `workers` processes. A file that cannot be read is reported with its reason, never fatal.

    scans = scan_files(paths, hash_size=16, size=260, workers=2)
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, Sequence

import imagehash
import numpy as np
from PIL import Image

from neurocascade.data.dicom import content_sha256
from neurocascade.data.images import BadImage, read_gray, to_model_input


@dataclass(frozen=True)
class FileScan:
    """What one decode of one file gives; `error` is set (and the rest empty) for an unreadable file."""

    path: str
    sha256: str = ""
    dhash: np.ndarray | None = None  # packed bits, uint8 (hash_size**2 / 8,)
    dhash_mirror: np.ndarray | None = None  # the same for the left-right mirrored image
    pixels: np.ndarray | None = None  # uint8 (size, size, 3) model input, when a size was asked for
    error: str = ""


def gradient_hash(gray: np.ndarray, hash_size: int) -> np.ndarray:
    """Packed difference hash of `hash_size`² bits (imagehash.dhash: resize to (n+1)×n, compare neighbours)."""
    bits = imagehash.dhash(Image.fromarray(gray), hash_size=hash_size).hash
    return np.packbits(bits.ravel())


def scan_file(
    path: str,
    hash_size: int = 16,
    min_side: int = 1,
    size: int | None = None,
    clahe: bool = False,
    clahe_clip: float = 2.0,
) -> FileScan:
    """Hash one file and, with `size`, preprocess it for the model."""
    try:
        sha256 = content_sha256(path)  # a multi-frame DICOM's frames hash apart (data.dicom)
        gray = read_gray(path, min_side=min_side)
    except FileNotFoundError:
        return FileScan(path, error="file not found")
    except (BadImage, OSError) as exc:
        return FileScan(path, error=str(exc) or type(exc).__name__)
    pixels = to_model_input(gray, size, clahe=clahe, clahe_clip=clahe_clip) if size else None
    return FileScan(
        path=path,
        sha256=sha256,
        dhash=gradient_hash(gray, hash_size),
        dhash_mirror=gradient_hash(np.ascontiguousarray(gray[:, ::-1]), hash_size),
        pixels=pixels,
    )


def scan_files(
    paths: Sequence[str],
    hash_size: int = 16,
    min_side: int = 1,
    size: int | None = None,
    clahe: bool = False,
    clahe_clip: float = 2.0,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
    cache_dir: Path | None = None,
) -> list[FileScan]:
    """`scan_file` over many paths in order; `progress(1)` after each file. With `cache_dir`, files whose content
    was scanned before with the same settings are read from `neurocascade.data.decoded_cache` instead of decoded."""
    from neurocascade.data.decoded_cache import ScanCache

    settings = {"hash_size": hash_size, "min_side": min_side, "size": size, "clahe": clahe, "clahe_clip": clahe_clip}
    cache = ScanCache(cache_dir, **settings) if cache_dir is not None else None
    results: list[FileScan | None] = [cache.get(path) for path in paths] if cache else [None] * len(paths)
    if progress:
        for _ in range(sum(r is not None for r in results)):
            progress(1)
    todo = [k for k, r in enumerate(results) if r is None]
    for k, scan in zip(todo, _scan_all([paths[k] for k in todo], settings, workers, progress)):
        results[k] = scan
        if cache:
            cache.put(scan)
    return results  # type: ignore[return-value]  (every slot filled above)


def _scan_all(
    paths: Sequence[str], settings: dict, workers: int, progress: Callable[[int], None] | None
) -> Iterator[FileScan]:
    work = partial(scan_file, **settings)
    if workers <= 1 or len(paths) < 64:
        for path in paths:
            yield work(path)
            if progress:
                progress(1)
        return
    # spawn, not fork: the parent may already hold TensorFlow's threads, which fork does not survive.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for scan in pool.map(work, paths, chunksize=16):
            yield scan
            if progress:
                progress(1)
