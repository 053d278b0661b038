"""`scan_file`'s results stored by file content, so a dataset is decoded once, not by every command that loads it.

Every command loads the dataset again — train, export, eval, seven loads per protocol of `make results` — and
decoding, hashing and resizing the 3,264 JPEGs of the real data costs 13–20 s of both cores each time. A scan
depends only on the file's bytes, the scan settings and the code that decodes: the cache keys an entry by the
file's content hash inside a folder keyed by the settings, the source of the decoding modules and the versions of
the libraries they call, so editing the preprocessing or upgrading Pillow starts a new folder instead of reading
stale pixels. An entry is the raw bytes of the two hashes and the pixels, whose shapes the folder's settings fix (nothing in a
cache file is parsed beyond its length); one of the wrong length counts as missing and is written again. Unreadable images are
never cached: they are decoded, and reported, every time.

    cache = ScanCache(root, hash_size=16, min_side=32, size=320, clahe=False, clahe_clip=2.0)
    scan = cache.get(path)      # a FileScan, or None when not cached
    cache.put(scan)             # after scanning it
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from neurocascade.data.dicom import content_sha256
from neurocascade.data.scan import FileScan
from neurocascade.io import atomic_write_bytes

_DECODING_MODULES = ("images.py", "scan.py", "dicom.py")  # what turns a file into a scan, beside this folder
_LIBRARIES = ("numpy", "PIL", "imagehash", "cv2", "pydicom")
FORMAT = "scan-raw-v1"  # dhash, mirrored dhash, then the uint8 pixels, row-major


def _library_versions() -> dict[str, str]:
    import importlib

    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = str(getattr(importlib.import_module(name), "__version__", "?"))
        except ImportError:
            versions[name] = "absent"
    return versions


def _code_digest() -> str:
    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in _DECODING_MODULES:
        h.update((here / name).read_bytes())
    return h.hexdigest()


class ScanCache:
    """Scans of one set of settings under `root`, one file per content hash (module doc)."""

    def __init__(
        self,
        root: Path,
        hash_size: int,
        min_side: int,
        size: int | None,
        clahe: bool,
        clahe_clip: float,
    ):
        self.hash_bytes, self.size = hash_size**2 // 8, size
        key = {
            "settings": {
                "hash_size": hash_size,
                "min_side": min_side,
                "size": size,
                "clahe": clahe,
                "clahe_clip": clahe_clip,
            },
            "code": _code_digest(),
            "libraries": _library_versions(),
            "format": FORMAT,
        }
        text = json.dumps(key, indent=2, sort_keys=True)
        self.dir = Path(root) / hashlib.sha256(text.encode()).hexdigest()[:16]
        self.read_only = False
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if not (self.dir / "key.json").exists():
                atomic_write_bytes(self.dir / "key.json", text.encode(), durable=False)
        except OSError:  # entries already there can still be read
            self.read_only = True

    def _path(self, sha256: str) -> Path:
        return self.dir / f"{sha256}.bin"

    def get(self, path: str) -> FileScan | None:
        """The cached scan of the file at `path` (its content decides), or None."""
        try:
            sha256 = content_sha256(path)
            data = bytearray(self._path(sha256).read_bytes())
        except OSError:  # not cached, or the file itself is unreadable: scan_file reports that
            return None
        pixels_bytes = 0 if self.size is None else self.size * self.size * 3
        if len(data) != 2 * self.hash_bytes + pixels_bytes:  # truncated or of other settings: decode again
            return None
        row = np.frombuffer(data, dtype=np.uint8)
        h = self.hash_bytes
        pixels = None if self.size is None else row[2 * h :].reshape(self.size, self.size, 3)
        return FileScan(path=path, sha256=sha256, dhash=row[:h], dhash_mirror=row[h : 2 * h], pixels=pixels)

    def put(self, scan: FileScan) -> None:
        """Store a successful scan (an unreadable file's is not stored: module doc)."""
        if scan.error or scan.dhash is None or scan.dhash_mirror is None or self.read_only:
            return
        parts = [scan.dhash, scan.dhash_mirror] + ([] if scan.pixels is None else [scan.pixels])
        try:
            data = b"".join(np.ascontiguousarray(p, np.uint8).tobytes() for p in parts)
            atomic_write_bytes(self._path(scan.sha256), data, durable=False)
        except OSError:  # a full disk or a folder without write permission: decoding still works, uncached
            self.read_only = True
