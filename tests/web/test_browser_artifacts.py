"""The browser fixtures save a screenshot and the page's HTML when a browser test fails."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAILING = '''
import pytest

pytest_plugins = ["tests.browser"]


@pytest.mark.browser
def test_shows_a_page_then_fails(page):
    page.set_content("<h1>the page at the moment of failure</h1>")
    assert page.locator("h1").inner_text() == "something else"
'''


@pytest.mark.browser
def test_a_failing_browser_test_leaves_screenshot_and_html(tmp_path):
    (tmp_path / "test_failing.py").write_text(FAILING)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    browser: real Chromium\n")
    artifacts = tmp_path / "artifacts"
    environment = dict(os.environ, AKTEST_ARTIFACTS=str(artifacts),
                       PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(tmp_path / "test_failing.py")],
                         cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    png = list(artifacts.glob("FAILED-*test_shows_a_page_then_fails.png"))
    html = list(artifacts.glob("FAILED-*test_shows_a_page_then_fails.html"))
    assert len(png) == 1 and png[0].read_bytes().startswith(b"\x89PNG")
    assert "the page at the moment of failure" in html[0].read_text()
