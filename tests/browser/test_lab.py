"""Every notebook in JupyterLab, in headless Chromium, used the way a reader uses it.

For each notebook, on a temporary copy (Lab's autosave never writes into notebooks/):
open it in Lab, Run > Run All Cells in the smoke profile, check that no cell shows an
error and that every figure rendered, move the first slider of the "## Explore" panel
and wait for the panel's figure to change (the time it took is reported), and save
screenshots to reports/browser/<notebook>.png (the whole notebook) and
<notebook>-explore.png (the panel).

Needs Chromium at /usr/bin/chromium (`apt-get install -y chromium`; TRAINLAB_CHROMIUM
names another) and the `playwright` package (in the dev extra). Playwright's own
browser download is never used. Without either, the tests skip with a message, or
fail when CI is set. Run with `make test-browser` (`pytest -m browser tests/browser`).
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from browser_rig import missing

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
REPORTS = REPO / "reports" / "browser"
VIEWPORT = {"width": 1280, "height": 900}
WIDGET = "application/vnd.jupyter.widget-view+json"

# Seconds. A smoke run takes 15-60 s per notebook on 2 cores; these make a hang fail, not stall.
SERVER_START = 90
PAGE_LOAD = 60
KERNEL_START = 120
RUN_START = 30
RUN_ALL = 300
SLIDER = 120
SAVE = 30

# Lab settings for the run: no news pop-up over the screenshots; every cell kept in the
# page (no windowing), so offscreen figures have a size; no blank space past the end.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none",
                                                                   "scrollPastEnd": False},
}


@dataclass
class Lab:
    url: str
    token: str
    root: Path  # the server's root_dir: temporary copies of the notebooks
    log: Path

    def api(self, method: str, path: str):
        req = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Close every session, so one notebook's kernel does not share the cores with the next."""
        for session in self.api("GET", "sessions"):
            self.api("DELETE", f"sessions/{session['id']}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lab(chromium, tmp_path_factory, mnist_ready):
    """JupyterLab on 127.0.0.1 over copies of the notebooks, its kernels in the smoke profile."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "notebooks"
    root.mkdir()
    for path in NOTEBOOKS:
        shutil.copy(path, root / path.name)
    for name, settings in LAB_SETTINGS.items():
        (tmp / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "settings" / name).write_text(json.dumps(settings))
    env = {**os.environ,
           "TRAINLAB_PROFILE": "smoke", "TRAINLAB_PROGRESS": "0", "TRAINLAB_RUNS": str(tmp / "runs"),
           # Lab's own state in the temporary folder, not in the user's home.
           "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
           "JUPYTER_CONFIG_DIR": str(tmp / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp / "runtime")}
    port, token = free_port(), secrets.token_hex(16)
    server = Lab(url=f"http://127.0.0.1:{port}", token=token, root=root, log=tmp / "lab.log")
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}"]
    with open(server.log, "w") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{server.log_tail()}", pytrace=False)
            try:
                server.api("GET", "status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {SERVER_START} s:\n{server.log_tail()}",
                                pytrace=False)
                time.sleep(0.5)
        yield server
    finally:
        try:
            server.shutdown_kernels()
        except OSError:
            pass
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        REPORTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(server.log, REPORTS / "lab.log")


# --- What the page shows (plain DOM, stable JupyterLab and ipywidgets class names) ---

RUN_ALL_DONE = """() => {
  const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')].map(e => e.textContent);
  const status = document.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status;
  return prompts.length > 0 && /\\[\\d+\\]/.test(prompts[0]) && !prompts.some(p => p.includes('*'))
         && (status === undefined || status === 'idle');
}"""

# A cell queued or running shows [*]; one already done shows its number.
RUN_STARTED = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
  .some(e => /\\[(\\*|\\d+)\\]/.test(e.textContent))"""

PROMPTS = "() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim())"

# An error output renders as stderr text holding the traceback; warnings are stderr too, so
# only text with a traceback, or ending in an exception line (SyntaxError has no header), counts.
ERROR_OUTPUTS = """() => [...document.querySelectorAll(
    '.jp-Notebook .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
  .map(e => e.innerText)
  .filter(t => /Traceback \\(most recent call last\\)/.test(t)
               || /^[A-Za-z_][\\w.]*(Error|Exception|Interrupt|Exit)\\b/.test(t.trim().split('\\n').pop()))"""

FIGURES = """() => [...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output img')].map(i => {
  const r = i.getBoundingClientRect();
  return {complete: i.complete, natural: [i.naturalWidth, i.naturalHeight], shown: [r.width, r.height],
          panel: !!i.closest('[data-trainlab-explore]')};
})"""

# Marks the first cell with a slider below the "## Explore" heading; returns what is missing.
MARK_EXPLORE = """() => {
  const cells = [...document.querySelectorAll('.jp-Notebook .jp-Cell')];
  const heading = cells.findIndex(c => c.classList.contains('jp-MarkdownCell')
      && [...c.querySelectorAll('h2')].some(h => h.textContent.replace('¶', '').trim() === 'Explore'));
  if (heading < 0) return 'no "## Explore" heading';
  const panel = cells.slice(heading + 1).find(c => c.querySelector('.widget-slider'));
  if (!panel) return 'no slider below the "## Explore" heading';
  panel.setAttribute('data-trainlab-explore', '');
  return '';
}"""

NEW_PANEL_FIGURE = """old => {
  const img = document.querySelector('[data-trainlab-explore] .widget-output img');
  return !!img && img.src !== old && img.complete && img.naturalWidth > 0;
}"""

# ipywidgets 8 draws a SelectionSlider with noUiSlider (a .noUi-handle with aria values);
# other versions use <input type=range>.
SLIDER_POSITION = """h => h.matches('input') ? [+h.value, +h.max]
                                            : [+h.getAttribute('aria-valuenow'), +h.getAttribute('aria-valuemax')]"""


def wait_for_kernel(lab: Lab, name: str) -> None:
    """Until the server reports the notebook's kernel idle: the page's indicator can say idle
    before the kernel has started (a cold first kernel on a slow machine takes many seconds)."""
    deadline = time.monotonic() + KERNEL_START
    state = "no session"
    while time.monotonic() < deadline:
        sessions = [s for s in lab.api("GET", "sessions") if s.get("path", "").endswith(name)]
        if sessions:
            state = (sessions[0].get("kernel") or {}).get("execution_state", "no kernel")
            if state == "idle":
                return
        time.sleep(0.5)
    pytest.fail(f"the kernel of {name} was not idle within {KERNEL_START} s (last state: {state}):\n"
                f"{lab.log_tail()}", pytrace=False)


def open_notebook(page, lab: Lab, name: str) -> None:
    page.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}", timeout=PAGE_LOAD * 1000)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=PAGE_LOAD * 1000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status=idle]", timeout=PAGE_LOAD * 1000)
    wait_for_kernel(lab, name)
    open_sidebar_tab = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    if open_sidebar_tab.count():  # fold the file browser away: more notebook in the screenshots
        open_sidebar_tab.first.click()


