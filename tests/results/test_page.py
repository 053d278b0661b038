"""docs/RESULTS.md generator: the whole page on a fixed fixture tree against a golden, plus the logic that can fail.

The fixture (tests/results/fixtures) is a plan with four protocols and a results directory holding the real
reports of the 2026-11-30 `make results` run for C-seed0 (with bench.json) and B, and its ledger with one edit:
A failed; C-seed1 never ran.
"""

import json
import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest

from neurocascade.results.collect import collect, evaluate_targets, seed_summary, stage_costs
from neurocascade.results.page import copy_figures, render, write_page
from neurocascade.results.plan import load_plan

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PLAN = FIXTURES / "plan.toml"
RUNS = FIXTURES / "runs"
REPO = Path(__file__).resolve().parents[2]
BUDGETS = {"chain_max_hours": 2.0, "training_max_minutes": 90, "protocol_training_max_minutes": 30}
LINKS = {f"C-seed0-keras-{kind}": f"figures/C-seed0-keras-{kind}.png" for kind in ("confusion", "reliability")}


@pytest.fixture(scope="module")
def collected() -> dict:
    return collect(PLAN, RUNS, root=FIXTURES)


def table_row(page: str, first_cell: str, after: str = "") -> list[str]:
    """The cells of the first Markdown table row that starts with `first_cell` (after the text `after`)."""
    for line in page[page.index(after) :].splitlines():
        if line.startswith(f"| {first_cell} |"):
            return [c.strip() for c in line.strip("|").split(" | ")]
    raise AssertionError(f"no table row starting with {first_cell!r}")


def copy_tree(tmp_path: Path) -> Path:
    """A writable copy of the fixture (plan, notes and runs) to edit in a test."""
    root = tmp_path / "results"
    shutil.copytree(FIXTURES, root)
    return root


def test_page_golden(collected, golden):
    golden("RESULTS.md", render(collected, LINKS))


def test_render_is_pure_and_independent_of_cwd(collected, tmp_path, monkeypatch):
    first = render(collected, LINKS)
    monkeypatch.chdir(tmp_path)
    assert render(collect(PLAN, RUNS, root=FIXTURES), LINKS) == first


def test_missing_protocols_render_not_run(collected):
    page = render(collected, {})
    a = table_row(page, "A — official split as distributed", after="## 2.")
    assert a[1] == "not run (A/train-cascade failed)" and a[2:7] == ["—"] * 5
    assert a[7:] == ["0.757", "0.765"]  # the baseline is known even when the protocol did not run
    assert table_row(page, "C — grouped re-split (split seed 1)", after="## 2.")[1] == "not run"
    assert "### 3.4 C — grouped re-split (split seed 1)\n\nNot run.\n" in page
    assert collected["missing"] == ["A", "C-seed1"]


def test_headline_numbers_come_from_the_reports(collected):
    report = json.loads((RUNS / "C-seed0/cascade/eval/test-keras/report.json").read_text())
    row = table_row(render(collected, {}), "C — grouped re-split (split seed 0)", after="## 2.")
    ci = report["models"]["cascade"]["ci"]["macro_f1"]
    assert row[1] == "467" and row[2] == f"{ci['value']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]"
    assert row[4] == "+0.008 [−0.020, 0.039]"  # sign shown on the difference, real minus signs
    assert row[5] == "0.67"  # McNemar p as the eval report writes it


def test_empty_results_dir_renders(tmp_path):
    c = collect(PLAN, tmp_path / "nothing", root=FIXTURES)
    page = render(c, {})
    assert "Not run: no `audit/audit.json`" in page and "Not run: no `ledger.json`" in page
    assert {t["status"] for t in c["targets"]} == {"not run"}
    assert c["seeds"] == [] and "mean (min–max) over" not in page


def edit_report(path: Path, **macro_f1: float) -> None:
    report = json.loads(path.read_text())
    for model, value in macro_f1.items():
        report["models"][model]["ci"]["macro_f1"]["value"] = value
    path.write_text(json.dumps(report))


