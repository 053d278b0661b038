"""report.html in a real browser (Debian's headless Chromium): it renders something, and logs nothing.

The page has no scripts, so any line Chromium logs as CONSOLE is an error: a resource the Content-Security-
Policy blocked (anything not inlined), a failed load, a parse problem. Skipped where no Chromium is installed
(.ci/run installs Debian's `chromium` package where it can).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neurocascade.eval.html_report import write_report_html
from neurocascade.markdown_html import html_page
from tests.eval.test_html_report import make_report_dir

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless Chromium here (apt-get install chromium)")
MIN_STD = 20.0  # grey-level standard deviation of a screenshot that shows tables and figures (blank: 0)


def screenshot(page: Path, out: Path, height: int = 2400) -> tuple[np.ndarray, list[str]]:
    """(grey pixels of a headless screenshot of `page`, the CONSOLE lines Chromium logged while loading it)."""
    profile = out.parent / f"{out.stem}-profile"
    cmd = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size=1200,{height}",
        f"--screenshot={out}",
        "--enable-logging=stderr",
        "--v=0",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "LANG": "C.UTF-8"})
    assert out.is_file(), f"no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    with Image.open(out) as im:
        pixels = np.asarray(im.convert("L"), np.float64)
    return pixels, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def test_report_renders_and_logs_no_errors(tmp_path):
    _, markdown = make_report_dir(tmp_path)
    page = write_report_html(markdown, tmp_path)
    pixels, console = screenshot(page, tmp_path / "shot.png")
    assert console == []
    assert pixels.shape == (2400, 1200) and pixels.std() > MIN_STD
    assert (pixels < 128).mean() > 0.01  # dark pixels: text and figures, not an empty white page


def test_the_checks_can_fail(tmp_path):
    """The same checks see a blank page as blank and an outside image as a console error."""
    blank = tmp_path / "blank.html"
    blank.write_text(html_page("blank", "", self_contained=True))
    pixels, console = screenshot(blank, tmp_path / "blank.png", height=600)
    assert pixels.std() < MIN_STD and console == []
    outside = tmp_path / "outside.html"
    outside.write_text(html_page("outside", '<img src="figure.png" alt="x">', self_contained=True))
    Image.new("RGB", (8, 8)).save(tmp_path / "figure.png")
    _, console = screenshot(outside, tmp_path / "outside.png", height=600)
    assert len(console) == 1 and "Content Security Policy" in console[0]
