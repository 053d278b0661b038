"""The activation cache computes each (pass, image) row once, whatever split or order asks for it."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest

from neurocascade.hierarchy.features import CHUNK, ActivationCache, hash_seed


def _counting(values: dict[str, float], calls: list[int]):
    def make(keys):
        def compute(positions):
            calls.append(len(positions))
            return np.array([[values[keys[p]], 2 * values[keys[p]]] for p in positions])

        return compute

    return make


def test_rows_are_shared_across_splits_and_orders(tmp_path):
    values = {f"{k:064x}": float(k) for k in range(10)}
    calls: list[int] = []
    make = _counting(values, calls)
    cache = ActivationCache(tmp_path / "c", {"what": "test"})
    first = list(values)[:6]
    out = cache.get("pass-clean", first, make(first))
    assert out.tolist() == [[values[k], 2 * values[k]] for k in first]
    assert calls == [6]
    second = list(reversed(list(values)[3:]))  # another "split": 3 seen, 4 new, another order
    out = cache.get("pass-clean", second, make(second))
    assert out[:, 0].tolist() == [values[k] for k in second]
    assert calls == [6, 4]
    assert cache.get("pass-clean", second, make(second)).shape == (7, 2) and calls == [6, 4]
    cache.get("pass-aug1", first, make(first))  # another pass is another row set
    assert calls == [6, 4, 6]


def test_duplicate_images_are_computed_once_and_progress_counts_every_row(tmp_path):
    keys = ["a" * 64, "b" * 64, "a" * 64]
    calls: list[int] = []
    seen: list[int] = []
    cache = ActivationCache(tmp_path / "c")
    out = cache.get("p", keys, _counting({"a" * 64: 1.0, "b" * 64: 2.0}, calls)(keys), progress=seen.append)
    assert calls == [2] and sum(seen) == 3
    assert out[:, 0].tolist() == [1.0, 2.0, 1.0]


def test_a_second_filler_waits_for_the_first_and_reads_its_rows(tmp_path):
    keys = ["a" * 64, "b" * 64]
    calls: list[int] = []
    events: list[str] = []
    make = _counting({"a" * 64: 1.0, "b" * 64: 2.0}, calls)

    @contextmanager
    def waiting():
        events.append("waiting")
        yield
        events.append("woke")

    def second_process() -> None:  # another open file description: flock treats it as another process
        cache = ActivationCache(tmp_path / "c")
        with cache.exclusive(waiting):
            out = cache.get("p", keys, make(keys))
        events.append(f"read {out[:, 0].tolist()}")

    first = ActivationCache(tmp_path / "c")
    with first.exclusive(waiting):
        other = threading.Thread(target=second_process)
        other.start()
        deadline = time.monotonic() + 30
        while "waiting" not in events and time.monotonic() < deadline:
            time.sleep(0.01)
        first.get("p", keys, make(keys))
        events.append("filled")
    other.join(30)
    assert events == ["waiting", "filled", "woke", "read [1.0, 2.0]"]
    assert calls == [2]  # computed once, by the holder


def test_an_interrupted_fill_keeps_its_whole_chunks_and_resumes_after_them(tmp_path):
    keys = [f"{k:064x}" for k in range(2 * CHUNK + 5)]
    values = {key: float(k) for k, key in enumerate(keys)}
    calls: list[int] = []
    cache = ActivationCache(tmp_path / "c")
    compute = _counting(values, calls)(keys)

    def failing_third(positions):
        if len(calls) == 2:
            raise KeyboardInterrupt  # an interrupted fill: the rows of the chunks before it stay
        return compute(positions)

    with pytest.raises(KeyboardInterrupt):
        cache.get("p", keys, failing_third)
    stored = tmp_path / "c" / "p"
    assert len(list(stored.glob("*.npy"))) == 2 * CHUNK and not list(stored.glob(".*.tmp"))  # whole files only
    out = cache.get("p", keys, compute)
    assert calls == [CHUNK, CHUNK, 5]  # the resumed fill computes only the last chunk
    assert out[:, 0].tolist() == [values[k] for k in keys]  # in the order asked, every chunk stored


def test_hash_seed_depends_on_content_only():
    assert hash_seed("f" * 64) == 16**15 - 1
    assert hash_seed("0" * 15 + "1" * 49) == 0


def test_augmented_rows_do_not_depend_on_position_or_split():
    from neurocascade.data.augment import Augmenter
    from neurocascade.hierarchy.features import augment_by_content
    from neurocascade.config import AugmentConfig

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 48, 48, 3), dtype=np.uint8)
    hashes = [f"{k:064x}" for k in range(6)]
    augmenter = Augmenter(AugmentConfig())
    out = augment_by_content(augmenter, images, hashes, seed=0, k=1)
    order = [4, 1, 5, 0, 3, 2]
    shuffled = augment_by_content(augmenter, images[order], [hashes[i] for i in order], seed=0, k=1)
    np.testing.assert_array_equal(shuffled, out[order])  # a row is the same in any split, at any position
    assert not np.array_equal(augment_by_content(augmenter, images, hashes, seed=0, k=2), out)  # another pass


def test_the_cache_key_ignores_the_split_but_not_the_pixels(test_config_path):
    from neurocascade.hierarchy.features import activation_key
    from neurocascade.config import load_config

    def key(*overrides):
        return activation_key(load_config(test_config_path, overrides), {"kind": "none"}, "cut:0")

    base = key()
    assert key("data.protocol=grouped", "data.split_seed=3", "data.dedupe=false", "data.val_fraction=0.2") == base
    assert key("data.clahe=true") != base and key("data.image_size=96") != base
    assert key("augment.enabled=false") != base and key("train.seed=1") != base
