"""Same data means same pixels (issue 14, defect 7): eval and export compare the images they load with what
the run was trained on, by content, and refuse naming how many images changed.

Before: `eval` on a copy of the data with images swapped across classes (same paths, labels and split) was
accepted and overwrote the earlier report.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from neurocascade import cli
from neurocascade.errors import UserError


class Reached(Exception):
    """Raised by a stand-in for the step after the data checks: the command got past them."""


def _reached(*args, **kwargs):
    raise Reached


@pytest.fixture
def swapped(tmp_path, phantom_folder) -> Path:
    """A copy of the phantoms with one glioma and one meningioma test image swapped: same names, other pixels."""
    root = tmp_path / "swapped"
    shutil.copytree(phantom_folder, root)
    a = sorted((root / "Testing" / "glioma").glob("*.png"))[0]
    b = sorted((root / "Testing" / "meningioma").glob("*.png"))[0]
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    return root


@pytest.fixture
def run(finished_run, phantom_folder, tmp_path) -> Path:
    out = finished_run(tmp_path / "run", phantom_folder)
    (out / "eval" / "test-keras").mkdir(parents=True)
    (out / "eval" / "test-keras" / "report.json").write_text('{"earlier": true}')
    return out


def _refused(run: Path, data: Path, match: str) -> str:
    from neurocascade.eval.run import evaluate

    with pytest.raises(UserError, match=match) as exc:
        evaluate(run, data=str(data))
    assert "\n" not in str(exc.value)
    assert (run / "eval" / "test-keras" / "report.json").read_text() == '{"earlier": true}'
    return str(exc.value)


def test_eval_on_images_swapped_across_classes_is_refused_with_counts(run, swapped):
    message = _refused(run, swapped, "not the data the run was trained on")
    assert (
        "2 images with other content under the same path, "
        "2 images holding pixels the run was trained on under another label"
    ) in message


def test_a_run_without_an_image_list_still_refuses_other_content(run, swapped):
    (run / "images.csv").unlink()  # made before runs wrote it: the manifest's content fingerprint remains
    _refused(run, swapped, "same image paths and labels as the run's, other image content")


def test_a_run_without_any_content_record_warns_and_goes_on(run, phantom_folder, monkeypatch):
    import neurocascade.eval.run

    (run / "images.csv").unlink()
    manifest = json.loads((run / "manifest.json").read_text())
    del manifest["dataset"]["content"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(neurocascade.eval.run, "run_predictions", _reached)
    warnings: list[str] = []
    with pytest.raises(Reached):
        neurocascade.eval.run.evaluate(run, data=str(phantom_folder), warn=warnings.append)
    assert len(warnings) == 1 and "records no image content" in warnings[0]


def test_the_same_data_passes(run, phantom_folder, monkeypatch):
    import neurocascade.eval.run

    monkeypatch.setattr(neurocascade.eval.run, "run_predictions", _reached)
    warnings: list[str] = []
    with pytest.raises(Reached):
        neurocascade.eval.run.evaluate(run, data=str(phantom_folder), warn=warnings.append)
    assert warnings == []


def test_export_on_swapped_images_is_refused_before_anything_is_written(run, swapped):
    result = CliRunner().invoke(cli.main, ["export", "--run", str(run), "--data", str(swapped)])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "2 images with other content under the same path" in result.output
    assert not (run / "export").exists() and not list(run.glob("export.tmp-*"))


def test_export_on_a_relabelled_csv_is_refused(csv_phantoms, finished_run, tmp_path):
    run = finished_run(tmp_path / "run", csv_phantoms)
    lines = csv_phantoms.read_text().splitlines()
    path, label, split = lines[1].split(",")
    lines[1] = f"{path},{'meningioma' if label != 'meningioma' else 'glioma'},{split}"
    csv_phantoms.write_text("\n".join(lines) + "\n")
    from neurocascade.hierarchy.ownership import check_files_unchanged

    with pytest.raises(UserError, match="1 image with another label under the same path, 1 image holding"):
        check_files_unchanged(run)