def menu(page, menu_name: str, command: str) -> None:
    page.get_by_role("menuitem", name=menu_name, exact=True).click()
    page.locator(f'.lm-Menu-item[data-command="{command}"]').click()


def run_all_cells(page) -> float:
    """Run > Run All Cells; a click the page did not act on (a menu opened while Lab was still
    settling) is retried once, and a dialog in the way is named in the failure."""
    start = time.perf_counter()
    for attempt in (1, 2):
        menu(page, "Run", "runmenu:run-all")
        try:
            page.wait_for_function(RUN_STARTED, timeout=RUN_START * 1000, polling=250)
            break
        except Exception as e:  # playwright's TimeoutError
            dialogs = page.locator(".jp-Dialog").all_inner_texts()
            if attempt == 2 or dialogs:
                pytest.fail(f"Run All Cells started no cell within {RUN_START} s (attempt {attempt}; "
                            f"dialogs on the page: {dialogs or 'none'}; prompts: {page.evaluate(PROMPTS)}): {e}",
                            pytrace=False)
            page.keyboard.press("Escape")  # close a menu left open
    try:
        page.wait_for_function(RUN_ALL_DONE, timeout=RUN_ALL * 1000, polling=500)
    except Exception as e:  # playwright's TimeoutError
        pytest.fail(f"Run All Cells did not finish within {RUN_ALL} s (prompts: {page.evaluate(PROMPTS)}): {e}",
                    pytrace=False)
    return time.perf_counter() - start


def save_and_read(page, path: Path) -> dict:
    """Save from Lab (File > Save Notebook) and read back what it wrote: the ground truth for outputs."""
    before = path.stat().st_mtime_ns
    menu(page, "File", "docmanager:save")
    deadline = time.monotonic() + SAVE
    while time.monotonic() < deadline:
        if path.stat().st_mtime_ns != before:
            try:
                return json.loads(path.read_text())
            except json.JSONDecodeError:  # caught mid-write
                pass
        time.sleep(0.2)
    pytest.fail(f"Lab did not save {path.name} within {SAVE} s", pytrace=False)


