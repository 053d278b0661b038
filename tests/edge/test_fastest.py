"""`predict --backend auto`: the faster file on this host, float32 on a tie, the choice printed and recorded."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from neurocascade import cli
from neurocascade.edge.fastest import (
    INT8_MARGIN,
    ROUNDS,
    TIMED_RUNS,
    WARM_RUNS,
    choose_variant,
    load_fastest,
    median_ms,
    probe_image,
    run_ms,
)
from neurocascade.edge.predict import load_predictor
from neurocascade.edge.runtime import Cascade, FlatModel


@pytest.mark.parametrize(
    ("int8_ms", "float32_ms", "want"),
    [
        (7.5, 15.0, "int8"),  # an AVX-512 VNNI host: 2×
        (10.0, 10.0 * INT8_MARGIN, "int8"),  # exactly the margin
        (20.5, 22.0, "float32"),  # an AVX2-only host: 1.07×, inside timing noise
        (10.0, 12.0, "float32"),  # 1.2×: under the margin
        (22.0, 21.0, "float32"),  # INT8 slower
    ],
)
def test_int8_is_kept_only_when_clearly_faster(int8_ms, float32_ms, want):
    assert choose_variant({"int8": int8_ms, "float32": float32_ms}) == want


def test_the_probe_image_is_a_fixed_uint8_model_input():
    image = probe_image(32)
    assert image.dtype == np.uint8 and image.shape == (1, 32, 32, 3)
    assert image.min() == 0 and image.max() == 255 and np.array_equal(image, probe_image(32))


def _timer(ms_by_variant):
    """A timer that reports the given milliseconds for the variant each predictor's files are."""

    def timer(predictor, image):
        assert image.shape == (1, predictor.size, predictor.size, 3)
        model = predictor.gate if isinstance(predictor, Cascade) else predictor.model
        return ms_by_variant[model.path.name.split(".")[1]]

    return timer


@pytest.mark.parametrize("kind", ["cascade", "flat"])
@pytest.mark.parametrize(
    ("ms", "want"), [({"int8": 5.0, "float32": 10.0}, "int8"), ({"int8": 10.0, "float32": 10.5}, "float32")]
)
def test_load_fastest_returns_the_chosen_files_predictor(exported, kind, ms, want):
    export_dir = exported[kind][0] / "export"
    predictor, choice = load_fastest(export_dir, num_threads=1, timer=_timer(ms))
    assert (choice.variant, choice.ms, choice.threads) == (want, ms, 1)
    assert isinstance(predictor, Cascade if kind == "cascade" else FlatModel)
    images = np.repeat(probe_image(predictor.size), 3, axis=0)
    expected = load_predictor(export_dir, want, 1).predict(images)
    got = predictor.predict(images)
    np.testing.assert_array_equal(got.probs, expected.probs)
    np.testing.assert_array_equal(got.labels, expected.labels)
    assert f"auto: {want} on this host (1 thread(s)" in choice.text()


def test_the_files_are_timed_in_turns_and_a_cascade_with_its_subtype_model(exported):
    cascade = load_predictor(exported["cascade"][0] / "export", "int8", 1)
    subtype_calls = []
    run = cascade.subtype.predict_proba
    cascade.subtype.predict_proba = lambda images: subtype_calls.append(len(images)) or run(images)
    cascade.tau = 1.0  # the gate calls nothing a tumour: only subtype_for_all reaches the subtype model
    assert run_ms(cascade, probe_image(cascade.size)) > 0 and subtype_calls == [1]

    calls = []
    files = {"int8": SimpleNamespace(size=8), "float32": SimpleNamespace(size=8)}
    ms = median_ms(files, lambda predictor, image: calls.append(predictor) or float(len(calls)))
    turn = WARM_RUNS + TIMED_RUNS
    assert calls == ([files["int8"]] * turn + [files["float32"]] * turn) * ROUNDS  # in turns
    # call numbers: int8's timed ones 2..4, 10..12, 18..20 (the first of each turn untimed); float32's 6 later
    int8_timed = [2 * turn * r + WARM_RUNS + k + 1 for r in range(ROUNDS) for k in range(TIMED_RUNS)]
    assert ms == {"int8": float(np.median(int8_timed)), "float32": float(np.median(int8_timed)) + turn}


def test_predict_backend_auto_prints_the_choice_and_records_the_variant(exported, phantom_root):
    export_dir = exported["flat"][0] / "export"
    images = sorted((phantom_root / "Testing" / "glioma").iterdir())[:2]
    result = CliRunner().invoke(
        cli.main,
        ["predict", "--models", str(export_dir), *map(str, images), "--backend", "auto", "--threads", "1", "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    chosen = rows[0]["variant"]
    assert chosen in ("int8", "float32") and all(r["variant"] == chosen for r in rows)
    assert result.stderr.startswith(f"auto: {chosen} on this host (1 thread(s), median ms per image: int8 ")
    pinned = {"int8": "tflite-int8", "float32": "tflite-float"}[chosen]
    again = CliRunner().invoke(
        cli.main,
        ["predict", "--models", str(export_dir), *map(str, images), "--backend", pinned, "--threads", "1", "--json"],
    )
    assert json.loads(again.stdout) == rows  # the printed choice, pinned, gives the same numbers


def test_the_readme_states_the_margin_the_code_uses():
    readme = " ".join((Path(__file__).parents[2] / "README.md").read_text().split())  # lines wrapped anywhere
    assert f"keeps INT8 only when it is at least {INT8_MARGIN:.2f}× faster" in readme
