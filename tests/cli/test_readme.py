"""The README's commands exist as written: every `python cli.py` command and option, `make` target and extra.

What each command does is exercised by its own tests and by `make demo` / `make results`; this keeps the
newcomer's page from drifting away from the code (a renamed option fails here, not on a reader's machine).
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from neurocascade.cli import main

REPO = Path(__file__).resolve().parents[2]


def _shell_lines() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    lines = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def _options(line: str) -> tuple[str, set[str]]:
    """Command name and the --options of one `python cli.py ...` line ([...] optional parts included)."""
    words = shlex.split(line.replace("[", " ").replace("]", " ").replace("|", " "))
    command = words[2]
    return command, {w.split("=")[0] for w in words[3:] if w.startswith("--")}


CLI_LINES = [line for line in _shell_lines() if line.startswith("python cli.py")]


def test_the_readme_shows_every_command():
    shown = {_options(line)[0] for line in CLI_LINES}
    assert shown == set(main.commands), f"commands not in the README: {set(main.commands) - shown}"


@pytest.mark.parametrize("line", CLI_LINES)
def test_readme_command_lines_use_real_options(line):
    command, options = _options(line)
    assert command in main.commands, f"{command}: no such command"
    known = {opt for param in main.commands[command].params for opt in getattr(param, "opts", [])}
    assert options <= known | {"--help"}, f"{command}: unknown options {sorted(options - known)}"


def test_readme_make_targets_and_extras_exist():
    makefile = (REPO / "Makefile").read_text()
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for line in _shell_lines():
        if line.startswith("make "):
            target = line.split()[1]
            assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), f"make {target}: no such target"
        for extra in re.findall(r"\.\[([a-z,]+)\]", line):
            assert set(extra.split(",")) <= set(extras), f"{line}: unknown extra"