def test_seed_mean_and_range_over_two_seeds(tmp_path):
    root = copy_tree(tmp_path)
    shutil.copytree(root / "runs/C-seed0", root / "runs/C-seed1")
    edit_report(root / "runs/C-seed1/cascade/eval/test-keras/report.json", cascade=0.8, flat=0.901)
    c = collect(root / "plan.toml", root / "runs", root=root)
    (s,) = c["seeds"]
    assert s["family"] == "C" and s["ids"] == ["C-seed0", "C-seed1"]
    assert s["cascade"] == {"mean": pytest.approx((0.8552 + 0.8) / 2), "min": 0.8, "max": 0.8552, "n": 2}
    assert s["flat"] == {"mean": pytest.approx((0.847 + 0.901) / 2), "min": 0.847, "max": 0.901, "n": 2}
    row = table_row(render(c, {}), "C — mean (min–max) over 2 split seeds (C-seed0, C-seed1)")
    assert row[2:4] == ["0.828 (0.800–0.855)", "0.874 (0.847–0.901)"]
    mean_target = next(t for t in c["targets"] if t["target"] == "protocol C cascade macro-F1, mean over seeds")
    assert mean_target["value"] == pytest.approx(0.8276) and mean_target["where"] == "C-seed0, C-seed1 (2 of 2 seeds)"


def test_seed_summary_ignores_protocols_without_both_models(collected):
    protocols = [dict(p) for p in collected["protocols"]]
    assert [s["ids"] for s in seed_summary(protocols)] == [["C-seed0"]]
    protocols[0]["reports"] = {"keras": None, "tflite-int8": None}
    assert seed_summary(protocols) == []


def test_targets_on_the_fixture(collected):
    status = {(t["target"], t["where"]): t["status"] for t in collected["targets"]}
    assert status[("protocol C cascade macro-F1", "C-seed0")] == "not met"  # 0.855 < 0.93
    assert status[("protocol C tumour sensitivity at the validation τ", "C-seed0")] == "not met"  # 0.939 < 0.97
    assert status[("INT8 model size (MB = 10⁶ bytes, largest model)", "C-seed0, flat")] == "met"  # 5.96 MB
    assert status[("INT8 vs Keras top-1 agreement (validation, lowest model)", "C-seed0, subtype")] == "not met"
    assert status[("beat the frozen-feature baseline: cascade macro-F1", "B")] == "met"  # 0.468 > 0.413
    assert status[("beat the frozen-feature baseline: flat macro-F1", "B")] == "not met"  # 0.469 < 0.514
    assert status[("beat the frozen-feature baseline: cascade macro-F1", "A")] == "not run"
    # one of the two planned C seeds ran: no mean is judged yet
    assert status[("protocol C cascade macro-F1, mean over seeds", "C-seed0 (1 of 2 seeds)")] == "not run"
    assert status[("make results wall time (minutes)", "all stages")] == "not run"  # A failed
    drop = next(t for t in collected["targets"] if t["target"].startswith("INT8 test macro-F1 drop"))
    assert drop["value"] == pytest.approx(0.847 - 0.8172) and drop["where"] == "C-seed0, flat"  # the cascade gained


def protocol(
    pid: str, cascade: float | None, flat: float | None, sensitivity: float = 0.99, baseline: dict | None = None
) -> dict:
    """The least of a collected protocol that evaluate_targets reads."""

    def model(f1, gate=None):
        return {"ci": {"macro_f1": {"value": f1}}, "gate": gate}

    keras = (
        None
        if cascade is None
        else {"models": {"cascade": model(cascade, {"sensitivity": sensitivity}), "flat": model(flat)}}
    )
    return {
        "id": pid,
        "family": pid.split("-seed")[0],
        "reports": {"keras": keras, "tflite-int8": keras},
        "agreement": {"cascade": None, "flat": None},
        "bench": None,
        "baseline": baseline,
    }


