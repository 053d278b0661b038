#!/usr/bin/env python
"""Rewrite the project's imports to the one `neurocascade.*` namespace (issue 16, item 1); idempotent.

The repository keeps its top-level folders (data/, models/, hierarchy/, edge/, eval/, results/, cli.py); what
changes is the name they import under: `from data.x import y` becomes `from neurocascade.data.x import y`.
Other branches add code with the old names while this rewrite is merged, so it is a script, re-run after
every merge until no old name is left:

    python scripts/rewrite_imports.py            # rewrite in place, print the files changed
    python scripts/rewrite_imports.py --check    # exit 1 and list the files that still need it

Python files (tokenized, so code, strings and comments are told apart):
- `import data.x`, `from data.x import y`, `from data import x` get the `neurocascade.` prefix; a bare
  `import cli` becomes `from neurocascade import cli`;
- in a file that did `import eval.run`, code that says `eval.run.x` becomes `neurocascade.eval.run.x`;
- strings naming a module that exists, such as `patch("data.phantoms.time")` or `"-m", "edge.bench"`.
  Only real module names are touched: `"data.image_size=128"` is a config key and stays.
Text files (Markdown, Makefile, TOML, shell): `-m edge.bench`-style module paths and import lines.
A name already preceded by a dot (`neurocascade.data.x`) is never matched again, hence idempotent.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "neurocascade"
PACKAGES = ("data", "models", "hierarchy", "edge", "eval", "results")
MODULES = ("cli",)  # root modules that are part of the namespace
TEXT_SUFFIXES = {".md", ".toml", ".sh", ".txt", ".cfg", ".ini", ".yml", ".yaml"}
TEXT_NAMES = {"Makefile", "run"}  # .ci/run
SKIP_DIRS = {".git", ".venv", "runs", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache"}
OLD = PACKAGES + MODULES
OWN_FILES = {"rewrite_imports.py", "test_rewrite_imports.py"}  # their examples are the old names on purpose


def module_names(root: Path = ROOT) -> dict[str, set[str]]:
    """{package: its module and subpackage names} as found on disk (what a string may name)."""
    out: dict[str, set[str]] = {}
    for pkg in PACKAGES:
        folder = root / pkg
        out[pkg] = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
        out[pkg] |= {p.parent.name for p in folder.glob("*/__init__.py")}
    return out


def _dotted_pattern(modules: dict[str, set[str]]) -> re.Pattern[str]:
    """`pkg.module` for a real module, not preceded by a word character, dot, slash or dash."""
    alternatives = "|".join(
        f"{pkg}\\.(?:{'|'.join(sorted(mods, key=len, reverse=True))})" for pkg, mods in modules.items() if mods
    )
    return re.compile(rf"(?<![\w./-])(?:{alternatives})(?!\w)")


def _prefix(match: re.Match[str]) -> str:
    return f"{NAMESPACE}.{match.group(0)}"


def _offsets(source: str) -> list[int]:
    starts, total = [0], 0
    for line in source.splitlines(keepends=True):
        total += len(line)
        starts.append(total)
    return starts


def rewrite_python(source: str, modules: dict[str, set[str]]) -> str:
    """The module's source with old top-level names moved under the namespace (module doc)."""
    dotted = _dotted_pattern(modules)
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    starts = _offsets(source)
    edits: list[tuple[int, int, str]] = []  # (start, end, text) in character offsets

    def at(pos: tuple[int, int]) -> int:
        return starts[pos[0] - 1] + pos[1]

    significant = [t for t in tokens if t.type not in (tokenize.NL, tokenize.COMMENT)]
    imported_dotted: set[str] = set()
    for i, tok in enumerate(significant):
        prev = significant[i - 1] if i else None
        statement_start = (
            prev is None
            or prev.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
            or (prev.type == tokenize.OP and prev.string in (";", ":"))
        )
        if tok.type == tokenize.NAME and tok.string in ("import", "from") and statement_start:
            j = i + 1
            while j < len(significant):  # each dotted name of the statement
                first = significant[j]
                if (
                    first.type == tokenize.NAME
                    and first.string in OLD
                    and (j == i + 1 or significant[j - 1].string == ",")
                ):
                    names = [first.string]
                    k = j + 1
                    while (
                        k + 1 < len(significant)
                        and significant[k].string == "."
                        and significant[k + 1].type == tokenize.NAME
                    ):
                        names.append(significant[k + 1].string)
                        k += 2
                    end = significant[k]
                    bare_import = (
                        tok.string == "import"
                        and len(names) == 1
                        and j == i + 1
                        and (end.type in (tokenize.NEWLINE, tokenize.ENDMARKER) or end.string == ";")
                    )
                    if bare_import:  # `import cli` -> `from neurocascade import cli`
                        edits.append((at(tok.start), at(first.end), f"from {NAMESPACE} import {first.string}"))
                    else:
                        edits.append((at(first.start), at(first.start), f"{NAMESPACE}."))
                        if tok.string == "import" and len(names) > 1:
                            imported_dotted.add(".".join(names[:2]))
                    j = k
                    continue
                if first.type in (tokenize.NEWLINE, tokenize.ENDMARKER) or first.string in (";", "import"):
                    break
                j += 1
        elif tok.type == tokenize.STRING:
            text = dotted.sub(_prefix, tok.string)
            if text != tok.string:
                edits.append((at(tok.start), at(tok.end), text))
    if imported_dotted:  # code references `eval.run.x` after `import eval.run`
        for i, tok in enumerate(significant[:-2]):
            prev = significant[i - 1] if i else None
            if tok.type != tokenize.NAME or (prev is not None and prev.string in (".", "import", "from")):
                continue
            if significant[i + 1].string == "." and f"{tok.string}.{significant[i + 2].string}" in imported_dotted:
                if not any(s <= at(tok.start) < e for s, e, _ in edits):
                    edits.append((at(tok.start), at(tok.start), f"{NAMESPACE}."))
    for start, end, text in sorted(edits, reverse=True):
        source = source[:start] + text + source[end:]
    return source


