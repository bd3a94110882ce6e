"""The course site: the executed notebooks as one book a teacher can publish.

`python -m trainlab site --from reports --out reports/site` (what `make site` runs
after `make run`) turns the executed notebooks of `reports/` into a static site:
a landing page (notebooks/course.md and the gallery cards, with the claims each
notebook held), a table of contents, previous/next links, search, page titles from
each notebook's heading, numbered figures with captions and alt text, and a
glossary (notebooks/glossary.md) that the first use of each term on a page links to.

It is built with Sphinx, myst-nb and sphinx-book-theme, the stack Jupyter Book 1 is
made of, because that stack builds offline from pip packages alone: Jupyter Book 2
(mystmd) is a Node tool that downloads its page theme on the first build, which a
machine without internet (CI here, a classroom) cannot do.

What the reader should not see is taken out before Sphinx reads a notebook: the
parameters cells (the first printed line says what the notebook ran with), progress
bars, anything written to stderr, and widget state (which would pull scripts from a
CDN). A notebook with an error output is refused: a site is built from notebooks that
ran cleanly.

>>> build(Path("reports"), Path("reports/site"))    # doctest: +SKIP
"""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .gallery import STYLE, Entry, _card
from .spec import SpecError

HIDDEN_TAGS = ("parameters", "injected-parameters")
# What a figure's alt text says when its output carried no description (the browser test looks for it).
NO_DESCRIPTION = "no description was recorded"
# tqdm's text form: "train:  17%|#6        | 3/18 [00:00<?, ?run/s]"
PROGRESS = re.compile(r"\d+%\|.*\|\s*\d+/\d*")
WIDGET_MIME = ("application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json")

CONF = '''# Written by trainlab.course_site for each build; edit trainlab/course_site.py instead.
project = "trainlab"
author = "the trainlab authors"
html_title = "trainlab: training neural networks well"
extensions = ["myst_nb"]
html_theme = "sphinx_book_theme"
html_theme_options = {"show_toc_level": 2, "home_page_in_toc": True, "use_fullscreen_button": False,
                      # the pages' sources are rewritten for the site; readers get notebooks from the repository
                      "use_download_button": False}
html_static_path = ["_static"]
html_css_files = ["cards.css"]
html_show_sourcelink = False
html_copy_source = False
exclude_patterns = ["_build"]
# Figures are numbered per page by trainlab.course_site ("Figure 3" on each page, not the 33rd of the book).
numfig = False
myst_enable_extensions = ["dollarmath", "colon_fence"]
nb_execution_mode = "off"
nb_output_stderr = "remove"
# Live widgets need a kernel; their static fallback (image or HTML) is shown instead.
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
'''


class SiteError(ValueError):
    """The notebooks cannot make a site: one of them failed, the site's tools are not
    installed, or Sphinx could not build it."""


@dataclass
class Term:
    """A glossary entry: the term as the glossary writes it, and what links to it."""

    name: str
    pattern: re.Pattern


def glossary_terms(glossary: str) -> list[Term]:
    """The terms of a MyST glossary page (unindented lines inside its glossary block).
    A term may list the spellings that link to it after a bar: `SE | standard error`
    is shown as "SE"; both spellings link. Acronyms (all capitals) match their case only.

    >>> [t.name for t in glossary_terms("```{glossary}\\nSE | standard error\\n  The spread.\\n```")]
    ['SE']
    """
    terms: list[Term] = []
    for line, is_term in _glossary_lines(glossary):
        if is_term:
            names = [n.strip() for n in line.split("|") if n.strip()]
            # an acronym keeps its case ("SE", not "se"); words match in any case
            alternatives = "|".join(f"(?-i:{re.escape(n)})" if n.isupper() else re.escape(n)
                                    for n in sorted(names, key=len, reverse=True))
            terms.append(Term(names[0], re.compile(rf"(?<![\w-])({alternatives})(?![\w-])", re.IGNORECASE)))
    return terms


