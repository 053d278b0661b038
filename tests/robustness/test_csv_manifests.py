"""CSV manifests (issue 14, item 6 / defect 8): each image once, every row whole, every path inside the
manifest's folder, and a CSV-trained run's eval and export find the CSV again.

Before: duplicate rows counted a test image twice (8 images → n = 16), a row without a label or an absolute
path outside the root was a traceback, `../` escaped the root, and eval/export of a CSV-trained run looked
for a Training/ folder in the CSV's folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from neurocascade import cli
from neurocascade.data.layout import read_manifest
from neurocascade.errors import DataError


class Reached(Exception):
    """Raised by a stand-in for the step after the data checks: the command got past them."""


def _refused(csv_path: Path, match: str) -> str:
    with pytest.raises(DataError, match=match) as exc:
        read_manifest(csv_path)
    message = str(exc.value)
    assert "\n" not in message
    return message


def _append(csv_path: Path, *lines: str) -> None:
    csv_path.write_text(csv_path.read_text() + "".join(f"{line}\n" for line in lines))


def _first_row(csv_path: Path) -> str:
    return csv_path.read_text().splitlines()[1]


def test_a_duplicate_path_names_the_path_and_both_lines(csv_phantoms):
    row = _first_row(csv_phantoms)
    _append(csv_phantoms, row)
    n = len(csv_phantoms.read_text().splitlines())
    message = _refused(csv_phantoms, "is listed again")
    assert f"manifest.csv:{n}:" in message and repr(row.split(",")[0]) in message and "first on line 2" in message


def test_the_same_image_under_another_spelling_is_a_duplicate(csv_phantoms):
    path, label, split = _first_row(csv_phantoms).split(",")
    folder, name = path.rsplit("/", 1)
    _append(csv_phantoms, f"./{folder}/../{folder.rsplit('/', 1)[-1]}/{name},{label},{split}")
    _refused(csv_phantoms, f"image {path!r} is listed again")


@pytest.mark.parametrize(
    "row, column",
    [
        ("Training/glioma/x.png", "label"),
        ("Training/glioma/x.png,", "label"),
        (",glioma", "path"),
        ("  ,glioma,train", "path"),
    ],
)
def test_a_row_without_a_field_names_the_row(csv_phantoms, row, column):
    _append(csv_phantoms, row)
    n = len(csv_phantoms.read_text().splitlines())
    _refused(csv_phantoms, f"manifest.csv:{n}: row has no {column}")


def test_paths_outside_the_manifest_folder_are_refused(csv_phantoms, tmp_path):
    outside = tmp_path / "elsewhere.png"
    shutil.copy(next(csv_phantoms.parent.rglob("*.png")), outside)
    for given in (str(outside), "../elsewhere.png", "Training/../../elsewhere.png"):
        body = csv_phantoms.read_text()
        _append(csv_phantoms, f"{given},glioma,train")
        _refused(csv_phantoms, f"image {given!r} is outside the manifest's folder")
        csv_phantoms.write_text(body)


def test_an_absolute_path_inside_the_folder_is_the_same_image(csv_phantoms):
    before = read_manifest(csv_phantoms)
    lines = csv_phantoms.read_text().splitlines()
    path, label, split = lines[1].split(",")
    lines[1] = f"{csv_phantoms.parent / path},{label},{split}"
    csv_phantoms.write_text("\n".join(lines) + "\n")
    assert read_manifest(csv_phantoms) == before


def test_audit_data_of_a_bad_manifest_is_one_line(csv_phantoms, tmp_path):
    _append(csv_phantoms, _first_row(csv_phantoms))
    result = CliRunner().invoke(cli.main, ["audit-data", str(csv_phantoms), "--out", str(tmp_path / "audit")])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "is listed again" in result.output
    assert not (tmp_path / "audit").exists()


def test_a_csv_trained_run_records_the_manifest(csv_phantoms, finished_run, tmp_path):
    run = finished_run(tmp_path / "run", csv_phantoms)
    assert json.loads((run / "manifest.json").read_text())["dataset"]["root"] == str(csv_phantoms)


def test_eval_of_a_csv_trained_run_finds_the_csv(csv_phantoms, finished_run, tmp_path, monkeypatch):
    import neurocascade.eval.run

    def reached(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(neurocascade.eval.run, "run_predictions", reached)
    run = finished_run(tmp_path / "run", csv_phantoms)
    with pytest.raises(Reached):
        neurocascade.eval.run.evaluate(run)


def test_export_of_a_csv_trained_run_finds_the_csv(csv_phantoms, finished_run, tmp_path, monkeypatch):
    import neurocascade.edge.export

    def reached(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(neurocascade.edge.export, "_fresh_folder", reached)  # the first step after the data are loaded
    run = finished_run(tmp_path / "run", csv_phantoms)
    with pytest.raises(Reached):
        neurocascade.edge.export.export_run(run)


def test_a_run_that_recorded_only_the_csv_folder_is_told_to_pass_the_csv(csv_phantoms, finished_run, tmp_path):
    """Runs trained on a CSV before this fix recorded its folder: the error says which --data to pass (the
    folder here holds no Training/ folder of its own, as a CSV dataset's need not)."""
    from neurocascade.eval.run import evaluate
    from neurocascade.errors import UserError

    run = finished_run(tmp_path / "run", csv_phantoms)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["dataset"]["root"] = str(csv_phantoms.parent)
    (run / "manifest.json").write_text(json.dumps(manifest))
    shutil.move(csv_phantoms.parent / "Training", csv_phantoms.parent / "images-train")
    shutil.move(csv_phantoms.parent / "Testing", csv_phantoms.parent / "images-test")
    csv_phantoms.write_text(
        csv_phantoms.read_text().replace("Training/", "images-train/").replace("Testing/", "images-test/")
    )
    with pytest.raises(UserError, match=f"for a CSV manifest, pass it: --data {csv_phantoms}"):
        evaluate(run)
