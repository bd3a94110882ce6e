"""Browser tests: JupyterLab driven by headless Chromium (`make test-browser`).

They are slow and need a browser, so they run only when asked for by marker
(`pytest -m browser tests/browser`); any other run (`make test`, `make test-unit`,
a bare `pytest`) deselects them. Each test adds a line to `browser_results`, printed at the
end of the run and written to reports/browser/summary.txt.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser_rig import CHROMIUM, CHROMIUM_ARGS, missing

REPORTS = Path(__file__).resolve().parents[2] / "reports" / "browser"
RESULTS: list[str] = []


@pytest.fixture(scope="session")
def chromium():
    """A headless Chromium (the system's, never a Playwright download)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the Python package playwright is not installed",
                ".venv/bin/pip install playwright (it is in the dev extra); never `playwright install`")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing(f"no Chromium at {CHROMIUM}",
                "apt-get install -y chromium (or set TRAINLAB_CHROMIUM to a Chromium binary)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def pytest_collection_modifyitems(config, items):
    if "browser" in (config.option.markexpr or ""):
        return
    browser = [item for item in items if item.get_closest_marker("browser")]
    if browser:
        config.hook.pytest_deselected(items=browser)
        items[:] = [item for item in items if not item.get_closest_marker("browser")]


@pytest.fixture(scope="session")
def browser_results() -> list[str]:
    """Where each test puts its one-line result."""
    return RESULTS


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    terminalreporter.section("In Chromium: JupyterLab (figures, slider-to-figure times) and the course site")
    for line in RESULTS:
        terminalreporter.write_line(line)
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "summary.txt").write_text("\n".join(RESULTS) + "\n")
    terminalreporter.write_line(f"screenshots: {REPORTS}/")
