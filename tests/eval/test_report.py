"""The whole report on the checked-in fixture, compared exactly with the goldens; wording of the verdict."""

import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pytest

from neurocascade.eval.report import (
    build_report,
    render_text,
    report_figures,
    report_markdown,
    save_report,
    side_by_side_table,
)
from neurocascade.eval.report_text import comparison_sentence, with_ci
from neurocascade.config import EvalConfig

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "arrays.npz"
CFG = EvalConfig(bootstrap=200, seed=0, ece_bins=10, top_errors=8)  # 200 resamples: goldens in about a second
META = {
    "protocol": "B",
    "protocol_name": "official split, de-duplicated training",
    "split": "test",
    "backend": "keras",
    "dataset_fingerprint": "0123456789abcdef",
    "run": "tests/eval/fixtures/arrays.npz",
}


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1024, path


FIGURES = {"confusion matrices (row-normalised)": "confusion.png", "reliability diagram": "reliability.png"}


def fixture_models() -> dict:
    d = np.load(FIXTURE)
    y, paths = d["y_true"], d["paths"].tolist()
    return {
        "cascade": {
            "y_true": y,
            "p_tumour": d["cascade_p_tumour"],
            "q_subtype": d["cascade_q_subtype"],
            "tau": float(d["cascade_tau"]),
            "paths": paths,
        },
        "flat": {"y_true": y, "probs": d["flat_probs"], "paths": paths},
    }


@pytest.fixture(scope="module")
def report() -> dict:
    return build_report(fixture_models(), CFG, META)


