"""Evaluation protocols: which image is train, val, test or dropped, with copy groups never split.

- A, `official` without dedupe: the Testing split as distributed, training untouched (leaky, comparable
  with published numbers).
- B, `official` with dedupe: the same, minus every training image that copies a test image.
- C, `grouped`: Training and Testing pooled and re-split by copy group (and patient), stratified.
In every protocol validation is carved out of the training part by group, so early stopping and the gate
threshold are not chosen on copies of training images.

    roles, info = assign_roles(labels, source_splits, groups, copies, cfg.data)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from neurocascade.data.audit import Pair, connected_groups, copies_of
from neurocascade.config import DataConfig
from neurocascade.errors import DataError

PROTOCOLS = {
    "A": "official split as distributed",
    "B": "official split, de-duplicated training",
    "C": "grouped re-split",
}


def protocol_id(cfg: DataConfig) -> str:
    """The protocol letter every reported number names."""
    if cfg.protocol == "grouped":
        return "C"
    return "B" if cfg.dedupe else "A"


def split_groups(groups: np.ndarray, patient_ids: Sequence[str]) -> np.ndarray:
    """Copy groups merged with patient groups: images of one patient or one copy group stay together."""
    first: dict[tuple[str, object], int] = {}
    edges = [(k, first.setdefault(("group", int(g)), k)) for k, g in enumerate(groups)]
    edges += [(k, first.setdefault(("patient", pid), k)) for k, pid in enumerate(patient_ids) if pid]
    return connected_groups(len(groups), edges)


def group_folds(labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold index per image: stratified by label, each copy/patient group in one fold (for cross-fitting)."""
    if len(np.unique(groups)) < n_folds:
        raise DataError(f"only {len(np.unique(groups))} copy/patient groups: too few for {n_folds} folds")
    folds = np.zeros(len(labels), np.int32)
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, held) in enumerate(cv.split(np.zeros(len(labels)), labels, groups)):
        folds[held] = k
    return folds


def _hold_out(members: np.ndarray, labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A stratified, group-aware subset of `members` of about `fraction` (the first fold of a shuffled CV)."""
    n_splits = max(2, round(1 / fraction))
    n_groups = len(np.unique(groups[members]))
    if n_groups < n_splits:
        raise DataError(f"only {n_groups} copy/patient groups: too few to hold out {fraction:.0%} by group")
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, held = next(cv.split(np.zeros(len(members)), labels[members], groups[members]))
    return members[held]


def assign_roles(
    labels: Sequence[str],
    source_splits: Sequence[str],
    groups: np.ndarray,
    copies: Sequence[Pair],
    cfg: DataConfig,
    patient_ids: Sequence[str] | None = None,
) -> tuple[np.ndarray, dict]:
    """Role per image ("train", "val", "test", "dropped") under `cfg.protocol`, and what was done."""
    labels_arr = np.asarray(labels)
    source = np.asarray(source_splits)
    groups = split_groups(groups, patient_ids or [""] * len(labels_arr))
    roles = np.array(["train"] * len(labels_arr), dtype=object)
    info: dict = {
        "protocol": protocol_id(cfg),
        "protocol_name": PROTOCOLS[protocol_id(cfg)],
        "split_seed": cfg.split_seed,
    }
    everything = np.arange(len(labels_arr))
    if cfg.protocol == "grouped":
        test = _hold_out(everything, labels_arr, groups, cfg.test_fraction, cfg.split_seed)
        roles[test] = "test"
    else:
        roles[source == "test"] = "test"
        if cfg.dedupe:
            train = np.flatnonzero(source == "train")
            leaked = copies_of(train, np.flatnonzero(source == "test"), copies)
            for k in leaked:
                roles[k] = "dropped"
            info["dropped_as_copies_of_test"] = {
                kind: sum(1 for v in leaked.values() if v == kind) for kind in ("exact", "near", "mirror")
            }
            info["dropped_total"] = len(leaked)
    remaining = np.flatnonzero(roles == "train")
    # Copy groups straddling test and train can only exist under protocol A; validation still stays clear.
    val = _hold_out(remaining, labels_arr, groups, cfg.val_fraction, cfg.split_seed + 1)
    roles[val] = "val"
    info["counts"] = {r: int((roles == r).sum()) for r in ("train", "val", "test", "dropped")}
    return roles.astype(str), info