def glossary_source(glossary: str) -> str:
    """The glossary page as Sphinx reads it: each term line without its extra spellings."""
    return "\n".join(line.split("|")[0].rstrip() if is_term else line
                     for line, is_term in _glossary_lines(glossary)) + "\n"


def _glossary_lines(glossary: str):
    """Each line of a glossary page, with whether it names a term (an unindented line
    inside the glossary block)."""
    inside = False
    for line in glossary.splitlines():
        if line.startswith("```{glossary}"):
            inside = True
        elif inside and line.startswith("```"):
            inside = False
        elif inside and line.strip() and not line[0].isspace():
            yield line, True
            continue
        yield line, False


# Markdown that a link must not go into: code, math, links, HTML, headings.
PROTECTED = re.compile(r"```.*?```|`[^`]*`|\$\$.*?\$\$|\$[^$\n]*\$|\[[^\]]*\]\([^)]*\)|<[^>]+>|^#.*?$",
                       re.DOTALL | re.MULTILINE)


def link_terms(text: str, terms: list[Term], linked: set[str]) -> str:
    """`text` (markdown) with the first use of each term not yet in `linked` made a
    link to the glossary; `linked` gains the terms linked here.

    >>> terms = glossary_terms("```{glossary}\\nSE | standard error\\n  x\\n```")
    >>> link_terms("Gaps in SE, and SE again; `SE` in code", terms, set())
    'Gaps in {term}`SE <SE>`, and SE again; `SE` in code'
    """
    pieces, last = [], 0
    for m in PROTECTED.finditer(text):
        pieces.append((False, text[last:m.start()]))
        pieces.append((True, m.group(0)))
        last = m.end()
    pieces.append((False, text[last:]))
    for term in terms:
        if term.name in linked:
            continue
        for i, (protected, piece) in enumerate(pieces):
            m = None if protected else term.pattern.search(piece)
            if m:
                role = f"{{term}}`{m.group(1)} <{term.name}>`"
                pieces[i:i + 1] = [(False, piece[:m.start()]), (True, role), (False, piece[m.end():])]
                linked.add(term.name)
                break
    return "".join(piece for _, piece in pieces)


def _escape_markdown(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]<>$|#])", r"\\\1", text)


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _figure_cell(path: str, alt: str, name: str, number: int) -> dict:
    """A markdown cell holding figure `number` of its page, with its caption and alt text."""
    source = (f"```{{figure}} {path}\n---\nalt: {json.dumps(alt, ensure_ascii=False)}\nname: {name}\n---\n"
              f"**Figure {number}.** {_escape_markdown(alt)}\n```\n")
    return {"cell_type": "markdown", "id": name, "metadata": {}, "source": source}