def screenshot(page, path: Path) -> None:
    """The whole notebook: make the window as tall as the notebook's content, then shoot."""
    height = page.evaluate("""() => {
      const s = document.querySelector('.jp-Notebook .jp-WindowedPanel-outer') || document.querySelector('.jp-Notebook');
      if (!s) return 0;
      s.scrollTop = 0;
      return s.scrollHeight; }""")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(max(VIEWPORT["height"], height + 200), 16000)})
    page.wait_for_timeout(500)
    page.screenshot(path=str(path), full_page=True)


def move_slider(page) -> tuple[str, str, str, float]:
    """Moves the Explore panel's first slider one step; returns (name, before, after, seconds to new figure)."""
    panel = page.locator("[data-trainlab-explore]")
    slider = panel.locator(".widget-slider").first
    handle = slider.locator(".noUi-handle, input[type=range]").first
    readout = slider.locator(".widget-readout")
    name = slider.locator(".widget-label").inner_text().strip()
    images = panel.locator(".widget-output img")
    assert images.count() == 1, f"the Explore panel shows {images.count()} images, not one figure"
    old_src, before = images.first.get_attribute("src"), readout.inner_text().strip()
    position, last = handle.evaluate(SLIDER_POSITION)
    handle.scroll_into_view_if_needed()
    handle.focus()
    start = time.perf_counter()
    page.keyboard.press("ArrowRight" if position < last else "ArrowLeft")
    try:
        page.wait_for_function(NEW_PANEL_FIGURE, arg=old_src, timeout=SLIDER * 1000, polling="raf")
    except Exception as e:  # playwright's TimeoutError
        pytest.fail(f"moved slider {name!r} from {before} to {readout.inner_text().strip()}, but the figure did "
                    f"not change within {SLIDER} s (errors in widget callbacks go to Lab's log console, "
                    f"the kernel's to reports/browser/lab.log): {e}", pytrace=False)
    seconds = time.perf_counter() - start
    after = readout.inner_text().strip()
    assert after != before, f"slider {name!r} did not move from {before}"
    return name, before, after, seconds


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_its_sliders_work_in_lab(path, chromium, lab, browser_results):
    REPORTS.mkdir(parents=True, exist_ok=True)
    copy = lab.root / path.name
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        open_notebook(page, lab, path.name)
        run_seconds = run_all_cells(page)

        prompts = page.evaluate(PROMPTS)
        errors = page.evaluate(ERROR_OUTPUTS)
        assert not errors, "error output in the notebook:\n\n" + "\n\n".join(e[-2000:] for e in errors)
        not_run = [i for i, p in enumerate(prompts) if not any(ch.isdigit() for ch in p)]
        assert not not_run, f"code cells {not_run} did not run (prompts: {prompts})"

        saved = save_and_read(page, copy)
        outputs = [o for c in saved["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
        saved_errors = [f"{o['ename']}: {o['evalue']}" for o in outputs if o["output_type"] == "error"]
        assert not saved_errors, f"error outputs in the saved notebook: {saved_errors}"
        printed = "".join("".join(o["text"]) for o in outputs if o["output_type"] == "stream")
        assert "'smoke'" in printed, "the kernel did not say it runs the smoke profile (TRAINLAB_PROFILE)"

        missing_panel = page.evaluate(MARK_EXPLORE)
        assert not missing_panel, missing_panel
        page.wait_for_function(f"() => ({FIGURES})().every(f => f.complete)", timeout=10_000)
        figures = page.evaluate(FIGURES)
        small = [f for f in figures if min(f["natural"] + f["shown"]) < 100]
        assert not small, f"figures that did not render at a real size: {small}"
        in_cells = sum(not f["panel"] for f in figures)
        # An output that holds a widget renders as the widget (its PNG is for other frontends).
        saved_images = sum("image/png" in o.get("data", {}) and WIDGET not in o["data"] for o in outputs)
        assert in_cells >= 1 and in_cells == saved_images, \
            f"{in_cells} figures shown in cell outputs, {saved_images} image outputs in the notebook"

        name, before, after, seconds = move_slider(page)
        panel = page.locator("[data-trainlab-explore]")
        panel.scroll_into_view_if_needed()
        panel.screenshot(path=str(REPORTS / f"{path.stem}-explore.png"))
        browser_results.append(f"{path.stem}: {len(figures)} figures ({in_cells} in cells, 1 in the Explore panel), "
                               f"Run All {run_seconds:.1f} s; slider {name} {before} -> {after}: "
                               f"new figure in {seconds:.2f} s")
        screenshot(page, REPORTS / f"{path.stem}.png")
    except BaseException:
        with contextlib.suppress(Exception):  # what the page showed when it failed
            screenshot(page, REPORTS / f"{path.stem}.png")
        raise
    finally:
        context.close()
        lab.shutdown_kernels()
