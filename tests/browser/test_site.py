"""The course site (`make site`) in headless Chromium, read the way a student reads it.

The site is served over http from reports/site (TRAINLAB_SITE names another build):
the landing page loads with a card per notebook; previous/next leads from the first
page through every page; search finds a word that only a late notebook uses; every
image loads and has alt text; no page shows a progress bar, a parameters cell or a
traceback; no internal link is broken. Screenshots of the landing page and three
lesson pages go to reports/browser/site-*.png.

Without a built site the tests skip (fail when CI is set): `make site`, or
`make site PROFILE=smoke` for a fast build.
"""
from __future__ import annotations

import functools
import os
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from browser_rig import missing

from trainlab.course_site import NO_DESCRIPTION, broken_links

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("TRAINLAB_SITE", REPO / "reports" / "site"))
SHOTS = REPO / "reports" / "browser"
NOTEBOOKS = sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))
# A word that only notebook 13 uses: search must reach a page far from the first.
DEEP_WORD, DEEP_PAGE = "Hyperband", "13_hyperparameter_search.html"
NOISE = {"a progress bar": re.compile(r"\d+%\|"), "a traceback": re.compile(r"Traceback \(most recent call last\)"),
         "a parameters cell": re.compile(r"profile\s*=\s*\"(smoke|quick|full)\"")}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> str:
    """The built site, served on a free local port; yields its base URL."""
    if not (SITE / "index.html").is_file():
        missing(f"no built site at {SITE}", "make site (or make site PROFILE=smoke for a fast one)")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(SITE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def _pages_by_next(page, site: str) -> list[str]:
    """The page names met by following "next" from the landing page to the end."""
    seen = []
    page.goto(f"{site}/index.html")
    while True:
        seen.append(page.url.rsplit("/", 1)[-1])
        nxt = page.locator("a.right-next")
        if nxt.count() == 0 or len(seen) > 100:
            return seen
        nxt.first.click()
        page.wait_for_load_state()


def test_landing_page_has_a_card_per_notebook_with_its_claims(site, page, browser_results):
    page.goto(f"{site}/index.html")
    assert "trainlab" in page.title()
    cards = page.locator(".cards .card")
    assert cards.count() == len(NOTEBOOKS)
    texts = cards.all_inner_texts()
    assert all(re.search(r"claims held: \d+ / \d+", t) for t in texts), [t[:80] for t in texts if "held" not in t]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "site-index.png"))
    browser_results.append(f"site: landing page with {cards.count()} cards (site-index.png)")


def test_previous_next_leads_through_every_page(site, page, browser_results):
    seen = _pages_by_next(page, site)
    expected = ["index.html", *(f"{n}.html" for n in NOTEBOOKS), "glossary.html"]
    assert seen == expected
    # and back: "previous" from the last page returns along the same path
    page.goto(f"{site}/{expected[-1]}")
    back = [expected[-1]]
    while page.locator("a.left-prev").count() and len(back) < 100:
        page.locator("a.left-prev").first.click()
        page.wait_for_load_state()
        back.append(page.url.rsplit("/", 1)[-1])
    assert back == expected[::-1]
    for name in ("06_batch_size_vs_lr", "08_optimizers", "12_transfer_learning"):
        page.goto(f"{site}/{name}.html")
        page.screenshot(path=str(SHOTS / f"site-{name}.png"))
    browser_results.append(f"site: previous/next through {len(seen)} pages, both ways")


def test_search_finds_a_word_from_a_deep_page(site, page, browser_results):
    page.goto(f"{site}/search.html?q={DEEP_WORD}")
    results = page.locator("ul.search li a")
    results.first.wait_for(timeout=30_000)
    hrefs = [results.nth(i).get_attribute("href") for i in range(results.count())]
    assert any(h and h.split("?")[0].split("#")[0].endswith(DEEP_PAGE) for h in hrefs), hrefs
    browser_results.append(f"site: search for {DEEP_WORD!r} finds {DEEP_PAGE} ({len(hrefs)} result(s))")


def test_every_page_is_clean_and_every_image_loads_with_alt_text(site, page, browser_results):
    names = ["index", *NOTEBOOKS, "glossary"]
    n_images = 0
    for name in names:
        page.goto(f"{site}/{name}.html")
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all(
            "article img", "els => els.map(e => ({src: e.getAttribute('src'), alt: e.alt, ok: e.complete && e.naturalWidth > 0}))")
        for img in images:
            assert img["ok"], f"{name}: image {img['src']} did not load"
            # nbconvert's own fallback, or the site's for a figure that carried no description
            assert img["alt"].strip() and not any(t in img["alt"].lower() for t in ("no description", NO_DESCRIPTION)), \
                f"{name}: image {img['src']} has no alt text"
        n_images += len(images)
        text = page.locator("article").inner_text()
        for what, pattern in NOISE.items():
            assert not pattern.search(text), f"{name} shows {what}: {pattern.search(text).group(0)!r}"
    browser_results.append(f"site: {len(names)} pages clean; {n_images} images loaded, each with alt text")


def test_no_internal_link_is_broken(site):
    assert broken_links(SITE) == []