def rewrite_text(text: str, modules: dict[str, set[str]]) -> str:
    """Module paths in prose and shell: `-m edge.bench`, `from data.x import`, `import models.lite2`."""
    dotted = _dotted_pattern(modules)
    text = re.sub(rf"(-m\s+)({dotted.pattern})", lambda m: m.group(1) + f"{NAMESPACE}.{m.group(2)}", text)
    old = "|".join(OLD)
    text = re.sub(
        rf"(?m)^(\s*(?:>>>\s*)?from\s+)((?:{old})(?:\.\w+)*\s+import\b)",
        lambda m: f"{m.group(1)}{NAMESPACE}.{m.group(2)}",
        text,
    )
    return re.sub(
        rf"(?m)^(\s*(?:>>>\s*)?import\s+)((?:{'|'.join(PACKAGES)})\.\w+)",
        lambda m: f"{m.group(1)}{NAMESPACE}.{m.group(2)}",
        text,
    )


def candidates(root: Path = ROOT) -> list[Path]:
    """Every Python and text file of the repository that may name a module (not runs/, .venv/, .git/)."""
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in SKIP_DIRS for part in rel.parts) or not path.is_file() or path.is_symlink():
            continue
        if rel.parts[:2] == ("tests", "results") and "fixtures" in rel.parts or path.name in OWN_FILES:
            continue  # recorded inputs of the results tests stay as recorded; this script's examples stay old
        if path.suffix == ".py" or path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES:
            out.append(path)
    return out


def rewrite_file(path: Path, modules: dict[str, set[str]]) -> str | None:
    """The file's new text, or None when it needs no change."""
    old = path.read_text(encoding="utf-8")
    new = rewrite_python(old, modules) if path.suffix == ".py" else rewrite_text(old, modules)
    return None if new == old else new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file needs the rewrite")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository to rewrite (default: this one)")
    args = parser.parse_args(argv)
    modules = module_names(args.root)
    changed = []
    for path in candidates(args.root):
        new = rewrite_file(path, modules)
        if new is not None:
            changed.append(path.relative_to(args.root).as_posix())
            if not args.check:
                path.write_text(new, encoding="utf-8")
    for rel in changed:
        print(("needs rewrite: " if args.check else "rewrote: ") + rel)
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
