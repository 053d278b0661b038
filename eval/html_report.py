"""report.html: the evaluation report as one self-contained page to open in a browser or send by e-mail.

It is report.md itself, rendered (`neurocascade.markdown_html`), with every figure the Markdown links —
confusion matrices, reliability diagram, the confident-error sheets with their overlays — inlined as base64
PNG, so the two never disagree and nothing is computed twice. The page loads nothing from outside the file:
its Content-Security-Policy only admits data: images, no scripts and no URLs.

    path = write_report_html(markdown, out_dir)      # out_dir holds the figures report.md links
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from neurocascade.io import atomic_write_text
from neurocascade.markdown_html import data_uri, html_page, markdown_to_html

HTML_FILE = "report.html"


def _figure_in(folder: Path) -> Callable[[str], str | None]:
    """image_src for figures that are plain files of `folder` (a link that leaves it is not inlined)."""

    def src(link: str) -> str | None:
        path = (folder / link).resolve()
        if folder.resolve() not in path.parents:
            return None
        return data_uri(path)

    return src


def report_html(markdown: str, folder: str | Path) -> str:
    """The whole page for `markdown` (a report.md), its figures read from `folder` and inlined."""
    lines = markdown.splitlines()
    title = lines[0].lstrip("# ").strip() if lines and lines[0].startswith("# ") else "NeuroCascade evaluation"
    return html_page(title, markdown_to_html(markdown, _figure_in(Path(folder))), self_contained=True)


def write_report_html(markdown: str, out_dir: str | Path) -> Path:
    """Atomically write out_dir/report.html from report.md's text; returns its path."""
    path = Path(out_dir) / HTML_FILE
    atomic_write_text(path, report_html(markdown, out_dir))
    return path
