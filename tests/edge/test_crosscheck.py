"""x86-vs-aarch64 agreement of predict outputs: hand-made cases at the one-quantization-step boundary."""

from __future__ import annotations

import json

import pytest

from neurocascade.edge.crosscheck import STEP, compare_predictions, main


def row(path: str, label: str, probs: dict, stages: list[str]) -> dict:
    return {"path": path, "label": label, "probabilities": probs, "stages": stages}


GATE_ONLY = {"glioma": None, "meningioma": None, "pituitary": None, "no_tumor": 0.8}
TUMOUR = {"glioma": 0.5, "meningioma": 0.2, "pituitary": 0.1, "no_tumor": 0.2}
X86 = [
    row("/host/images/a.png", "no_tumor", GATE_ONLY, ["gate"]),
    row("/host/images/b.png", "glioma", TUMOUR, ["gate", "subtype"]),
]


def test_identical_outputs_under_other_folders_pass():
    arm = [dict(r, path=r["path"].replace("/host/images", "/opt/nc/images")) for r in X86]
    result = compare_predictions(X86, arm)
    assert result["passed"] and result["max_abs_prob_diff"] == 0 and result["n_images"] == 2
    assert result["labels"] == {"a.png": "no_tumor", "b.png": "glioma"}


def test_one_step_passes_and_more_fails():
    one = [X86[0], row("b.png", "glioma", {**TUMOUR, "glioma": 0.5 + STEP}, ["gate", "subtype"])]
    result = compare_predictions(X86, one)
    assert result["passed"] and result["max_abs_prob_diff_in_steps"] == pytest.approx(1.0, abs=1e-3)
    more = [X86[0], row("b.png", "glioma", {**TUMOUR, "glioma": 0.5 + 1.5 * STEP}, ["gate", "subtype"])]
    result = compare_predictions(X86, more)
    assert not result["passed"] and result["same_labels"] and result["beyond_tolerance"][0]["class"] == "glioma"


def test_a_different_tau_decision_or_label_fails():
    crossed = [row("a.png", "glioma", TUMOUR, ["gate", "subtype"]), X86[1]]
    result = compare_predictions(X86, crossed)
    assert not result["passed"] and not result["same_labels"] and not result["same_tau_decisions"]
    assert result["unknown_mismatches"] and result["decision_mismatches"][0]["image"] == "a.png"


def test_different_image_sets_and_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="different images"):
        compare_predictions(X86, X86[:1])
    with pytest.raises(ValueError, match="share a file name"):
        compare_predictions(X86 + [dict(X86[0], path="/elsewhere/a.png")], X86)


def test_command_line_checks_every_machine_and_exits_by_verdict(tmp_path, capsys):
    (tmp_path / "x86.json").write_text(json.dumps(X86))
    (tmp_path / "arm.json").write_text(json.dumps(X86))
    (tmp_path / "extra.json").write_text(json.dumps({"seconds": {"total": 1}}))
    assert (
        main(
            [
                str(tmp_path / "x86.json"),
                f"a72={tmp_path / 'arm.json'}",
                f"a76={tmp_path / 'arm.json'}",
                "--extra",
                str(tmp_path / "extra.json"),
                "--out",
                str(tmp_path / "result.json"),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines()[1].startswith("a76: PASS: 2 images")
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["run"] == {"seconds": {"total": 1}} and set(result["checks"]) == {"a72", "a76"}
    (tmp_path / "bad.json").write_text(json.dumps([X86[0], dict(X86[1], label="meningioma")]))
    assert main([str(tmp_path / "x86.json"), f"a72={tmp_path / 'arm.json'}", f"a76={tmp_path / 'bad.json'}"]) == 1
    assert main([str(tmp_path / "x86.json"), f"a72={tmp_path / 'missing.json'}"]) == 2
