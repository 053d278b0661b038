"""MODEL_CARD.md: written by every export, listed and verified like the models, bundled, and true to the run."""

from __future__ import annotations

import json
import shutil

import pytest

from neurocascade.edge.manifest import MANIFEST_FILE, MODEL_CARD_FILE, read_manifest, verify_export
from neurocascade.edge.model_card import NOT_RECORDED, model_card, read_licences
from neurocascade.errors import UserError


def test_export_writes_a_card_true_to_the_run(exported):
    run, agreement = exported["cascade"]
    card = (run / "export" / MODEL_CARD_FILE).read_text()
    manifest = json.loads((run / "manifest.json").read_text())
    tau = json.loads((run / "tau.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert "Research only. Not a medical device" in card
    data = manifest["dataset"]
    assert f"fingerprint `{data['fingerprint']}`" in card and f"Protocol {data['protocol']}: " in card
    assert f"{data['counts']['train']} training, {data['counts']['val']} validation" in card
    assert f"τ = {tau['tau']:.4f}" in card and f"sensitivity ≥ {tau['target_sensitivity']}" in card
    assert f"| {summary['stages']['gate']['val_macro_f1']:.3f} |" in card
    gate = agreement["models"]["gate"]
    assert f"| gate | {gate['n_val']} | {gate['int8_top1_agreement']:.3f} |" in card
    phantoms = read_licences()["data"]["phantoms"]["licence"]
    assert phantoms in card and NOT_RECORDED not in card.split("Training data")[1]
    assert "Not yet evaluated" in card  # exported straight after training


def test_card_is_listed_and_verified_like_the_models(exported, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(exported["flat"][0] / "export", folder)
    assert MODEL_CARD_FILE in read_manifest(folder).files
    (folder / MODEL_CARD_FILE).write_text("# an edited card\n")
    with pytest.raises(UserError, match=f"{MODEL_CARD_FILE}: sha256 differs"):
        verify_export(folder)


def test_an_export_from_before_the_card_still_verifies_but_an_unlisted_card_does_not(exported, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(exported["flat"][0] / "export", folder)
    raw = json.loads((folder / MANIFEST_FILE).read_text())
    raw["files"].pop(MODEL_CARD_FILE)
    (folder / MANIFEST_FILE).write_text(json.dumps(raw))
    with pytest.raises(UserError, match=f"{MODEL_CARD_FILE}: not listed"):
        verify_export(folder)
    (folder / MODEL_CARD_FILE).unlink()
    assert MODEL_CARD_FILE not in verify_export(folder).files


def test_card_shows_the_test_metrics_once_evaluated(exported, tmp_path):
    """The cascade's own Keras test report, and for the flat run the cascade's that scored it with --flat."""
    from neurocascade.eval.run import evaluate

    runs = {}
    for kind in ("cascade", "flat"):
        runs[kind] = tmp_path / kind
        shutil.copytree(exported[kind][0], runs[kind], ignore=shutil.ignore_patterns("eval"))
    report, _ = evaluate(runs["cascade"], flat=runs["flat"], backend="keras")
    for kind, run in runs.items():
        card = model_card(run, exported[kind][1], "2026-01-01T00:00:00Z")
        ci = report["models"][kind]["ci"]["macro_f1"]
        assert "Not yet evaluated" not in card, kind
        assert f"| macro-F1 | {ci['value']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}] |" in card.replace("−", "-")
        assert str(runs["cascade"] / "eval" / "test-keras" / "report.json") in card


def test_unknown_licences_are_said_not_guessed(exported):
    run, agreement = exported["flat"]
    card = model_card(run, agreement, "2026-01-01T00:00:00Z", licences={})
    assert card.count(NOT_RECORDED) == 3


def test_bundle_ships_the_card(exported):
    from neurocascade.edge.bundle import bundle_members

    _, files, _ = bundle_members(exported["cascade"][0])
    assert files[f"export/{MODEL_CARD_FILE}"] == (exported["cascade"][0] / "export" / MODEL_CARD_FILE).read_bytes()
    assert f"Read `export/{MODEL_CARD_FILE}` first" in files["README.md"].decode()


def test_licences_file_parses_and_a_broken_one_is_one_line(tmp_path):
    assert {"code", "data", "weights"} <= set(read_licences())
    broken = tmp_path / "licences.toml"
    broken.write_text("[data\n")
    with pytest.raises(UserError, match="not a readable licences file") as err:
        read_licences(broken)
    assert "\n" not in str(err.value)
