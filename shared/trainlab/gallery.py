"""`reports/index.html`: one page listing every executed notebook, the page a teacher
publishes beside the notebooks' HTML.

Each card shows the notebook's title, its one-line lesson (notebook metadata
`trainlab.lesson`), a thumbnail of one figure (the first of a cell tagged
`thumbnail`, else the notebook's first), how many claims held and the
one with the least to spare, how long it ran, and the profile and seed it ran with,
and links to the notebook's HTML. It is one self-contained file: the thumbnails are
embedded, nothing is fetched from a network.

>>> write_index(Path("reports"), [Entry.read(Path("reports/04_weight_initialization.ipynb"), 31.0)])  # doctest: +SKIP
"""
from __future__ import annotations

import glob
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .claims import margin_text, read_record
from .storage import atomic_write


@dataclass
class Entry:
    """What the gallery shows of one executed notebook."""

    name: str
    title: str
    lesson: str
    thumbnail: str | None
    seconds: float
    profile: str
    seed: int | None
    claims: list[dict] = field(default_factory=list)
    failed: bool = False

    @classmethod
    def read(cls, executed: Path, seconds: float, failed: bool = False, claims_dir: Path | None = None) -> "Entry":
        nb = json.loads(executed.read_text(encoding="utf-8"))
        params = _parameters(nb)
        profile, seed = params.get("profile", "?"), params.get("seed")
        claims: list[dict] = []
        if claims_dir is not None:
            saved = _recorded(claims_dir, executed.stem, profile, seed, params.get("dataset"))
            if saved is not None:
                claims, seed = saved["claims"], saved.get("seed", seed)
        return cls(executed.stem, _title(nb, executed.stem), _lesson(nb), _thumbnail(nb), seconds,
                   profile, seed, claims, failed)

    @property
    def held(self) -> int:
        return sum(bool(c.get("held")) for c in self.claims)

    def tightest(self) -> dict | None:
        """The claim with the least to spare (a failed one first)."""
        if not self.claims:
            return None

        def room(c: dict) -> float:
            if not c.get("held"):
                return -math.inf
            spare = c.get("spare")
            return spare if isinstance(spare, (int, float)) and math.isfinite(spare) else math.inf
        return min(self.claims, key=room)


def _recorded(claims_dir: Path, notebook: str, profile: str, seed: int | None, dataset: str | None) -> dict | None:
    """The newest claims record of `notebook` run with `profile`, whatever its dataset
    and seed (records are named `<notebook>-<profile>[-<dataset>]-seed<seed>.json`),
    narrowed to the run's seed and dataset where the notebook names them. Unreadable
    records are passed over: the card then says "not recorded" instead of the gallery failing."""
    found = []
    for f in claims_dir.glob(f"{glob.escape(notebook)}-{glob.escape(str(profile))}-*seed*.json"):
        saved = read_record(f, quiet=True)
        try:
            stamp = f.stat().st_mtime_ns
        except OSError:
            continue
        if saved is not None and _record_of(saved, notebook, profile, seed, dataset):
            found.append((stamp, f.name, saved))
    return max(found, key=lambda t: t[:2])[2] if found else None


def _record_of(saved: dict, notebook: str, profile: str, seed: int | None, dataset: str | None) -> bool:
    """Whether a loaded record is a claims record of this run. The file name alone could
    belong to another notebook whose name continues with '-<profile>'."""
    if saved.get("notebook") != notebook or saved.get("profile") != profile:
        return False
    if seed is not None and saved.get("seed") != seed:
        return False
    return not dataset or saved.get("dataset") in (dataset, "")


def _parameters(nb: dict) -> dict:
    """The values the notebook ran with: its `parameters` cell, then what papermill
    injected (simple `name = literal` lines)."""
    import ast
    values: dict = {}
    for tag in ("parameters", "injected-parameters"):
        for cell in nb.get("cells", []):
            if tag in cell.get("metadata", {}).get("tags", []):
                try:
                    tree = ast.parse("".join(cell.get("source", "")))
                except SyntaxError:
                    continue
                for node in tree.body:
                    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                        try:
                            values[node.targets[0].id] = ast.literal_eval(node.value)
                        except ValueError:
                            pass
    return values


def _title(nb: dict, fallback: str) -> str:
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _lesson(nb: dict) -> str:
    return str(nb.get("metadata", {}).get("trainlab", {}).get("lesson", ""))


# The tag follows nbsphinx's `nbsphinx-thumbnail`: an author picks the figure that
# still reads at card size (one panel, few lines) when the first one does not.
THUMBNAIL_TAG = "thumbnail"


def _thumbnail(nb: dict) -> str | None:
    """The card's image: the first figure of a cell tagged `thumbnail`, else the first figure."""
    cells = nb.get("cells", [])
    tagged = [c for c in cells if THUMBNAIL_TAG in c.get("metadata", {}).get("tags", [])]
    for cell in tagged + cells:
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                return "".join(png).replace("\n", "")
    return None


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
h1 { font-weight: 600; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 1.2rem; }
.card { border: 1px solid #ddd; border-radius: 8px; padding: 1rem; }
.card img { width: 100%; border: 1px solid #eee; }
.card h2 { font-size: 1.1rem; margin: 0 0 .4rem; }
.card p { margin: .3rem 0; font-size: .9rem; }
.failed { border-color: #c00; }
.meta { color: #666; font-size: .8rem; }
"""


def _card(e: Entry) -> str:
    esc = html.escape
    thumb = f'<img alt="a figure of {esc(e.name)}" src="data:image/png;base64,{e.thumbnail}">' \
        if e.thumbnail else "<p>(no figure)</p>"
    if e.failed:
        status = "<p><strong>failed</strong>: open the notebook to see the failing cell</p>"
    elif e.claims:
        tight = e.tightest()
        status = (f"<p>claims held: <strong>{e.held} / {len(e.claims)}</strong></p>"
                  f"<p>least to spare: {esc(tight['claim'])} ({esc(margin_text(_numeric(tight)))})</p>")
    else:
        status = "<p>claims: not recorded</p>"
    link = f"{e.name}.html" if not e.failed else f"{e.name}.ipynb"
    return (f'<div class="card{" failed" if e.failed else ""}"><h2><a href="{esc(link)}">{esc(e.title)}</a></h2>'
            f"<p>{esc(e.lesson)}</p>{thumb}{status}"
            f'<p class="meta">{e.seconds:.0f} s · profile {esc(str(e.profile))} · seed {esc(str(e.seed))}</p></div>')


def _numeric(row: dict) -> dict:
    """A claims row read back from JSON, with null as NaN again."""
    return {k: (math.nan if v is None and k in ("measured", "threshold", "margin", "spare") else v)
            for k, v in row.items()}


def write_index(out_dir: Path, entries: list[Entry]) -> Path:
    """Write `out_dir/index.html` (atomically) and return its path."""
    cards = "\n".join(_card(e) for e in entries)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>trainlab notebooks</title>"
            f"<style>{STYLE}</style></head><body><h1>trainlab: the notebooks</h1>"
            f"<p>Each notebook shows its lesson on real data and then checks it on the numbers it measured.</p>"
            f'<div class="cards">{cards}</div></body></html>')
    return atomic_write(out_dir / "index.html", lambda f: f.write(page.encode("utf-8")))