def prepare(nb: dict, name: str, figures: Path, terms: list[Term]) -> dict:
    """One executed notebook made ready for the site (a new dict; `nb` is not changed):
    hidden cells and noisy outputs out, each figure moved into a numbered figure with
    its description as caption and alt text (written under `figures/`), glossary
    terms linked on first use. Raises SiteError on a cell that failed."""
    cells = []
    linked: set[str] = set()
    n_figures = 0
    for index, cell in enumerate(nb.get("cells", [])):
        tags = cell.get("metadata", {}).get("tags", [])
        if any(t in tags for t in HIDDEN_TAGS):
            continue
        cell = json.loads(json.dumps(cell))
        if cell["cell_type"] == "markdown":
            cell["source"] = link_terms(_text(cell["source"]), terms, linked)
            cells.append(cell)
            continue
        if cell["cell_type"] != "code":
            cells.append(cell)
            continue
        kept, moved = [], []
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "error":
                raise SiteError(f"{name}: cell {index} failed ({out.get('ename')}: {out.get('evalue')}); "
                                "a site is built from notebooks that ran cleanly: fix it and run `make run` again")
            if kind == "stream":
                if out.get("name") == "stderr":
                    continue
                # tqdm redraws a bar with \r: drop the bar's lines, keep the text printed around it
                lines = re.split(r"(?<=\n)|\r", _text(out.get("text", "")))
                text = "".join(line for line in lines if not PROGRESS.search(line))
                if text.strip():
                    kept.append({**out, "text": text})
                continue
            data = out.get("data", {})
            plain = _text(data.get("text/plain", ""))
            if set(data) - {"text/plain"} <= set(WIDGET_MIME) and (PROGRESS.search(plain) or not plain.strip()
                                                                   or any(m in data for m in WIDGET_MIME)):
                continue  # a progress bar or a widget with no static form
            if "image/png" in data and "text/html" not in data:
                n_figures += 1
                figures.mkdir(parents=True, exist_ok=True)
                file = figures / f"{name}-{n_figures}.png"
                file.write_bytes(base64.b64decode(_text(data["image/png"]).replace("\n", "")))
                alt = " ".join(plain.split())
                if not alt or (alt.startswith("<") and alt.endswith(">")):  # an object's repr describes nothing
                    alt = f"Figure {n_figures} of {name} ({NO_DESCRIPTION})."
                moved.append(_figure_cell(f"{figures.name}/{file.name}", alt, f"fig-{name}-{n_figures}", n_figures))
                continue
            kept.append(out)
        cell["outputs"] = kept
        cells.append(cell)
        cells.extend(moved)
    metadata = {k: v for k, v in nb.get("metadata", {}).items() if k not in ("widgets", "papermill")}
    return {**nb, "cells": cells, "metadata": metadata}


def _landing(course: str, entries: list[Entry], pages: list[str]) -> str:
    """index.md: the course text, the gallery cards, and the (hidden) table of contents."""
    cards = "\n".join(_card(e) for e in entries)
    toc = "\n".join(pages)
    return (f"{course.rstrip()}\n\n## The notebooks\n\n"
            "Each card: the notebook's lesson, one of its figures, how many of its checked claims held "
            "when this site was built, and the claim with the least to spare.\n\n"
            f'```{{raw}} html\n<div class="cards">\n{cards}\n</div>\n```\n\n'
            f"```{{toctree}}\n:hidden:\n:maxdepth: 1\n\n{toc}\n```\n")


def check_inputs(executed_dir: Path, pages_dir: Path) -> list[Path]:
    """The executed notebooks to build from; raises SpecError naming the flag when a
    folder is missing what the site needs, and SiteError when the site's tools are not installed."""
    notebooks = sorted(p for p in Path(executed_dir).glob("*.ipynb") if not p.name.startswith("."))
    if not notebooks:
        raise SpecError("from", str(executed_dir), "a folder of executed notebooks (`make run` writes reports/)")
    for page in ("course.md", "glossary.md"):
        if not (Path(pages_dir) / page).is_file():
            raise SpecError("pages", str(pages_dir), f"a folder holding {page} (the course's own pages: notebooks/)")
    import importlib.util
    missing = [m for m in ("sphinx", "myst_nb", "sphinx_book_theme") if importlib.util.find_spec(m) is None]
    if missing:
        raise SiteError(f"the site needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
                        'installed: pip install -e ".[dev]" (make install does it)')
    return notebooks