def test_fixture_is_what_its_script_makes():
    spec = importlib.util.spec_from_file_location("make_arrays", FIXTURE.with_name("make_arrays.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stored = np.load(FIXTURE)
    made = module.make()
    assert set(made) == set(stored.files)
    for key, value in made.items():
        # Within a few ulps, not bit for bit: numpy's SIMD paths differ between CPUs (6 of 360 values 1 ulp
        # apart on this 2-core EPYC). The goldens read the stored arrays, so they stay exact.
        if np.issubdtype(np.asarray(value).dtype, np.number):
            np.testing.assert_allclose(stored[key], value, rtol=1e-12, atol=1e-15, err_msg=key)
        else:
            np.testing.assert_array_equal(stored[key], value, err_msg=key)


def test_report_json_golden(report, golden):
    golden("report.json", json.dumps(report, indent=2, sort_keys=True) + "\n")  # as neurocascade.io.write_json


def test_report_markdown_golden(report, golden):
    golden("report.md", report_markdown(report, FIGURES))


def test_side_by_side_table_golden(report, golden):
    golden("table.txt", render_text(side_by_side_table(report, width=100), width=100))


def test_report_shape(report):
    assert report["schema_version"] == 1
    assert set(report["models"]) == {"cascade", "flat"}
    assert {"gate", "subtype"} <= set(report["models"]["cascade"]) and "gate" not in report["models"]["flat"]
    assert report["comparison"]["a"] == "cascade" and report["comparison"]["b"] == "flat"
    json.dumps(report, allow_nan=False)  # JSON-ready: no NaN, no numpy types


def test_every_float_is_rounded(report):
    def floats(x):
        if isinstance(x, dict):
            for v in x.values():
                yield from floats(v)
        elif isinstance(x, list):
            for v in x:
                yield from floats(v)
        elif isinstance(x, float):
            yield x

    assert all(round(f, 4) == f for f in floats(report))


def test_ci_values_are_the_point_metrics(report):
    for m in report["models"].values():
        for key in (
            "accuracy",
            "balanced_accuracy",
            "macro_f1",
            "weighted_f1",
            "mcc",
            "kappa",
            "brier",
            "roc_auc_macro",
            "recall_glioma",
        ):
            assert m["ci"][key]["value"] == m["metrics"][key], key
        assert m["ci"]["ece"]["value"] == m["calibration"]["ece"]


def test_cascade_gate_matches_its_hard_predictions(report):
    c = report["models"]["cascade"]
    assert c["gate"]["ci"]["tumour_sensitivity"] == c["ci"]["tumour_sensitivity"]
    assert c["gate"]["fn"] == c["error_propagation"]["gate_misses"]


def test_any_number_of_models_and_no_comparison_without_flat():
    models = fixture_models()
    models["ensemble"] = dict(models["flat"])
    del models["flat"]
    r = build_report(models, EvalConfig(bootstrap=20), META)
    assert r["comparison"] is None and list(r["models"]) == ["cascade", "ensemble"]
    assert "Cascade vs flat" not in report_markdown(r, {})
    assert "ensemble (n = 120)" in render_text(side_by_side_table(r, 120), 120)


def test_mistakes_fail_with_a_reason():
    models = fixture_models()
    with pytest.raises(ValueError, match="protocol"):
        build_report(models, CFG, {"split": "test"})
    bad = fixture_models()
    bad["cascade"]["y_pred"] = np.zeros(120, int)  # never no_tumor, whatever the gate says
    with pytest.raises(ValueError, match="disagrees with p_tumour"):
        build_report(bad, CFG, META)
    bad = fixture_models()
    bad["flat"]["y_true"] = bad["flat"]["y_true"][::-1]
    with pytest.raises(ValueError, match="same images"):
        build_report(bad, EvalConfig(bootstrap=10), META)
    with pytest.raises(ValueError, match="unknown keys"):
        build_report({"flat": {**models["flat"], "logits": 1}}, CFG, META)


def _comparison(value, low, high, excludes, p=0.31):
    return {
        "a": "cascade",
        "b": "flat",
        "metric": "macro_f1",
        "difference": {"value": value, "low": low, "high": high, "excludes_zero": excludes},
        "mcnemar": {"p_value": p, "b": 1, "c": 1, "test": "exact"},
    }


def test_verdict_claims_a_difference_only_when_the_interval_excludes_zero():
    assert comparison_sentence(_comparison(0.021, -0.010, 0.052, False)) == (
        "cascade − flat macro-F1 = +0.021 [−0.010, 0.052]; McNemar p = 0.31: no evidence the cascade is better "
        "(the 95% interval includes 0)."
    )
    assert "no evidence the flat model is better" in comparison_sentence(_comparison(-0.02, -0.05, 0.01, False))
    assert ": the cascade is better" in comparison_sentence(_comparison(0.05, 0.01, 0.09, True, p=0.004))
    assert ": the flat model is better" in comparison_sentence(_comparison(-0.05, -0.09, -0.01, True, p=0.0004))
    assert "p < 0.001" in comparison_sentence(_comparison(-0.05, -0.09, -0.01, True, p=0.0004))
    # A low bound that rounds to 0.000 but was above 0 before rounding still counts: the flag decides.
    assert "is better (the 95% interval excludes 0)" in comparison_sentence(_comparison(0.03, 0.0, 0.06, True))


def test_value_with_interval_format():
    assert with_ci({"value": 0.8123, "low": 0.7712, "high": 0.85}) == "0.812 [0.771, 0.850]"
    assert with_ci({"value": None, "low": None, "high": None}) == "n/a"


def test_figures_and_files_are_written(report, tmp_path):
    figures = report_figures(report, tmp_path)
    for name in figures.values():
        assert_png(tmp_path / name)
    paths = save_report(report, report_markdown(report, figures), tmp_path)
    assert json.loads(paths["json"].read_text()) == report
    assert "](confusion.png)" in paths["markdown"].read_text()


def test_full_size_report_budget():
    # cfg.bootstrap = 1000 (the default) on 120 images, two models: a few seconds at most.
    start = time.perf_counter()
    build_report(fixture_models(), EvalConfig(), META)
    assert time.perf_counter() - start < 20
