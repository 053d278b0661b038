"""Issue 15, item 1: `quant-debug` finds the INT8 error layer by layer, on validation images, outside `export/`."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from click.testing import CliRunner
from rich.console import Console

from neurocascade import cli
from neurocascade.edge.manifest import verify_export
from neurocascade.edge.quant_debug import COLUMNS, _layer, worst_layers_table
from neurocascade.errors import UserError


def test_layer_names_from_tflite_tensor_names():
    assert _layer("model/top_bn/FusedBatchNormV3;model/top_conv/Conv2D") == "top_bn+top_conv"
    assert _layer("model/head_out_logits/MatMul") == "head_out_logits"
    assert _layer("image") == "image"


def test_quant_debug_writes_sorted_reports_beside_the_export(exported, tmp_path):
    run = tmp_path / "flat"
    shutil.copytree(exported["flat"][0], run)
    before = verify_export(run / "export")
    result = CliRunner().invoke(
        cli.main,
        [
            "quant-debug",
            "--run",
            str(run),
            "--top",
            "3",
            "--set",
            "export.debug_samples=4",
            "--set",
            "export.output=logits",
            "--set",
            "export.equalize=true",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "worst INT8 layers on 4 validation images" in result.output and "rmse/scale" in result.output
    report = json.loads((run / "quant-debug" / "flat.json").read_text())
    assert report["split"] == "val" and report["debug_samples"] == 4 and report["output"] == "logits"
    assert report["equalize"] is True  # the model the export would quantize
    assert report["representative_samples"] == 16  # the export's calibration set (tests' settings)
    rows = report["layers"]
    assert rows and all(set(r) == set(COLUMNS) for r in rows)
    scores = [r["rmse_scale"] for r in rows if r["rmse_scale"] is not None]
    assert scores == sorted(scores, reverse=True) and all(s >= 0 for s in scores)
    for r in rows:
        if r["scale"]:
            assert math.isclose(r["range"], 255 * r["scale"])
    assert verify_export(run / "export") == before  # the export and its manifest are untouched
    console = Console(record=True, width=160, color_system=None)
    console.print(worst_layers_table(report, 2))
    assert "quantized tensors" in console.export_text()


def test_quant_debug_refuses_an_unknown_stage(exported):
    with pytest.raises(UserError, match="no 'gate' model"):
        from neurocascade.edge.quant_debug import debug_run

        debug_run(exported["flat"][0], stages=["gate"])


def test_quant_debug_leaves_float_layers_out_of_its_rows(exported, tmp_path):
    """With `export.float_layers` the debugger quantizes as the export does: the named layer's op stays float, so no
    row comes from it (and the report says which layers were float)."""
    from neurocascade.edge.float_layers import layer_names
    from neurocascade.edge.quant_debug import debug_run

    run = tmp_path / "flat"
    shutil.copytree(exported["flat"][0], run)
    overrides = ["export.debug_samples=4"]
    rows = debug_run(run, overrides=overrides)["flat"]["layers"]
    conv = next(
        name
        for r in rows
        if r["op_name"] == "CONV_2D"
        for name in sorted(layer_names(r["tensor_name"]))
        if name.endswith("conv")
    )
    report = debug_run(run, overrides=[*overrides, f'export.float_layers=["{conv}"]'])["flat"]
    assert report["float_layers"] == [conv]
    assert not [r for r in report["layers"] if conv in layer_names(r["tensor_name"])]
    assert len(report["layers"]) < len(rows)
