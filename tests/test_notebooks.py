"""Every notebook: committed clean, one parameters cell, and executed end to end by
papermill in the smoke profile, where its closing claims assert."""
import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds; a smoke cell takes a few, so a hung kernel fails instead of stalling CI


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs_and_with_one_parameters_cell(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "clear outputs"
    params = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1
    source = "".join(params[0]["source"])
    assert 'profile = "quick"' in source and "seed = 0" in source and "dataset = " in source
    assert any("claims.report()" in "".join(c["source"]) for c in code[-1:]), "last cell checks the claims"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_valid_notebook_with_the_projects_kernel(path):
    import nbformat
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)  # nbconvert refuses to export an invalid notebook to HTML
    assert nb.metadata.kernelspec == {"display_name": "Python 3 (trainlab)", "language": "python",
                                      "name": "python3"}  # what `make install` registers, so Lab keeps it


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_class_can_work_through_it(path):
    """A one-line lesson for the gallery; an Exercises section of 4-6 items, each with
    a collapsed answer, before the claims; every claim named after the section it checks."""
    import re
    nb = json.loads(path.read_text())
    lesson = nb["metadata"].get("trainlab", {}).get("lesson", "")
    assert 0 < len(lesson) <= 120, "metadata trainlab.lesson: one line for the gallery"
    markdown = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    exercises = [m for m in markdown if m.lstrip().startswith("## Exercises")]
    assert len(exercises) == 1, "one '## Exercises' section"
    items = re.findall(r"^\d+\. ", exercises[0], flags=re.M)
    assert 4 <= len(items) <= 6, f"{len(items)} exercises; expected 4-6"
    # Each exercise carries an answer, collapsed until a reader opens it (JupyterLab and the site).
    bodies = re.split(r"^\d+\. ", exercises[0], flags=re.M)[1:]
    unanswered = [i + 1 for i, body in enumerate(bodies)
                  if not re.search(r"<details>\s*<summary>Answer</summary>\s*\S.*?</details>", body, flags=re.S)]
    assert not unanswered, f"exercises without a collapsed answer: {unanswered}"
    # An answer whose numbers a cell measures points to that cell ("Exercise N, measured"),
    # which checks them (claims.answer) and is folded in JupyterLab and on the site.
    for cell in nb["cells"]:
        body = "".join(cell["source"])
        measured = sorted({int(n) for n in re.findall(r"claims\.answer(?:_that)?\(\s*(\d+)", body)})
        if cell["cell_type"] != "code" or not measured:
            continue
        assert body.startswith(f"# Exercise {measured[0]}, measured") and len(measured) == 1, \
            f"one measured answer per cell, named in its first line: {body[:60]!r}"
        # Folded on the site; not in Lab, where a folded input has no prompt to show that it ran
        assert "hide-cell" in cell["metadata"].get("tags", []) and "jupyter" not in cell["metadata"], \
            f"exercise {measured[0]}'s measured answer is tagged hide-cell, and not folded in Lab"
        assert measured[0] <= len(bodies) and f'"Exercise {measured[0]}, measured"' in bodies[measured[0] - 1], \
            f"exercise {measured[0]}'s answer points to the cell that measures it"
    # ... and sits in the Exercises section, before the claims' heading
    section = ""
    for cell in nb["cells"]:
        body = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            section = next((line for line in reversed(body.splitlines()) if line.startswith("## ")), section)
        elif re.search(r"claims\.answer(?:_that)?\(", body):
            assert section == "## Exercises", f"a measured answer sits under {section!r}, not '## Exercises'"
    headings = [line for m in markdown for line in m.splitlines() if line.startswith("## ")]
    assert headings[-2:] == ["## Exercises", headings[-1]] and "claims" in headings[-1].lower(), \
        "Exercises come right before the claims"
    claims_cell = "".join(nb["cells"][-1]["source"])
    names = re.findall(r"claims\.(?:check|that)\(\s*f?[\"']([^\"']*)", claims_cell)
    assert names and all(re.match(r"\d+\. \S", n) for n in names), f"claims named by section: {names}"
    setup = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    # One set-up call names the notebook and passes its parameters, so the claims of
    # both datasets and every seed are filed apart.
    assert re.search(r"\bstart\(\s*[\"']" + re.escape(path.stem) + r"[\"'],\s*profile,\s*seed,\s*dataset\s*(,\s*allow=[^)]*\))?\)", setup), \
        f'the set-up cell calls tl.start("{path.stem}", profile, seed, dataset)'


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory):
    # The Makefile shares one fresh folder between this and the nbval pass.
    return os.environ.get("TRAINLAB_RUNS") or str(tmp_path_factory.mktemp("runs"))


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_its_claims_hold(path, tmp_path, runs_dir, monkeypatch, mnist_ready):
    import papermill as pm
    monkeypatch.setenv("TRAINLAB_RUNS", runs_dir)
    monkeypatch.delenv("TRAINLAB_PROFILE", raising=False)  # papermill's parameter decides here
    out = tmp_path / path.name
    pm.execute_notebook(str(path), str(out), parameters={"profile": "smoke"}, cwd=str(path.parent),
                        progress_bar=False, kernel_name="python3",
                        execution_timeout=CELL_TIMEOUT)
    executed = json.loads(out.read_text())
    assert not any(o.get("output_type") == "error" for c in executed["cells"] for o in c.get("outputs", []))
    # The HTML a teacher publishes shows the Explore panel's starting figure, no kernel needed.
    from trainlab.report import to_html
    page = to_html(out).read_text()
    assert "# Parameters</span>" not in page  # papermill's injected cell (its first line) stays off the page
    explore = page[page.index('id="Explore"'):]
    assert "data:image/png;base64," in explore[:explore.index('id="Exercises"')]
