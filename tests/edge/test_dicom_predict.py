"""DICOM through the edge runtime: `predict` on a .dcm gives what it gives on the PNG it was written from,
a multi-frame file gives one row per frame, and a DICOM without pixels is one line on the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

pydicom = pytest.importorskip("pydicom")

from neurocascade import cli  # noqa: E402
from neurocascade.edge.predict import predict_paths  # noqa: E402
from synthetic import write_dicom  # noqa: E402


def _gray(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def test_predict_on_dicom_matches_the_png(exported, phantom_root, tmp_path):
    export_dir = exported["cascade"][0] / "export"
    pngs = [sorted((phantom_root / "Testing" / cls).iterdir())[0] for cls in ("glioma", "notumor", "pituitary")]
    dcms = [write_dicom(tmp_path / f"{p.stem}.dcm", _gray(p), f"P{k}", monochrome1=k == 1) for k, p in enumerate(pngs)]
    shutil.copy(dcms[2], tmp_path / "IM0003")  # an extension-less DICOM, recognised by its preamble
    volume = write_dicom(tmp_path / "volume.dcm", [_gray(p) for p in pngs], "V")
    from_png = predict_paths(export_dir, [str(p) for p in pngs])
    from_dcm = predict_paths(export_dir, [str(p) for p in dcms] + [str(tmp_path / "IM0003")])
    from_volume = predict_paths(export_dir, [str(volume)])
    assert [r["path"] for r in from_volume] == [f"{volume}#{k}" for k in (1, 2, 3)]
    for rows in (from_dcm[:3], from_volume):
        assert [r["label"] for r in rows] == [r["label"] for r in from_png]
        assert [r["probabilities"] for r in rows] == [r["probabilities"] for r in from_png]
    assert from_dcm[3]["label"] == from_png[2]["label"]


def test_predict_on_a_folder_of_dicom(exported, tmp_path, phantom_root):
    png = sorted((phantom_root / "Testing" / "meningioma").iterdir())[0]
    write_dicom(tmp_path / "series" / "a.dcm", _gray(png))
    write_dicom(tmp_path / "series" / "b.dcm", [_gray(png), _gray(png)])
    result = CliRunner().invoke(
        cli.main,
        ["predict", "--models", str(exported["flat"][0] / "export"), str(tmp_path / "series"), "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["path"].rsplit("/", 1)[1] for r in rows] == ["a.dcm", "b.dcm#1", "b.dcm#2"]
    assert len({r["label"] for r in rows}) == 1


def test_predict_on_dicom_without_pixels_is_one_line(exported):
    from pydicom.data import get_testdata_file

    report = get_testdata_file("reportsi.dcm")
    result = CliRunner().invoke(cli.main, ["predict", "--models", str(exported["cascade"][0] / "export"), report])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "DICOM without pixel data" in result.output


def test_a_run_trained_on_dicom_is_evaluated_on_it(train_tiny_flat, phantom_root, tmp_path):
    from neurocascade.eval.run import evaluate
    from synthetic import dicom_copy_of_dataset

    dicom_copy_of_dataset(phantom_root, tmp_path / "dcm")
    train_tiny_flat(tmp_path / "flat", tmp_path / "dcm")
    report, out_dir = evaluate(tmp_path / "flat", split="test")
    assert report["models"]["flat"]["n"] == report["meta"]["images"] > 0
    assert all(e["path"].endswith(".dcm") for e in report["models"]["flat"]["most_confident_errors"])
