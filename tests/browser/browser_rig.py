"""What every browser test needs: where Chromium is, how it is started, and how a
missing piece is reported (a skip here, a failure when CI is set)."""
from __future__ import annotations

import os

import pytest

CHROMIUM = os.environ.get("TRAINLAB_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling out, and a closed network refuses it.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def missing(what: str, install: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what}; CI is set, so the browser tests fail rather than skip. Install: {install}",
                    pytrace=False)
    pytest.skip(f"{what}. Install: {install}")
