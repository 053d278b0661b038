"""The project's own Markdown (reports, RESULTS.md) as one HTML page: the same text, so HTML and Markdown agree.

A small converter for the subset the project writes — headings, paragraphs, pipe tables with alignment, bullet
and numbered lists (with indented continuation lines), fenced code, block quotes, `code`, **bold**, *italic*,
links and images — not a general CommonMark parser. Every piece of text is HTML-escaped (file names in reports
come from users); links may only be relative, `#anchors`, http(s) or mailto; images go through `image_src`,
which can inline them as data URIs (`data_uri`) so a page is one self-contained file.

    body = markdown_to_html(text, image_src=lambda src: data_uri(folder / src))
    atomic_write_text(path, html_page("Evaluation", body, self_contained=True))

Standard library only: `make results` renders without TensorFlow.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["data_uri", "html_page", "inline", "markdown_to_html"]

ImageSource = Callable[[str], "str | None"]
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\d+[.)]\s+(.*)$")
_TABLE_SEP = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_IMAGE_LINE = re.compile(r"^!\[([^\]]*)\]\(([^)\s]+)\)\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*(?=\S)([^*]+?)(?<=\S)\*(?![\w*])")
_SAFE_HREF = re.compile(r"^(https?://|mailto:|#|[^:]*$)", re.IGNORECASE)
_PLACEHOLDER = "\x00{}\x00"
MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".gif": "image/gif",
    ".webp": "image/webp",
}

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;max-width:1100px;
margin:2em auto;padding:0 1.2em;background:#fff}
h1{font-size:1.6em;border-bottom:2px solid #d0d7de;padding-bottom:.3em}h2{margin-top:1.8em;
border-bottom:1px solid #d0d7de}h3{margin-top:1.3em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}th,td{border:1px solid #d0d7de;padding:.3em .6em;
vertical-align:top}th{background:#f3f5f7}tr:nth-child(even) td{background:#fafbfc}
td.r,th.r{text-align:right;font-variant-numeric:tabular-nums}td.r{white-space:nowrap}td.c,th.c{text-align:center}
code{background:#f3f5f7;padding:.1em .3em;border-radius:3px;font-size:.9em;word-break:break-all}
pre{background:#f3f5f7;padding:.8em;overflow-x:auto}pre code{background:none;padding:0}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #e5e8eb}
figcaption{color:#57606a;font-size:.9em}blockquote{border-left:4px solid #d0d7de;margin:0;padding:0 1em;
color:#444}.note{background:#fff8e1;border:1px solid #f0d58c;padding:.5em .8em}
"""


def data_uri(path: str | Path) -> str | None:
    """The file as a base64 `data:` URI (None when it is missing or not an image type we know)."""
    path = Path(path)
    mime = MIME.get(path.suffix.lower())
    if mime is None or not path.is_file():
        return None
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _href(url: str) -> str | None:
    url = html.unescape(url)
    return html.escape(url, quote=True) if _SAFE_HREF.match(url) else None


def inline(text: str, image_src: ImageSource | None = None) -> str:
    """One line of Markdown as escaped HTML: code spans first (taken literally), then images, links, emphasis."""
    kept: list[str] = []

    def keep(fragment: str) -> str:
        kept.append(fragment)
        return _PLACEHOLDER.format(len(kept) - 1)

    text = _CODE_SPAN.sub(lambda m: keep(f"<code>{html.escape(m.group(2).strip())}</code>"), text)
    text = html.escape(text.replace("\\*", "\x01"), quote=True)

    def image(m: re.Match) -> str:
        alt, src = m.group(1), html.unescape(m.group(2))
        uri = image_src(src) if image_src else None
        if uri is None:
            return keep(f'<span class="note">figure not available: {alt}</span>')
        return keep(f'<img src="{html.escape(uri, quote=True)}" alt="{alt}">')

    def link(m: re.Match) -> str:
        href = _href(m.group(2))
        return keep(f'<a href="{href}">{m.group(1)}</a>' if href else m.group(1))

    text = _IMAGE.sub(image, text)
    text = _LINK.sub(link, text)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    text = _ITALIC.sub(r"<em>\1</em>", text).replace("\x01", "*")
    return re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], text)


def _cells(line: str) -> list[str]:
    line = line.strip()
    line = line[1:] if line.startswith("|") else line
    line = line[:-1] if line.endswith("|") and not line.endswith("\\|") else line
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)]  # \| is a literal bar


