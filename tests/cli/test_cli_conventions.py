"""One convention per thing across commands (issue 17, item 6): no trained model needed for any of these."""

import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from neurocascade import cli
from neurocascade.edge.predict import gate_text, predict_table

COMMANDS = [
    "make-phantoms",
    "audit-data",
    "train-cascade",
    "train-flat",
    "eval",
    "export",
    "quant-debug",
    "predict",
    "bundle",
    "edge-bench",
    "results",
]


def _invoke(*args: str):
    return CliRunner().invoke(cli.main, list(args))


@pytest.mark.parametrize("name", COMMANDS)
def test_every_visible_option_has_help(name):
    command = cli.main.commands[name]
    missing = [p.name for p in command.params if isinstance(p, click.Option) and not p.hidden and not p.help]
    assert not missing, f"{name}: options without help text: {missing}"


def test_export_help_example_is_one_export_accepts():
    text = _invoke("export", "--help").output
    assert "--set export." in text and "data.image_size" not in text


def test_deprecated_spellings_are_hidden():
    assert "--variant" not in _invoke("predict", "--help").output
    bench_help = _invoke("edge-bench", "--help").output
    assert "--out" in bench_help and "--json" not in bench_help and "--models" in bench_help


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "x.png"],
        ["predict", "--run", "a", "--models", "b", "x.png"],
        ["edge-bench"],
        ["edge-bench", "--run", "a", "--models", "b"],
    ],
)
def test_models_are_given_one_way_with_a_one_line_error(args):
    result = _invoke(*args)
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "--run RUN" in result.output and "--models EXPORT_DIR" in result.output


def test_predict_run_and_models_name_the_same_folder(tmp_path):
    for args in (["--run", str(tmp_path)], ["--models", str(tmp_path / "export")]):
        result = _invoke("predict", *args, "x.png")
        assert result.exit_code == 2 and f"{tmp_path / 'export'}: export directory not found" in result.output


def test_backend_and_old_variant_must_agree(tmp_path):
    result = _invoke("predict", "--models", str(tmp_path), "--backend", "tflite-int8", "--variant", "float32", "x.png")
    assert result.exit_code == 2 and "disagree" in result.output


def test_audit_data_takes_data_like_the_other_commands(tmp_path):
    result = _invoke("audit-data", "--data", str(tmp_path / "nowhere"), "--config", "configs/test.toml")
    assert result.exit_code == 2 and "nowhere" in result.output
    both = _invoke("audit-data", "a", "--data", "b", "--config", "configs/test.toml")
    assert both.exit_code == 2 and "two datasets" in both.output


def test_gate_decision_is_spelled_out():
    assert gate_text({"p_tumour": 0.45, "tau": 0.3}) == "0.450 ≥ τ 0.300 → subtype"
    assert gate_text({"p_tumour": 0.2, "tau": 0.3}) == "0.200 < τ 0.300 → no_tumor"
    assert gate_text(None) == "-"
    row = {
        "path": "a.png",
        "label": "glioma",
        "stages": ["gate", "subtype"],
        "gate": {"p_tumour": 0.45, "tau": 0.3},
        "probabilities": {"glioma": 0.2, "meningioma": 0.15, "pituitary": 0.1, "no_tumor": 0.55},
    }
    table = predict_table([row])
    assert "gate P(tumour) vs τ" in [c.header for c in table.columns] and "need not be the largest" in table.caption
    assert predict_table([{**row, "gate": None}]).caption is None


def test_litert_startup_notice_is_hidden_and_other_stderr_kept():
    code = (
        "import os\nfrom neurocascade.edge.quiet import quiet_litert\nwith quiet_litert():\n"
        "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n')\n"
        "    os.write(2, b'ERROR: something real\\n')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    assert proc.returncode == 0 and proc.stderr == "ERROR: something real\n"
