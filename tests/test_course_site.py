"""The course site: what `prepare` takes out of an executed notebook and what it turns
into figures, glossary links, the link check, a whole (small) build, and the words a
figure carries for its alt text."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest
from trainlab import plots
from trainlab.course_site import SiteError, broken_links, build, glossary_terms, link_terms, prepare

matplotlib.use("Agg")
REPO = Path(__file__).resolve().parents[1]
# A 1x1 PNG: the site only moves the bytes.
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()
GLOSSARY = "# Glossary\n\n```{glossary}\nSE | standard error\n  The spread of a measured accuracy.\n\nepoch | epochs\n  A pass.\n```\n"


def code(source: str, outputs: list, tags: tuple[str, ...] = ()) -> dict:
    return {"cell_type": "code", "id": f"c{abs(hash(source)) % 10**8}", "metadata": {"tags": list(tags)},
            "source": source, "outputs": outputs, "execution_count": 1}


def markdown(source: str) -> dict:
    return {"cell_type": "markdown", "id": f"m{abs(hash(source)) % 10**8}", "metadata": {}, "source": source}


def notebook(*cells: dict) -> dict:
    return {"cells": list(cells), "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                               "language": "python"},
                                               "widgets": {"state": {}}, "trainlab": {"lesson": "a lesson"}},
            "nbformat": 4, "nbformat_minor": 5}


def executed() -> dict:
    return notebook(
        markdown("# 00 · A lesson\n\nGaps are in SE; an epoch is a pass. SE again.\n\n## 1. First"),
        code('profile = "quick"', [], tags=("parameters",)),
        code('profile = "smoke"', [], tags=("injected-parameters",)),
        code("run()", [
            {"output_type": "stream", "name": "stdout", "text": "ran: profile 'smoke'\n"},
            {"output_type": "stream", "name": "stderr", "text": "UserWarning: something internal\n"},
            {"output_type": "stream", "name": "stderr", "text": "train:  17%|#6   | 3/18 [00:00<?, ?it/s]"},
            {"output_type": "display_data", "metadata": {},
             "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2,
                                                                    "version_minor": 0},
                      "text/plain": "sweep:  17%|#6   | 3/18 [00:00<?, ?run/s]"}},
            {"output_type": "execute_result", "execution_count": 1, "metadata": {},
             "data": {"image/png": PNG, "text/plain": "loss per step: loss against step; lines: He, N(0,1)."}},
        ]),
    )


def test_prepare_takes_out_what_a_reader_should_not_see_and_makes_numbered_figures(tmp_path):
    terms = glossary_terms(GLOSSARY)
    page = prepare(executed(), "00_lesson", tmp_path / "figures", terms)
    sources = [c["source"] for c in page["cells"]]
    assert not any("profile =" in s for s in sources)               # both parameters cells are gone
    run_cell = next(c for c in page["cells"] if c["source"] == "run()")
    assert [o.get("text") for o in run_cell["outputs"]] == ["ran: profile 'smoke'\n"]   # stdout only
    figure = page["cells"][page["cells"].index(run_cell) + 1]
    assert figure["cell_type"] == "markdown" and figure["source"].startswith("```{figure} figures/00_lesson-1.png")
    assert 'alt: "loss per step: loss against step; lines: He, N(0,1)."' in figure["source"]
    assert "**Figure 1.**" in figure["source"]
    assert (tmp_path / "figures" / "00_lesson-1.png").read_bytes() == base64.b64decode(PNG)
    assert "widgets" not in page["metadata"] and page["metadata"]["trainlab"] == {"lesson": "a lesson"}
    assert "{term}`SE <SE>`" in page["cells"][0]["source"] and page["cells"][0]["source"].count("{term}") == 2


def test_a_bar_on_stdout_goes_but_the_text_around_it_stays_and_a_figure_without_words_says_so(tmp_path):
    from trainlab.course_site import NO_DESCRIPTION
    nb = notebook(code("go()", [
        {"output_type": "stream", "name": "stdout",
         "text": "before\ntrain:  17%|#6   | 3/18 [00:00<?, ?it/s]\rtrain: 100%|#####| 18/18 [00:01<00:00]\nafter\n"},
        {"output_type": "stream", "name": "stdout", "text": "sweep: 50%|##  | 1/2 [00:00<?, ?run/s]\n"},
        {"output_type": "display_data", "metadata": {},
         "data": {"image/png": PNG, "text/plain": "<IPython.core.display.Image object>"}},
        {"output_type": "display_data", "metadata": {}, "data": {"image/png": PNG, "text/plain": "two\n\nparagraphs"}},
    ]))
    page = prepare(nb, "01_x", tmp_path / "figures", [])
    assert [o["text"] for o in page["cells"][0]["outputs"]] == ["before\nafter\n"]
    first, second = page["cells"][1]["source"], page["cells"][2]["source"]
    assert f'alt: "Figure 1 of 01_x ({NO_DESCRIPTION})."' in first and "IPython" not in first
    assert 'alt: "two paragraphs"' in second and "**Figure 2.** two paragraphs" in second


def test_a_notebook_with_an_error_makes_no_site(tmp_path):
    nb = executed()
    nb["cells"][3]["outputs"].append({"output_type": "error", "ename": "ValueError", "evalue": "bad lr",
                                      "traceback": []})
    with pytest.raises(SiteError, match=r"00_lesson: cell 3 failed \(ValueError: bad lr\)"):
        prepare(nb, "00_lesson", tmp_path / "figures", [])


def test_glossary_links_go_on_the_first_use_only_and_never_into_code_links_or_headings():
    terms = glossary_terms(GLOSSARY)
    text = "# SE in a heading\n\nSee `SE` and [SE](x.html) and $SE$; the standard error, then SE and epochs."
    linked: set[str] = set()
    out = link_terms(text, terms, linked)
    assert out == ("# SE in a heading\n\nSee `SE` and [SE](x.html) and $SE$; the {term}`standard error <SE>`, "
                   "then SE and {term}`epochs <epoch>`.")
    assert linked == {"SE", "epoch"}
    assert link_terms("SE and epochs again", terms, linked) == "SE and epochs again"   # once per page
    assert link_terms("SEED and seed", terms, set()) == "SEED and seed"                   # whole words only


def test_a_small_site_builds_with_navigation_search_and_no_broken_link(tmp_path):
    reports, pages = tmp_path / "reports", tmp_path / "pages"
    reports.mkdir(), pages.mkdir()
    for name in ("00_lesson", "01_next"):
        (reports / f"{name}.ipynb").write_text(json.dumps(executed(), ensure_ascii=False).replace("00 · A lesson", name))
    (pages / "course.md").write_text("# The course\n\nRead in order; gaps are in SE.\n")
    (pages / "glossary.md").write_text(GLOSSARY)
    index = build(reports, tmp_path / "site", pages)
    site = index.parent
    for page in ("index.html", "00_lesson.html", "01_next.html", "glossary.html", "search.html", "searchindex.js"):
        assert (site / page).is_file(), page
    html = (site / "00_lesson.html").read_text()
    assert "<title>00_lesson" in html and 'alt="loss per step' in html and "Figure 1." in html
    assert 'href="glossary.html#term-SE"' in html and "right-next" in html
    assert "17%|" not in html and "something internal" not in html and 'profile = "' not in html
    assert broken_links(site) == []
    # the check can fail: a page that links to a missing anchor and a missing file
    (site / "00_lesson.html").write_text(html.replace('href="glossary.html#term-SE"', 'href="glossary.html#term-XX"')
                                         .replace('href="01_next.html"', 'href="02_gone.html"'))
    problems = broken_links(site)
    assert any("glossary.html#term-XX: no such anchor" in p for p in problems)
    assert any("02_gone.html: no such file" in p for p in problems)


def test_the_site_command_names_a_bad_folder_before_any_work(tmp_path):
    done = subprocess.run([sys.executable, "-m", "trainlab", "site", "--from", str(tmp_path), "--out",
                           str(tmp_path / "site")], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2
    assert "from" in done.stderr and str(tmp_path) in done.stderr and "executed notebooks" in done.stderr
    assert not (tmp_path / "site").exists()


def test_the_site_command_says_which_tool_is_missing_before_any_work(tmp_path, monkeypatch, capsys):
    import importlib.util

    from trainlab import cli
    (tmp_path / "00_x.ipynb").write_text(json.dumps(executed()))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda m, *a: None if m == "myst_nb" else real(m, *a))
    assert cli.main(["site", "--from", str(tmp_path), "--pages", str(REPO / "notebooks"),
                     "--out", str(tmp_path / "site")]) == 2
    assert "myst_nb, which is not installed" in capsys.readouterr().err and not (tmp_path / "site").exists()


def test_an_acronym_links_in_its_own_case_only_and_words_in_any_case():
    terms = glossary_terms("```{glossary}\nLR | learning rate\n  x\n```")
    assert link_terms("set lr to 0.1", terms, set()) == "set lr to 0.1"
    assert link_terms("The Learning rate", terms, set()) == "The {term}`Learning rate <LR>`"
    assert link_terms("The LR", terms, set()) == "The {term}`LR <LR>`"


def test_a_figure_describes_itself_in_words():
    fig, (left, right) = plots.figure(ncols=2)
    left.plot([0, 1], [1, 2], label="He")
    left.plot([0, 1], [2, 3], label="N(0,1)")
    left.set(xlabel="step", ylabel="loss", title="loss per step", yscale="log")
    right.imshow([[0, 1], [1, 0]])
    right.set_title("grid")
    fig.suptitle("two panels")
    assert plots.describe(fig) == ('two panels. loss per step: loss against step (log y); lines: He, "N(0,1)". '
                                   'grid: a colour map.')


def test_a_figure_in_a_notebook_carries_its_description_once_the_inline_backend_is_on():
    """The inline backend clears the formatters' entries for Figure when it switches on
    (with the first figure): tl.start must register after that, or pages get no alt text."""
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import trainlab as tl\nfrom trainlab import plots\n"
                                          "lesson = tl.start('00_sanity_checks', 'smoke', 0, 'mnist')"),
                nbformat.v4.new_code_cell("fig, (ax,) = plots.figure()\nax.plot([1, 2], [3, 4], label='He')\n"
                                          "ax.set(xlabel='step', ylabel='loss', title='runs')\nfig")]
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    result = nb.cells[1].outputs[-1]
    assert "image/png" in result["data"]
    assert result["data"]["text/plain"] == "runs: loss against step; lines: He."
