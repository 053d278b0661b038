"""Config → audited, split dataset: the one entry point of the data layer for every command.

Scan every file once (hashes and, for training, the model input), audit copies, then assign roles under
the configured protocol. Unreadable files are skipped with a count, never fatal.

    ds = load_dataset(cfg)                 # pixels for training and evaluation
    ds = load_dataset(cfg, pixels=False)   # just the audit (`cli.py audit-data`)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from neurocascade.data.audit import Pair, copy_groups, find_pairs, summarize
from neurocascade.data.layout import CLASSES, Sample, discover, fingerprint
from neurocascade.data.scan import FileScan, scan_files
from neurocascade.data.split import assign_roles, split_groups
from neurocascade.config import Config
from neurocascade.errors import DataError
from neurocascade.paths import cache_root

SHOWN_SKIPPED = 3  # unreadable images named on the console; audit.json lists them all
SHEET_MARGIN_BITS = 8  # pairs up to threshold + this are kept, so the contact sheet shows both sides of it


@dataclass
class PreparedData:
    """Readable samples with their scans, copy pairs and roles, plus the audit and split summaries."""

    root: str  # the folder image paths are relative to (a CSV manifest's folder)
    samples: list[Sample]
    scans: list[FileScan]
    pairs: list[Pair]
    roles: np.ndarray
    audit: dict
    split: dict
    fingerprint: str
    skipped: list[dict] = field(default_factory=list)
    groups: np.ndarray | None = None  # copy/patient group per sample: what must stay on one side of any split
    source: str = ""  # what was loaded: the dataset folder or the CSV manifest; what a run records to reload

    def __post_init__(self) -> None:
        self.source = self.source or self.root

    def indices(self, role: str) -> np.ndarray:
        return np.flatnonzero(self.roles == role)

    def labels(self, role: str) -> np.ndarray:
        """Class indices (into CLASSES) of the images with `role`."""
        return np.array([CLASSES.index(self.samples[k].label) for k in self.indices(role)], dtype=np.int32)

    def images(self, role: str) -> np.ndarray:
        """uint8 (N, size, size, 3) model inputs of the images with `role`."""
        idx = self.indices(role)
        if len(idx) and self.scans[idx[0]].pixels is None:
            raise RuntimeError("dataset was loaded with pixels=False")
        size = self.scans[0].pixels.shape[0] if len(self.scans) and self.scans[0].pixels is not None else 0
        return np.stack([self.scans[k].pixels for k in idx]) if len(idx) else np.zeros((0, size, size, 3), np.uint8)

    def split_hashes(self) -> dict[str, str]:
        """A short hash of the sorted relative paths of each role: proves two runs used the same split."""
        out = {}
        for role in ("train", "val", "test", "dropped"):
            names = sorted(str(Path(self.samples[k].path).relative_to(self.root)) for k in self.indices(role))
            out[role] = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
        return out


def dataset_root(cfg: Config, data: str | None = None) -> Path:
    """The dataset path: `--data` if given, else `data.manifest` or `data.root` from the config."""
    chosen = data or cfg.data.manifest or cfg.data.root
    return Path(chosen)


def skipped_message(source: str | Path, base: str | Path, skipped: list[dict], total: int) -> str:
    """One line naming the first few unreadable images and how many there are: a count alone in a manifest
    hides which files to fix."""
    shown = [f"{os.path.relpath(s['path'], base)} ({s['reason']})" for s in skipped[:SHOWN_SKIPPED]]
    more = f" and {len(skipped) - len(shown)} more" if len(skipped) > len(shown) else ""
    return f"{source}: skipped {len(skipped)} of {total} images as unreadable or too small: {'; '.join(shown)}{more}"


def _console_warning(message: str) -> None:
    from neurocascade.console import warn

    warn(message)


def scan_readable(
    samples: list[Sample],
    cfg: Config,
    source: Path,
    base: Path,
    warn: Callable[[str], None],
    pixels: bool = True,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[Sample], list[FileScan], list[dict]]:
    """Scan `samples` as a run prepares them (hashes, and the model input when `pixels`): the readable ones with
    their scans, and the unreadable ones ({path, reason}), named through `warn`. None readable is a DataError."""
    scans = scan_files(
        [s.path for s in samples],
        hash_size=cfg.audit.hash_size,
        min_side=cfg.data.min_side,
        size=cfg.data.image_size if pixels else None,
        clahe=cfg.data.clahe,
        clahe_clip=cfg.data.clahe_clip,
        workers=cfg.data.workers,
        progress=progress,
        cache_dir=cache_root() / "scans" if cfg.data.scan_cache else None,
    )
    skipped = [{"path": s.path, "reason": s.error} for s in scans if s.error]
    keep = [k for k, s in enumerate(scans) if not s.error]
    if not keep:
        raise DataError(
            f"{source}: none of the {len(samples)} images could be read "
            f"({os.path.relpath(skipped[0]['path'], base)}: {skipped[0]['reason']}, ...)"
        )
    if skipped:
        warn(skipped_message(source, base, skipped, len(samples)))
    return [samples[k] for k in keep], [scans[k] for k in keep], skipped


def load_dataset(
    cfg: Config,
    data: str | None = None,
    pixels: bool = True,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> PreparedData:
    """Discover, scan, audit and split the dataset named by `data` (or the config).

    Unreadable images are skipped and named through `warn` (default: a warning line on stderr).
    """
    source = dataset_root(cfg, data)
    all_samples = discover(source)
    base = source.parent if source.is_file() else source
    if on_total:
        on_total(len(all_samples))
    samples, scans, skipped = scan_readable(
        all_samples, cfg, source, base, warn or _console_warning, pixels=pixels, progress=progress
    )
    labels = [s.label for s in samples]
    present = set(labels)
    if missing := [c for c in CLASSES if c not in present]:
        raise DataError(f"{source}: no readable images for {', '.join(missing)}")

    pairs = find_pairs(scans, cfg.audit.near_threshold, mirror=cfg.audit.mirror, margin=SHEET_MARGIN_BITS)
    copies = [p for p in pairs if p.kind != "none"]
    source_splits = [s.source_split for s in samples]
    patient_ids = [s.patient_id for s in samples]
    roles, split_info = assign_roles(
        labels, source_splits, copy_groups(len(scans), copies), copies, cfg.data, patient_ids=patient_ids
    )
    groups = split_groups(copy_groups(len(scans), copies), patient_ids)
    audit = summarize(scans, labels, source_splits, pairs, cfg.audit.near_threshold, CLASSES)
    audit["unreadable"] = skipped
    audit["images"] = len(all_samples)
    after = summarize(scans, labels, list(roles), copies, cfg.audit.near_threshold, CLASSES)
    split_info["copy_pairs_by_split_after"] = after["copy_pairs_by_split"]
    return PreparedData(
        root=str(base),
        samples=samples,
        scans=scans,
        pairs=pairs,
        roles=roles,
        audit=audit,
        split=split_info,
        fingerprint=fingerprint(samples, base),
        skipped=skipped,
        groups=groups,
        source=str(source),
    )
