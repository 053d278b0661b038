"""Protocol splits: stratified, deterministic, copy groups and patients on one side, dedupe drops leaks."""

from collections import Counter

import numpy as np
import pytest

from neurocascade.data.audit import Pair
from neurocascade.data.split import assign_roles, protocol_id
from neurocascade.config import DataConfig
from neurocascade.errors import DataError

CLASSES = ["glioma", "meningioma", "pituitary", "no_tumor"]


def make_data(n_per_class=60, seed=0):
    """Labels, source splits (80/20) and copy groups: every third image forms a pair with the next one."""
    rng = np.random.default_rng(seed)
    labels = [c for c in CLASSES for _ in range(n_per_class)]
    source = ["test" if k % 5 == 0 else "train" for k in range(len(labels))]
    pairs = [Pair(k, k + 1, 10, "near") for k in range(0, len(labels) - 1, 3) if labels[k] == labels[k + 1]]
    groups = np.arange(len(labels))
    for p in pairs:
        groups[p.j] = groups[p.i]
    rng.shuffle(pairs)
    return labels, source, groups, pairs


def test_protocol_ids():
    assert protocol_id(DataConfig(dedupe=False)) == "A"
    assert protocol_id(DataConfig(dedupe=True)) == "B"
    assert protocol_id(DataConfig(protocol="grouped")) == "C"


@pytest.mark.parametrize("cfg", [DataConfig(dedupe=False), DataConfig(dedupe=True), DataConfig(protocol="grouped")])
def test_groups_never_straddle_train_and_val(cfg):
    labels, source, groups, pairs = make_data()
    roles, info = assign_roles(labels, source, groups, pairs, cfg)
    for p in pairs:
        pair_roles = {roles[p.i], roles[p.j]}
        assert pair_roles != {"train", "val"}
        if cfg.protocol == "grouped" or cfg.dedupe:
            assert pair_roles != {"train", "test"}
    assert sum(info["counts"].values()) == len(labels)


def test_official_keeps_distributed_test_and_dedupe_drops_copies_of_it():
    labels, source, groups, pairs = make_data()
    roles_a, info_a = assign_roles(labels, source, groups, pairs, DataConfig(dedupe=False))
    roles_b, info_b = assign_roles(labels, source, groups, pairs, DataConfig(dedupe=True))
    for roles in (roles_a, roles_b):
        assert [r == "test" for r in roles] == [s == "test" for s in source]
    leaked = {p.i if source[p.i] == "train" else p.j for p in pairs if {source[p.i], source[p.j]} == {"train", "test"}}
    assert {int(k) for k in np.flatnonzero(roles_b == "dropped")} == leaked
    assert info_b["dropped_total"] == len(leaked) == info_b["dropped_as_copies_of_test"]["near"]
    assert "dropped_total" not in info_a and info_a["protocol"] == "A"


def test_validation_is_stratified_and_deterministic():
    labels, source, groups, pairs = make_data()
    cfg = DataConfig(val_fraction=0.2, split_seed=3)
    roles1, _ = assign_roles(labels, source, groups, pairs, cfg)
    roles2, _ = assign_roles(labels, source, groups, pairs, cfg)
    assert list(roles1) == list(roles2)
    other, _ = assign_roles(labels, source, groups, pairs, DataConfig(val_fraction=0.2, split_seed=4))
    assert list(other) != list(roles1)
    val = Counter(lab for lab, r in zip(labels, roles1) if r == "val")
    train = Counter(lab for lab, r in zip(labels, roles1) if r == "train")
    for c in CLASSES:
        share = val[c] / (val[c] + train[c])
        assert 0.12 < share < 0.28, (c, share)


def test_grouped_protocol_holds_out_a_stratified_test_part():
    labels, source, groups, pairs = make_data()
    roles, info = assign_roles(labels, source, groups, pairs, DataConfig(protocol="grouped", test_fraction=0.2))
    test = Counter(lab for lab, r in zip(labels, roles) if r == "test")
    assert all(8 <= test[c] <= 16 for c in CLASSES), test
    assert info["protocol"] == "C"


def test_patients_stay_on_one_side():
    labels, source, groups, pairs = make_data()
    patients = [f"p{k // 4}" for k in range(len(labels))]  # 4 consecutive images per patient
    roles, _ = assign_roles(labels, source, groups, pairs, DataConfig(protocol="grouped"), patient_ids=patients)
    by_patient = {}
    for pid, role in zip(patients, roles):
        by_patient.setdefault(pid, set()).add(role)
    assert all(len(r) == 1 for r in by_patient.values())


def test_too_few_groups_is_a_clear_error():
    labels = CLASSES * 2
    with pytest.raises(DataError, match="too few to hold out"):
        assign_roles(labels, ["train"] * 8, np.zeros(8, dtype=int), [], DataConfig())


def test_group_folds_keep_groups_whole_and_stratify():
    from neurocascade.data.split import group_folds

    labels, _, groups, _ = make_data()
    folds = group_folds(np.asarray(labels), groups, 5, seed=0)
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]
    for g in np.unique(groups):
        assert len(set(folds[groups == g])) == 1
    for k in range(5):
        counts = Counter(np.asarray(labels)[folds == k])
        assert all(8 <= counts[c] <= 16 for c in CLASSES), counts  # 60 per class: ~12 per fold
    np.testing.assert_array_equal(folds, group_folds(np.asarray(labels), groups, 5, seed=0))
    with pytest.raises(DataError, match="too few for 500 folds"):
        group_folds(np.asarray(labels), groups, 500, seed=0)