def sources(executed_dir: Path, pages_dir: Path, src: Path) -> list[str]:
    """Write the site's Sphinx sources into `src` (emptied first); returns the page
    names in reading order. Checks everything before writing anything."""
    executed_dir, pages_dir = Path(executed_dir), Path(pages_dir)
    notebooks = check_inputs(executed_dir, pages_dir)
    glossary = (pages_dir / "glossary.md").read_text(encoding="utf-8")
    terms = glossary_terms(glossary)
    loaded = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in notebooks}
    prepared = {}
    staging = src.with_name(src.name + ".part")
    shutil.rmtree(staging, ignore_errors=True)
    for name, nb in loaded.items():
        prepared[name] = prepare(nb, name, staging / "figures", terms)  # raises before src is touched
    (staging / "_static").mkdir(parents=True, exist_ok=True)
    (staging / "conf.py").write_text(CONF, encoding="utf-8")
    # The gallery's card rules only: the theme styles the rest of the page.
    cards_css = "\n".join(line for line in STYLE.splitlines() if line.startswith("."))
    (staging / "_static" / "cards.css").write_text(cards_css + "\n", encoding="utf-8")
    (staging / "glossary.md").write_text(glossary_source(glossary), encoding="utf-8")
    for name, nb in prepared.items():
        (staging / f"{name}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    claims_dir = executed_dir / "claims"
    entries = [Entry.read(executed_dir / f"{name}.ipynb", _seconds(nb), claims_dir=claims_dir)
               for name, nb in loaded.items()]
    pages = [*prepared, "glossary"]
    course = link_terms((pages_dir / "course.md").read_text(encoding="utf-8"), terms, set())
    (staging / "index.md").write_text(_landing(course, entries, pages), encoding="utf-8")
    shutil.rmtree(src, ignore_errors=True)
    staging.replace(src)
    return ["index", *pages]


def _seconds(nb: dict) -> float:
    return float(nb.get("metadata", {}).get("papermill", {}).get("duration") or 0.0)


def build(executed_dir: Path, out: Path, pages_dir: Path = Path("notebooks")) -> Path:
    """Build the site from the executed notebooks into `out` (its sources go beside
    it, in `<out>-src`); returns the landing page. Sphinx's warnings are printed."""
    out = Path(out)
    src = out.with_name(out.name + "-src")
    pages = sources(executed_dir, pages_dir, src)
    staging = out.with_name(out.name + ".part")
    shutil.rmtree(staging, ignore_errors=True)
    done = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-E", str(src), str(staging)],
                          capture_output=True, text=True)
    if done.stderr.strip():
        print(done.stderr.strip(), file=sys.stderr)
    if done.returncode != 0:
        raise SiteError(f"sphinx-build failed (exit {done.returncode}); its messages are above")
    shutil.rmtree(out, ignore_errors=True)
    staging.replace(out)
    print(f"site: {len(pages)} pages in {out}; open {out / 'index.html'}")
    return out / "index.html"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []   # (tag, url)
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        for key in ("href", "src"):
            if a.get(key):
                self.links.append((f"{tag}[{key}]", a[key]))


def broken_links(site: Path) -> list[str]:
    """Every internal link of the built site that leads nowhere (a missing file or a
    missing #anchor), and every script, stylesheet or image fetched from another
    host (the site must work offline); empty when all is well.

    >>> broken_links(Path("reports/site"))   # doctest: +SKIP
    []
    """
    site = Path(site)
    parsed: dict[Path, _Links] = {}
    for page in site.rglob("*.html"):
        if page.relative_to(site).parts[0] == "_static":
            continue   # the theme's template fragments, not pages
        p = _Links()
        p.feed(page.read_text(encoding="utf-8", errors="replace"))
        parsed[page.resolve()] = p
    problems = []
    for page, p in parsed.items():
        for where, url in p.links:
            parts = urlsplit(url)
            if parts.scheme in ("data", "mailto", "javascript"):
                continue
            if parts.scheme or parts.netloc:
                if where != "a[href]":
                    problems.append(f"{page.relative_to(site.resolve())}: {where} from another host: {url}")
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{page.relative_to(site.resolve())}: {where} {url}: no such file")
            elif parts.fragment and target.suffix == ".html":
                ids = parsed.get(target).ids if target in parsed else set()
                if unquote(parts.fragment) not in ids:
                    problems.append(f"{page.relative_to(site.resolve())}: {where} {url}: no such anchor")
    return sorted(problems)
