"""report/index.html as a person sees it: rendered by headless chromium (`make test-browser`
installs Debian's chromium; without one these tests are skipped)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from tests.conftest_report import write_run
from vgx.report import build_report

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (make test-browser installs Debian's)"
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,1600",
    "--enable-logging=stderr",
    "--v=0",
)
CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\]")  # chromium's log line for a page's console message


@dataclass
class Rendered:
    screenshot: np.ndarray  # (height, width, channels) in [0, 1]
    dom: str  # the document after its scripts ran
    console: list[str]  # what the page wrote to its console (errors included)


def render(page: Path, work: Path) -> Rendered:
    """Screenshot and DOM of a page, each from a fresh chromium profile."""
    shot = work / "screenshot.png"
    runs = [
        subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={work / name}", *args, page.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        for name, args in (("shot", [f"--screenshot={shot}"]), ("dom", ["--dump-dom"]))
    ]
    console = [line for run in runs for line in run.stderr.splitlines() if CONSOLE.search(line)]
    return Rendered(imread(shot), runs[1].stdout, console)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    root = tmp_path_factory.mktemp("sweep")
    for act in ("relu", "sigmoid"):
        for depth in (3, 6):
            write_run(root, f"act={act},depth={depth}", act=act, depth=depth)
    build_report(root, echo=False)
    return render(root / "report" / "index.html", tmp_path_factory.mktemp("chromium"))


def test_the_rendered_page_is_not_blank(rendered):
    pixels = rendered.screenshot[..., :3]
    drawn = (pixels < 0.9).any(axis=-1)  # not (near) white
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert drawn.mean() > 0.02


def test_the_verdict_is_in_the_rendered_page(rendered):
    conclusions = rendered.dom.split('id="conclusions"', 1)[1].split("</section>", 1)[0]
    assert "Conclusions" in conclusions
    assert "Gradients vanish at init" in conclusions
    assert "VANISHING" in conclusions


def test_the_page_writes_nothing_to_the_console(rendered):
    assert rendered.console == []


def test_a_script_error_on_a_page_is_caught_as_a_console_message(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><p>x</p><script>undefinedFunction();</script>")
    console = render(page, tmp_path).console
    assert any("undefinedFunction" in line for line in console)