def test_target_thresholds_are_inclusive_and_beating_the_baseline_is_strict():
    seeds_base = {"cascade": [0.9, 0.92], "flat": [0.9, 0.9]}
    protocols = [
        protocol("C-seed0", 0.93, 0.93, sensitivity=0.97, baseline=seeds_base),
        protocol("C-seed1", 0.91, 0.90, sensitivity=0.97, baseline=seeds_base),
        protocol("A", 0.757, 0.80, baseline={"cascade": 0.757, "flat": 0.765}),
        protocol("B", None, None, baseline={"cascade": 0.4, "flat": 0.5}),
    ]
    plan = load_plan(PLAN, FIXTURES)
    c = {
        "plan": {"targets": plan.targets},
        "protocols": protocols,
        "seeds": seed_summary(protocols),
        "costs": stage_costs(
            [{"id": "a/train-flat", "kind": "train-flat", "protocol": "a", "seconds": 5400.0, "status": "done"}],
            plan.targets,
        ),
        "missing": [],
    }
    status = {(t["target"], t["where"]): t["status"] for t in evaluate_targets(c)}
    assert status[("protocol C cascade macro-F1", "C-seed0")] == "met"  # equal to the target
    assert status[("protocol C cascade macro-F1 ≥ flat macro-F1", "C-seed0")] == "met"  # a tie is not worse
    both = "C-seed0, C-seed1 (2 of 2 seeds)"
    assert status[("protocol C cascade macro-F1, mean over seeds", both)] == "not met"  # 0.92 < 0.93
    assert status[("protocol C tumour sensitivity, mean over seeds", both)] == "met"
    assert status[("beat the frozen-feature baseline: cascade macro-F1", "A")] == "not met"  # a tie does not beat
    assert status[("beat the frozen-feature baseline: flat macro-F1", "A")] == "met"
    assert status[("beat the frozen-feature baseline: flat macro-F1", "B")] == "not run"
    assert status[("beat the frozen-feature baseline: cascade macro-F1, mean over seeds", both)] == "met"  # .92 > .91
    assert status[("beat the frozen-feature baseline: flat macro-F1, mean over seeds", both)] == "met"  # .915 > .9
    assert status[("INT8 model size (MB = 10⁶ bytes, largest model)", "C-seed0")] == "not run"  # no agreement.json
    assert status[("training wall time (minutes, train-cascade + train-flat)", "all protocols")] == "met"  # 90 ≤ 90
    one = "training wall time of one protocol (minutes, train-cascade + train-flat, the slowest)"
    assert status[(one, "a")] == "not met"  # 90 minutes of protocol a > 30


def test_stage_costs_total_and_budgets(collected):
    k = collected["costs"]
    assert k["total_s"] == pytest.approx(1322.1)
    assert k["training_s"] == pytest.approx(113.1 + 69.1 + 113.1 + 61.0 + 12.3)  # a failed run took time too
    assert k["total_ok"] and k["training_ok"] and k["failed"] == 1 and k["not_done"] == 1
    # per protocol: C-seed0's flat and cascade stages against B's (A's failed cascade counts its 12.3 s too)
    assert (k["slowest_protocol"], k["slowest_protocol_training_s"]) == ("C-seed0", pytest.approx(113.1 + 69.1))
    assert k["protocol_training_ok"]
    page = render(collected, {})
    assert table_row(page, "**total**")[1] == "**22:02**"
    assert table_row(page, "`C-seed0/train-flat`")[1:] == ["1:09", "done"]
    over = stage_costs(
        [
            {"id": "X/train-flat", "kind": "train-flat", "protocol": "X", "seconds": 5399.6, "status": "done"},
            {"id": "X/edge-bench", "kind": "edge-bench", "protocol": "X", "seconds": 1800.8, "status": "done"},
            {"id": "Y/eval-keras", "kind": "eval-keras", "seconds": None, "status": "failed"},
        ],
        BUDGETS,
    )
    assert over["training_ok"] and not over["total_ok"] and over["total_s"] == pytest.approx(7200.4)
    assert not over["protocol_training_ok"] and over["slowest_protocol"] == "X"  # 90 minutes of one protocol > 30
    within = stage_costs(
        [
            {"id": f"{p}/{kind}", "kind": kind, "protocol": p, "seconds": 900.0, "status": "done"}
            for p in ("P", "Q")
            for kind in ("train-flat", "train-cascade")
        ],
        BUDGETS,
    )
    assert within["protocol_training_ok"] and within["slowest_protocol_training_s"] == 1800.0  # 30:00 ≤ 30:00
    assert not stage_costs([{"id": "t", "kind": "train-cascade", "seconds": 5400.6, "status": "done"}], BUDGETS)[
        "training_ok"
    ]


def test_notes_included_verbatim(collected):
    page = render(collected, {})
    assert page.endswith("## Reading\n\n" + (FIXTURES / "reading.md").read_text(encoding="utf-8"))