def _align(cell: str) -> str:
    cell = cell.strip()
    if cell.startswith(":") and cell.endswith(":"):
        return "c"
    return "r" if cell.endswith(":") else ""


def _table(lines: list[str], image_src: ImageSource | None) -> str:
    header, aligns = _cells(lines[0]), [_align(c) for c in _cells(lines[1])]

    def row(cells: list[str], tag: str) -> str:
        out = []
        for i, cell in enumerate(cells):
            cls = aligns[i] if i < len(aligns) else ""
            out.append(f"<{tag}{f' class={chr(34)}{cls}{chr(34)}' if cls else ''}>{inline(cell, image_src)}</{tag}>")
        return "<tr>" + "".join(out) + "</tr>"

    body = "\n".join(row(_cells(line), "td") for line in lines[2:])
    return f"<table>\n<thead>{row(header, 'th')}</thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _slug(text: str, seen: dict[str, int]) -> str:
    slug = re.sub(r"[^\w]+", "-", re.sub(r"<[^>]+>", "", text).lower()).strip("-") or "section"
    seen[slug] = seen.get(slug, 0) + 1
    return slug if seen[slug] == 1 else f"{slug}-{seen[slug]}"


def _blocks(lines: list[str], image_src: ImageSource | None) -> Iterator[str]:
    i, seen = 0, {}
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped or (stripped.startswith("<!--") and stripped.endswith("-->")):
            i += 1
        elif stripped.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            yield "<pre><code>" + html.escape("\n".join(lines[i + 1 : j])) + "</code></pre>"
            i = j + 1
        elif m := _HEADING.match(stripped):
            level, content = len(m.group(1)), inline(m.group(2), image_src)
            yield f'<h{level} id="{_slug(content, seen)}">{content}</h{level}>'
            i += 1
        elif stripped.startswith("|") and i + 1 < len(lines) and _TABLE_SEP.match(lines[i + 1].strip()):
            j = i + 2
            while j < len(lines) and lines[j].strip().startswith("|"):
                j += 1
            yield _table([ln.strip() for ln in lines[i:j]], image_src)
            i = j
        elif m := _IMAGE_LINE.match(stripped):
            yield f"<figure>{inline(stripped, image_src)}<figcaption>{html.escape(m.group(1))}</figcaption></figure>"
            i += 1
        elif _BULLET.match(stripped) or _NUMBERED.match(stripped):
            pattern, tag = (_BULLET, "ul") if _BULLET.match(stripped) else (_NUMBERED, "ol")
            items: list[str] = []
            while i < len(lines) and lines[i].strip():
                m = pattern.match(lines[i].strip()) if not lines[i].startswith((" ", "\t")) else None
                if m:
                    items.append(m.group(1))
                elif items:
                    items[-1] += " " + lines[i].strip()
                i += 1
            yield f"<{tag}>" + "".join(f"<li>{inline(item, image_src)}</li>" for item in items) + f"</{tag}>"
        elif stripped.startswith(">"):
            quoted = []
            while i < len(lines) and lines[i].strip().startswith(">"):
                quoted.append(lines[i].strip()[1:].lstrip())
                i += 1
            yield "<blockquote>" + "\n".join(_blocks(quoted, image_src)) + "</blockquote>"
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not _starts_block(lines, i):
                para.append(lines[i].strip())
                i += 1
            yield "<p>" + inline(" ".join(para), image_src) + "</p>"


def _starts_block(lines: list[str], i: int) -> bool:
    s = lines[i].strip()
    return bool(
        s.startswith(("```", ">", "#"))
        or _BULLET.match(s)
        or _NUMBERED.match(s)
        or _IMAGE_LINE.match(s)
        or (s.startswith("|") and i + 1 < len(lines) and _TABLE_SEP.match(lines[i + 1].strip()))
    )


def markdown_to_html(text: str, image_src: ImageSource | None = None) -> str:
    """The HTML body of a Markdown text (module doc); `image_src(src)` gives each image's URL or None."""
    return "\n".join(_blocks(text.splitlines(), image_src)) + "\n"


def html_page(title: str, body: str, self_contained: bool = False) -> str:
    """A whole HTML5 page around `body`. `self_contained`: a Content-Security-Policy that lets the browser load
    nothing from outside the file (images only as data: URIs, no scripts), so the page provably stands alone."""
    csp = (
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'\">\n"
        if self_contained
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        + csp
        + f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )
