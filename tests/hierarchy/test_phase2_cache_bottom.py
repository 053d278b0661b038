"""Phase 2 on images with the frozen bottom cached (`train.phase2_cache_bottom`): each epoch's draw goes through the
frozen blocks once, into the activation cache, and phase 2 trains the blocks above on those rows (issue 13's cost)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurocascade.config import load_config
from neurocascade.data.augment import Augmenter
from neurocascade.data.dataset import load_dataset
from neurocascade.errors import ConfigError
from neurocascade.hierarchy.bottom_cache import BottomRows, CachedDraws
from neurocascade.hierarchy.engine import epoch_seed
from neurocascade.hierarchy.features import cache_key
from neurocascade.hierarchy.train import FreshAugmentation
from neurocascade.models.surgery import weights_sha256
from neurocascade.tf import keras

from interrupted import check_validation_record, flat_run, flat_run_whole_and_resumed

# Phase 2 trains one block more than phase 1's cut (`unfreeze_blocks` 2 in configs/test.toml), and phase 1's passes
# are computed through the cached bottom too.
CACHED = (
    "train.phase2_data=images",
    "train.phase2_blocks=3",
    "train.phase2_cache_bottom=true",
    "train.phase1_cache_bottom=true",
)


def test_the_key_needs_phase_2_on_images(test_config_path):
    with pytest.raises(ConfigError, match="phase2_cache_bottom"):
        load_config(test_config_path, ("train.phase2_cache_bottom=true",))


@pytest.mark.parametrize(
    "keys",
    [
        ("train.phase1_cache_bottom=true",),
        ("train.phase2_data=images", "train.phase2_blocks=2", "train.phase1_cache_bottom=true"),
        (
            "train.phase2_data=images",
            "train.phase2_blocks=2",
            "train.phase2_cache_bottom=true",
            "train.phase1_cache_bottom=true",
        ),
    ],
    ids=["alone", "without-phase-2-cache", "phase-2-cut-not-below"],
)
def test_phase_1_through_the_bottom_needs_its_cache_below_phase_1s_cut(test_config_path, keys):
    with pytest.raises(ConfigError, match="phase1_cache_bottom"):
        load_config(test_config_path, keys)


def test_a_draws_rows_are_what_the_bottom_gives_that_draw_and_come_back_from_the_cache(
    test_config_path, tiny_runs, tmp_path
):
    cfg = load_config(test_config_path, CACHED)
    ds = load_dataset(cfg, str(tiny_runs["data"]))
    images, hashes = ds.images("train")[:10], [ds.scans[k].sha256 for k in ds.indices("train")][:10]
    model = keras.models.load_model(str(tiny_runs["flat"] / "models" / "flat.keras"))
    rows = BottomRows.at(model, cfg, 2, tmp_path)
    fresh = FreshAugmentation(images, hashes, Augmenter(cfg.augment), seed=7)
    draws = CachedDraws(rows, fresh)
    first = draws.draw(1)
    # bit for bit at the same batch size: the cache feeds the uint8 images, which the model casts to float32
    as_float = fresh.draw(1).astype(np.float32)
    np.testing.assert_array_equal(first, rows.bottom.predict(as_float, batch_size=rows.batch_size, verbose=0))
    assert not np.allclose(draws.draw(0), first)
    stored = rows.cache.dir / "draw-7-1"
    assert sorted(p.stem for p in stored.glob("*.npy")) == sorted(set(hashes))
    for path in stored.glob("*.npy"):  # read back, not computed again: a changed row comes back changed
        np.save(path, np.load(path) + 1.0)
    np.testing.assert_allclose(draws.draw(1), first + 1.0, atol=1e-5)
    # The top part on the clean rows is the model on the images.
    clean = rows.clean(images, hashes)
    np.testing.assert_allclose(
        rows.top.predict(clean, verbose=0), model.predict(images.astype(np.float32), verbose=0), atol=1e-5
    )


def test_the_cache_is_keyed_by_the_frozen_weights_themselves(test_config_path, tiny_runs, tmp_path):
    cfg = load_config(test_config_path, CACHED)
    model = keras.models.load_model(str(tiny_runs["flat"] / "models" / "flat.keras"))
    same = BottomRows.at(keras.models.load_model(str(tiny_runs["flat"] / "models" / "flat.keras")), cfg, 2, tmp_path)
    assert BottomRows.at(model, cfg, 2, tmp_path).cache.dir == same.cache.dir
    first = model.layers[1]
    while not first.weights:
        first = model.layers[model.layers.index(first) + 1]
    before = weights_sha256(same.bottom)
    first.set_weights([w + 0.5 for w in first.get_weights()])
    assert weights_sha256(BottomRows.at(model, cfg, 2, tmp_path).bottom) != before
    assert BottomRows.at(model, cfg, 2, tmp_path).cache.dir != same.cache.dir


@pytest.fixture(scope="module")
def cached_run(test_config_path, tiny_runs, tmp_path_factory):
    cfg = load_config(test_config_path, CACHED)
    base = tmp_path_factory.mktemp("phase2-cache-bottom")
    own = {**tiny_runs, "cache": base / "cache"}  # the session's cache keeps only what the other tests count on
    return cfg, base / "flat", flat_run(cfg, own, base / "flat"), own


def test_phase_2_trains_the_top_blocks_on_each_epochs_cached_draw(cached_run, tiny_runs):
    cfg, out, _, own = cached_run
    history = json.loads((out / "stages" / "flat" / "history.json").read_text())
    phase2 = [r for r in history if r["phase"] == "phase2"]
    assert [r["draw"] for r in phase2] == list(range(cfg.train.phase2_epochs))
    ds = load_dataset(cfg, str(tiny_runs["data"]))
    unique = {ds.scans[k].sha256 for k in ds.indices("train")}
    seed = epoch_seed(cfg.train.seed, "flat", "phase2-images")  # the draws' seed (hierarchy.train._fresh_images)
    draws = [d for d in own["cache"].glob(f"bottom-*/draw-{seed}-*") if d.is_dir()]
    assert len(draws) == cfg.train.phase2_epochs
    assert all({p.stem for p in d.glob("*.npy")} == unique for d in draws)
    # The frozen part stayed what it was; the top blocks moved (phase 2's last checkpoint against phase 1's model).
    tuned = keras.models.load_model(str(out / "models" / "flat.keras"))
    start = keras.models.load_model(str(tiny_runs["flat"] / "models" / "flat.keras"))
    n = cfg.train.phase2_blocks
    rows = BottomRows.at(tuned, cfg, n, own["cache"])
    assert weights_sha256(rows.bottom) == weights_sha256(BottomRows.at(start, cfg, n, own["cache"]).bottom)


def test_phase_1s_passes_through_the_cached_bottom_are_the_whole_backbones(cached_run, tiny_runs):
    # The session's flat run computed phase 1's passes through the whole backbone into the cache whose key is this
    # one's without the marker: rows of another graph are kept apart, since float rounding moves a trained head.
    cfg, _, _, own = cached_run
    ds = load_dataset(cfg, str(tiny_runs["data"]))
    hashes = {role: {ds.scans[k].sha256 for k in ds.indices(role)} for role in ("train", "val")}
    (bottom,) = [d for d in own["cache"].glob("bottom-*") if d.is_dir()]
    assert {p.stem for p in (bottom / "pass-aug1").glob("*.npy")} == hashes["train"]
    assert {p.stem for p in (bottom / "clean").glob("*.npy")} == hashes["train"] | hashes["val"]
    (passes,) = [d for d in own["cache"].iterdir() if d.is_dir() and not d.name.startswith("bottom-")]
    key = json.loads((passes / "key.json").read_text())
    assert key.pop("through_bottom_cache") == cfg.train.phase2_blocks
    whole_backbone = tiny_runs["cache"] / cache_key(key)
    rows = sorted(passes.glob("*/*.npy"))
    assert {p.parent.name for p in rows} == {"pass-clean", "pass-aug1", "pooled-pass-clean", "pooled-pass-aug1"}
    for path in rows:
        whole = np.load(whole_backbone / path.parent.name / path.name)
        np.testing.assert_allclose(np.load(path), whole, atol=1e-5)


def test_the_recorded_validation_probabilities_are_the_saved_models_on_the_images(cached_run, tiny_runs):
    cfg, out, _, _ = cached_run
    check_validation_record(cfg, out, tiny_runs)


def test_a_run_on_a_warm_cache_and_a_resumed_run_end_where_the_first_uninterrupted_one_does(
    test_config_path, tiny_runs, tmp_path
):
    # The uninterrupted run fills a cache of its own; the killed one then reads it.
    cfg = load_config(test_config_path, CACHED)
    full, resumed, full_losses, resumed_losses = flat_run_whole_and_resumed(
        cfg, {**tiny_runs, "cache": tmp_path / "cache"}, tmp_path
    )
    assert full_losses == resumed_losses
    assert resumed["stages"]["flat"]["val_macro_f1"] == full["stages"]["flat"]["val_macro_f1"]
