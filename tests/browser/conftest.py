"""Browser tests: JupyterLab driven by headless Chromium (`make test-browser`).

They are slow and need a browser, so they run only when asked for by marker
(`pytest -m browser tests/browser`); any other run (`make test`, `make test-unit`,
a bare `pytest`) deselects them. Each test adds a line to `browser_results`, printed at the
end of the run and written to reports/browser/summary.txt.
"""
from __future__ import annotations

from pathlib import Path

import pytest

REPORTS = Path(__file__).resolve().parents[2] / "reports" / "browser"
RESULTS: list[str] = []


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
    terminalreporter.section("JupyterLab in Chromium: figures and slider-to-figure times")
    for line in RESULTS:
        terminalreporter.write_line(line)
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "summary.txt").write_text("\n".join(RESULTS) + "\n")
    terminalreporter.write_line(f"screenshots: {REPORTS}/")
