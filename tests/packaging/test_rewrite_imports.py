"""scripts/rewrite_imports.py: old top-level names move under neurocascade.*, config keys stay, and a second run
changes nothing; the repository itself has no old import left (a merged branch that adds one fails here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("rewrite_imports", REPO / "scripts" / "rewrite_imports.py")
rewrite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rewrite)
MODULES = {
    "data": {"phantoms", "split"},
    "models": {"lite2"},
    "hierarchy": set(),
    "edge": {"bench"},
    "eval": {"run"},
    "results": {"probe"},
}

BEFORE = """import cli
import eval.run
from data.phantoms import write_phantom_dataset
from data import split  # noqa
from neurocascade.config import load_config


def f(monkeypatch, data):
    import edge.bench
    monkeypatch.setattr("data.phantoms.time", 1)
    monkeypatch.setattr(edge.bench, "x", eval.run.evaluate)
    cmd = [sys.executable, "-m", "edge.bench", "--set", "data.split_seed=3", "data.split"]
    return data.split, cfg.data.root, "models.int8.sha256", "cli.py"
"""
AFTER = """from neurocascade import cli
import neurocascade.eval.run
from neurocascade.data.phantoms import write_phantom_dataset
from neurocascade.data import split  # noqa
from neurocascade.config import load_config


def f(monkeypatch, data):
    import neurocascade.edge.bench
    monkeypatch.setattr("neurocascade.data.phantoms.time", 1)
    monkeypatch.setattr(neurocascade.edge.bench, "x", neurocascade.eval.run.evaluate)
    cmd = [sys.executable, "-m", "neurocascade.edge.bench", "--set", "data.split_seed=3", "neurocascade.data.split"]
    return data.split, cfg.data.root, "models.int8.sha256", "cli.py"
"""


def test_python_imports_strings_and_dotted_uses_move_under_the_namespace_once():
    assert rewrite.rewrite_python(BEFORE, MODULES) == AFTER
    assert rewrite.rewrite_python(AFTER, MODULES) == AFTER


def test_text_files_get_module_paths_not_config_keys():
    text = "run `python -m results.probe RUN` with --set data.split_seed=1\n    from edge.bench import x\n"
    want = (
        "run `python -m neurocascade.results.probe RUN` with --set data.split_seed=1\n"
        "    from neurocascade.edge.bench import x\n"
    )
    assert rewrite.rewrite_text(text, MODULES) == want and rewrite.rewrite_text(want, MODULES) == want


def test_the_repository_needs_no_rewrite(capsys):
    assert rewrite.main(["--check"]) == 0, capsys.readouterr().out