def write_png(path: Path, size: tuple[int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGBA", size, (200, 30, 30, 255)).save(path)


def test_copy_figures_downscales_and_links_relative_to_the_page(tmp_path):
    from PIL import Image

    results = tmp_path / "out"
    write_png(results / "C-seed0/cascade/eval/test-keras/confusion.png", (1400, 700))
    write_png(results / "B/cascade/eval/test-tflite-int8/reliability.png", (300, 200))
    links = copy_figures(results, load_plan(PLAN, FIXTURES), tmp_path / "docs/figures", max_side=700)
    assert links == {
        "C-seed0-keras-confusion": "figures/C-seed0-keras-confusion.png",
        "B-tflite-int8-reliability": "figures/B-tflite-int8-reliability.png",
    }
    with Image.open(tmp_path / "docs/figures/C-seed0-keras-confusion.png") as im:
        assert im.size == (700, 350)
    with Image.open(tmp_path / "docs/figures/B-tflite-int8-reliability.png") as im:
        assert im.size == (300, 200)  # small figures keep their size


def test_write_page_end_to_end(tmp_path):
    root = copy_tree(tmp_path)
    write_png(root / "runs/C-seed0/cascade/eval/test-keras/reliability.png", (900, 900))
    page = write_page(root / "plan.toml", root / "runs", root / "docs/RESULTS.md", root / "docs/figures", root=root)
    text = page.read_text(encoding="utf-8")
    assert "![C-seed0 Keras reliability](figures/C-seed0-keras-reliability.png)" in text
    assert (root / "docs/figures/C-seed0-keras-reliability.png").is_file()
    assert text == render(
        collect(root / "plan.toml", root / "runs", root=root),
        {"C-seed0-keras-reliability": "figures/C-seed0-keras-reliability.png"},
    )
    html = (root / "docs/RESULTS.html").read_text(encoding="utf-8")  # the same page for a browser
    assert '<img src="figures/C-seed0-keras-reliability.png"' in html
    assert html.count("<table>") == sum(
        1 for a, b in zip(text.splitlines(), text.splitlines()[1:]) if a.startswith("|") and b.startswith("| ---")
    )
    shown = unescape(re.sub(r"<[^>]+>", "", html))
    for heading in (line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")):
        assert heading.replace("`", "") in shown, heading


def test_results_html_of_the_committed_page():
    """docs/RESULTS.md as it stands (a real run's page) converts whole: every table, heading and figure link."""
    from neurocascade.results.page import page_html

    text = (REPO / "docs/RESULTS.md").read_text(encoding="utf-8")
    html = page_html(text, REPO / "docs")
    lines = text.splitlines()
    tables = sum(1 for a, b in zip(lines, lines[1:]) if a.startswith("|") and b.startswith("| ---"))
    assert html.count("<table>") == tables
    assert html.count("<h2") == sum(1 for line in lines if line.startswith("## "))
    figures = [line for line in lines if line.startswith("![")]
    assert html.count("<img ") == len(figures) and "figure not available" not in html
    assert "<pre><code>" in html and "<li>" in html


def test_the_page_needs_no_tensorflow():
    code = "import sys, neurocascade.results.collect, neurocascade.results.page; sys.exit('tensorflow' in sys.modules or 'PIL' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_int8_speed_target_is_the_slowest_model_and_thread_count(collected):
    row = next(t for t in collected["targets"] if t["target"].startswith("INT8 speed-up"))
    bench = json.loads((RUNS / "C-seed0/bench.json").read_text())
    means = {(m["stage"], m["threads"], m["variant"]): m["latency"]["mean_ms"] for m in bench["models"]}
    lowest = min(means[(s, t, "float32")] / means[(s, t, "int8")] for s, t, v in means if v == "int8")
    assert row["value"] == pytest.approx(lowest) and row["status"] == ("met" if lowest >= 1 else "not met")


def test_int8_one_thread_speed_target_reads_one_thread_only(tmp_path):
    """Issue 15 asks for INT8 at least 2× float32 at 1 thread: a model at 1.9× there fails it while "never slower"
    (every thread count, ≥ 1×) still holds."""
    root = copy_tree(tmp_path)
    path = root / "runs/C-seed0/bench.json"
    bench = json.loads(path.read_text())
    int8 = next(m for m in bench["models"] if (m["stage"], m["threads"], m["variant"]) == ("gate", 1, "int8"))
    float32 = next(m for m in bench["models"] if (m["stage"], m["threads"], m["variant"]) == ("gate", 1, "float32"))
    int8["latency"]["mean_ms"] = float32["latency"]["mean_ms"] / 1.9
    path.write_text(json.dumps(bench))
    targets = {t["target"]: t for t in collect(root / "plan.toml", root / "runs", root=root)["targets"]}
    one = targets["INT8 speed-up over float32 at 1 thread (lowest model)"]
    assert one["value"] == pytest.approx(1.9) and one["status"] == "not met" and "gate at 1 thread" in one["where"]
    assert targets["INT8 speed-up over float32 (lowest model × threads)"]["status"] == "met"


def test_readme_headline_block_is_replaced_and_nothing_else(collected):
    from neurocascade.results.page import HEADLINE_BLOCK, with_headline

    start, end = HEADLINE_BLOCK
    readme = f"# Title\n\nBefore.\n\n{start}\nold table\n{end}\n\nAfter.\n"
    once = with_headline(readme, collected, "docs/RESULTS.md")
    assert once.startswith("# Title\n\nBefore.\n\n" + start + "\n| protocol |") and once.endswith(end + "\n\nAfter.\n")
    assert "old table" not in once and "| C — grouped re-split (split seed 0) | 467 | 0.855 [0.824, 0.886] |" in once
    assert with_headline(once, collected, "docs/RESULTS.md") == once  # idempotent
    assert with_headline("no markers\n", collected, "x") == "no markers\n"


def test_int8_rows_name_each_models_calibration(tmp_path):
    """An export records the draw each model was calibrated with (per model under "auto"); the row shows it."""
    root = copy_tree(tmp_path)
    path = root / "runs/C-seed0/cascade/export/agreement.json"
    report = json.loads(path.read_text())
    report["models"]["gate"]["calibration"] = "balanced"
    report["models"]["subtype"]["calibration"] = "random"
    path.write_text(json.dumps(report))
    page = render(collect(root / "plan.toml", root / "runs", root=root), {})
    rows = [line for line in page[page.index("## 4. INT8") :].splitlines() if line.startswith("| C — grouped")]
    cells = [[c.strip() for c in line.strip("|").split(" | ")][1:3] for line in rows[:3]]
    assert cells == [["gate", "qat, balanced"], ["subtype", "qat, random"], ["cascade", "qat"]]


def test_int8_rows_say_whether_the_head_refit_was_installed(tmp_path):
    """`export.head_refit_epochs` records per model whether the refitted head went in; the row says so, and the note
    what it is, only when some model was refitted."""
    root = copy_tree(tmp_path)
    path = root / "runs/C-seed0/cascade/export/agreement.json"
    report = json.loads(path.read_text())
    refit = {"images": 100, "epochs": 10, "agreement_before": 0.95}
    report["models"]["gate"]["head_refit"] = {**refit, "kept": True}
    report["models"]["subtype"]["head_refit"] = {**refit, "kept": False}
    path.write_text(json.dumps(report))
    page = render(collect(root / "plan.toml", root / "runs", root=root), {})
    int8 = page[page.index("## 4. INT8") : page.index("## 5.")]
    rows = [line for line in int8.splitlines() if line.startswith("| C — grouped")]
    cells = [[c.strip() for c in line.strip("|").split(" | ")][1:3] for line in rows[:3]]
    assert cells == [["gate", "qat, head refit"], ["subtype", "qat, head refit not kept"], ["cascade", "qat"]]
    assert "Head refit (`export.head_refit_epochs`)" in int8
    without = render(collect(FIXTURES / "plan.toml", FIXTURES / "runs", root=FIXTURES), {})
    assert "Head refit (`export.head_refit_epochs`)" not in without


def test_the_cascade_as_one_graph_gets_its_row_and_counts_in_the_int8_targets(tmp_path):
    """An export with `export.one_graph` adds a model to agreement.json: its own INT8 row (scored as the cascade,
    with its τ decision), the note saying what it is, and the size and agreement targets take it in."""
    root = copy_tree(tmp_path)
    path = root / "runs/C-seed0/cascade/export/agreement.json"
    report = json.loads(path.read_text())
    report["models"]["one_graph"] = {
        **report["models"]["gate"],
        "int8_bytes": 9_900_000,  # the largest model now
        "int8_top1_agreement": 0.85,  # and the least agreeing
        "tau_decision_agreement": 0.97,
        "calibration": "balanced",
    }
    path.write_text(json.dumps(report))
    collected = collect(root / "plan.toml", root / "runs", root=root)
    page = render(collected, {})
    int8 = page[page.index("## 4. INT8") : page.index("## 5.")]
    row = next(line for line in int8.splitlines() if "| cascade as one graph |" in line)
    assert "| cascade as one graph | qat, balanced | 9.441 |" in row  # the fixture's export is QAT
    assert "| 0.970 / — |" in row and "Cascade as one graph (`export.one_graph`)" in int8
    keras_cascade = collected["protocols"][0]["reports"]["keras"]["models"]["cascade"]["ci"]["macro_f1"]["value"]
    assert f"| {keras_cascade:.3f} → n/a |" in row  # the Keras cascade's; the fixture has no LiteRT evaluation
    status = {(t["target"], t["where"]): t["status"] for t in collected["targets"]}
    assert status[("INT8 model size (MB = 10⁶ bytes, largest model)", "C-seed0, one_graph")] == "met"  # 9.9 MB
    assert status[("INT8 vs Keras top-1 agreement (validation, lowest model)", "C-seed0, one_graph")] == "not met"
    without = render(collect(FIXTURES / "plan.toml", FIXTURES / "runs", root=FIXTURES), {})
    assert "| cascade as one graph |" not in without and "Cascade as one graph (`export.one_graph`)" not in without


def test_the_one_graphs_test_macro_f1_is_scored_against_the_keras_cascade():
    """The evaluations' reports score the two-model cascade and the flat model; the one graph's INT8 test labels are
    scored beside them (eval/agreement.py), against the Keras cascade, whose float function it is."""
    from neurocascade.results.collect import int8_test_macro_f1

    protocol = {
        "reports": {
            backend: {"models": {m: {"ci": {"macro_f1": {"value": v}}} for m, v in scores.items()}}
            for backend, scores in {"keras": {"cascade": 0.93, "flat": 0.94}, "tflite-int8": {"cascade": 0.91}}.items()
        },
        "test_agreement": {"one_graph": {"macro_f1": 0.92}},
    }
    assert int8_test_macro_f1(protocol, "cascade") == (0.93, 0.91)
    assert int8_test_macro_f1(protocol, "flat") == (0.94, None)
    assert int8_test_macro_f1(protocol, "one_graph") == (0.93, 0.92)


def test_speed_targets_and_table_read_the_paired_timing_when_the_report_has_it(tmp_path):
    """edge-bench's paired rows (INT8 and float32 in alternating blocks, one process) replace the ratio of the
    separate rows' means, in the targets and in the page's table; a report without them keeps the ratio
    (the test above)."""
    root = copy_tree(tmp_path)
    path = root / "runs/C-seed0/bench.json"
    bench = json.loads(path.read_text())
    stages = sorted({(m["stage"], m["threads"]) for m in bench["models"]})
    bench["speedups"] = [
        {
            "stage": stage,
            "threads": threads,
            "cpus": [0],
            "blocks": 20,
            "per_block": 10,
            "latency": {
                v: next(
                    m["latency"]
                    for m in bench["models"]
                    if (m["stage"], m["threads"], m["variant"]) == (stage, threads, v)
                )
                for v in ("int8", "float32")
            },
            "speedup": 2.5 if (stage, threads) != ("subtype", 1) else 1.95,
        }
        for stage, threads in stages
    ]
    path.write_text(json.dumps(bench))
    c = collect(root / "plan.toml", root / "runs", root=root)
    targets = {t["target"]: t for t in c["targets"]}
    one = targets["INT8 speed-up over float32 at 1 thread (lowest model)"]
    assert one["value"] == pytest.approx(1.95) and one["status"] == "not met" and "subtype at 1 thread" in one["where"]
    assert targets["INT8 speed-up over float32 (lowest model × threads)"]["value"] == pytest.approx(1.95)
    page = render(c, {})
    assert "timed in alternating blocks in one process" in page
    assert re.search(r"^\| subtype \| 1 \|.*\| 1\.950× \|$", page, re.M)
