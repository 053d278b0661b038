"""report.html from the checked-in fixture: one self-contained, escaped page holding every section and figure."""

from __future__ import annotations

import base64
import html.parser
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neurocascade.eval.figures import error_sheet
from neurocascade.eval.html_report import report_html, write_report_html
from neurocascade.eval.report import build_report, report_figures, report_markdown
from tests.eval.test_report import CFG, META, fixture_models

AUDIT = {
    "images": 150,
    "readable": 149,
    "unreadable": 1,
    "threshold_bits": 38,
    "copy_groups": 140,
    "groups_with_copies": 9,
    "label_conflicts": 2,
    "test_with_copy_in_train_as_distributed": {"images": 120, "exact": 3, "near": 4, "mirror": 0, "none": 113},
    "dropped_from_training": 7,
    "split_counts": {"train": 20, "val": 9, "test": 120, "dropped": 7},
    "copy_pairs_after_split": {"test-test": 2, "test-train": 0, "train-train": 5},
}
HOSTILE = 'Testing/glioma/<script>alert(1)</script>&x"|.jpg'


class _Page(html.parser.HTMLParser):
    """Tags, attributes and text of a page, to check it without a browser."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    return parser


def make_report_dir(out: Path, paths_override: str | None = None) -> tuple[dict, str]:
    """A report folder like eval writes: figures, an error sheet per model with heat maps, report.md's text."""
    models = fixture_models()
    if paths_override is not None:
        for m in models.values():
            m["paths"] = [paths_override] + list(m["paths"][1:])
    report = build_report(models, CFG, META, audit=AUDIT)
    figures = report_figures(report, out)
    rng = np.random.default_rng(0)
    for name, section in report["models"].items():
        items = [
            {**e, "image": rng.integers(0, 255, (32, 32), dtype=np.uint8), "heatmap": rng.random((8, 8))}
            for e in section["most_confident_errors"][:4]
        ]
        error_sheet(items, out / f"errors-{name}.png")
        figures[f"Most confident errors: {name} — Grad-CAM overlay"] = f"errors-{name}.png"
    return report, report_markdown(report, figures)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[dict, str, Path]:
    out = tmp_path_factory.mktemp("html-report")
    report, markdown = make_report_dir(out)
    return report, markdown, write_report_html(markdown, out)


def test_every_figure_is_inlined_and_nothing_is_fetched(written):
    _, markdown, path = written
    page = path.read_text(encoding="utf-8")
    tags = parse(page).tags
    images = [a["src"] for t, a in tags if t == "img"]
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(images) == len(linked) == 4  # confusion, reliability, one error sheet per model
    for src in images:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            assert im.size[0] > 100 and im.size[1] > 100
    assert not re.search(r"(src|href)=\"(?!data:)", page), "a URL outside the file"
    assert "default-src 'none'" in page and "<script" not in page


def test_page_holds_the_markdown_sections_and_numbers(written):
    report, markdown, path = written
    page = path.read_text(encoding="utf-8")
    text = " ".join(parse(page).text)
    for heading in re.findall(r"^#+ (.+)$", markdown, re.M):
        assert heading in text, heading
    assert "cascade − flat macro-F1 = +0.096 [−0.008, 0.210]" in text  # the verdict, as in report.md
    cells = [t for t, _ in parse(page).tags if t == "td"]
    md_cells = sum(
        len(line.strip("|").split(" | "))
        for line in markdown.splitlines()
        if line.startswith("|") and not line.startswith("| ---")
    )
    header_cells = sum(1 for t, _ in parse(page).tags if t == "th")
    assert len(cells) + header_cells == md_cells
    assert "Data audit" in text and "3 of 120 (6%)" not in text and "7 of 120 (6%)" in text
    assert "test-test 2, train-train 5" in text


def test_file_names_are_escaped(tmp_path):
    _, markdown = make_report_dir(tmp_path, paths_override=HOSTILE)
    assert HOSTILE.replace("|", "\\|") in markdown  # a confident error: the file name is in the table
    page = report_html(markdown, tmp_path)
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;&amp;x&quot;|.jpg" in page


def test_a_link_out_of_the_folder_is_not_inlined(tmp_path):
    (tmp_path / "inside").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "outside.png")
    page = report_html("# t\n\n![escape](../outside.png)\n", tmp_path / "inside")
    assert "data:image" not in page and "figure not available: escape" in page


def test_report_json_keeps_the_audit(written):
    report, _, _ = written
    assert json.loads(json.dumps(report))["audit"]["dropped_from_training"] == 7
