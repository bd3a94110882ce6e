"""Execute notebooks headlessly with papermill and export them as HTML.

`python -m trainlab report --profile quick --out reports notebooks/*.ipynb` writes
`reports/<name>.ipynb` (executed) and `reports/<name>.html` for each notebook. A
notebook that fails still leaves its executed copy, which shows the failing cell;
its HTML is not written, and the command exits 1 after trying every notebook.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path

CELL_TIMEOUT = 3600  # no cell of a full run takes an hour; a hung kernel must not wait forever


def execute(notebook: Path, out_dir: Path, parameters: dict, kernel: str | None = None) -> Path:
    """Run one notebook with papermill; returns the executed copy's path."""
    import papermill as pm
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / notebook.name
    pm.execute_notebook(str(notebook), str(target), parameters=parameters, kernel_name=kernel,
                        cwd=str(notebook.parent), progress_bar=False, execution_timeout=CELL_TIMEOUT)
    return target


def to_html(executed: Path) -> Path:
    """The executed notebook as HTML that needs no network: outputs that are live
    widgets (whose state papermill does not save) show their static image instead,
    and the cell papermill injects under the parameters cell is left out (the page
    shows the notebook's own parameters cell; the values it ran with are in the
    gallery card)."""
    import nbformat
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    exporter = HTMLExporter()
    priority = [m for m in exporter.default_config.NbConvertBase.display_data_priority
                if m != "application/vnd.jupyter.widget-view+json"]
    exporter = HTMLExporter(config=Config({
        "NbConvertBase": {"display_data_priority": priority},
        "TagRemovePreprocessor": {"enabled": True, "remove_cell_tags": ["injected-parameters"]},
    }))
    body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
    html = executed.with_suffix(".html")
    tmp = html.with_suffix(".html.part")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(html)
    return html


def _last_line(e: BaseException) -> str:
    """An execution error as one line: its type and the last line of its message
    (papermill's message ends with the failing cell's own error)."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[-1][:300] if text else ''}"


def missing_notebooks(notebooks: list[Path]) -> str | None:
    """A one-line complaint about the notebook paths, or None when they all exist."""
    missing = [str(n) for n in notebooks if not n.is_file()]
    if missing or not notebooks:
        return f"no such notebook: {', '.join(missing) or '(none given)'}"
    return None


def report(notebooks: list[Path], out_dir: Path, profile: str) -> int:
    """Execute each notebook with `profile` into `out_dir`, with its HTML, then write
    `out_dir/index.html`, the gallery of them all (the profile and paths are checked
    by the caller, before any work)."""
    import os

    from .gallery import Entry, write_index
    claims_dir = (out_dir / "claims").resolve()  # kernels run in the notebook's folder
    os.environ["TRAINLAB_CLAIMS_DIR"] = str(claims_dir)  # the kernels record their claims there
    # A progress bar is for a person waiting on a live kernel; on a written page it is a
    # frozen "0%" line. The kernels inherit this, unless the caller set it.
    os.environ.setdefault("TRAINLAB_PROGRESS", "0")
    # Pages have no kernel: each Explore panel also shows its figure at a few more slider values.
    os.environ.setdefault("TRAINLAB_EXPLORE_STRIP", "1")
    failed, entries = [], []
    for nb in notebooks:
        t0 = time.perf_counter()
        try:
            executed = execute(nb, out_dir, {"profile": profile})
            to_html(executed)
            ok = True
            print(f"ok      {nb.name} ({time.perf_counter() - t0:.0f}s) -> {out_dir / nb.stem}.html")
        except Exception as e:  # report every notebook, then fail
            failed.append(nb.name)
            ok = False
            print(f"FAILED  {nb.name}: {_last_line(e)}")
        executed = out_dir / nb.name
        if executed.is_file():
            entries.append(Entry.read(executed, time.perf_counter() - t0, failed=not ok, claims_dir=claims_dir))
    print(f"gallery {write_index(out_dir, entries)}")
    if failed:
        print(f"{len(failed)} of {len(notebooks)} notebooks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _execute_one(notebook: Path, out_dir: Path, parameters: dict) -> float:
    t0 = time.perf_counter()
    execute(notebook, out_dir, parameters)
    return time.perf_counter() - t0


def check_out_dir(out: Path) -> None:
    """Raise SpecError naming `out` when it cannot be the output folder (a file, a path
    through a file, a folder that cannot be written); called before any notebook runs.

    >>> check_out_dir(Path("reports"))   # doctest: +SKIP
    """
    from .spec import SpecError
    from .storage import StorageError, ensure_writable
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpecError("out", str(out), "a folder, but this path is a file")
    try:
        ensure_writable(out, "--out", "output folder")
    except StorageError as e:
        raise SpecError("out", str(out), f"a folder that can be written ({e})") from None


def _record_paths(claims_dir: Path, profile: str, notebook: str, dataset: str, seed: int) -> tuple[Path, Path]:
    """Where one run's claims are recorded: under its dataset, or without one when the
    notebook's Claims were not given it."""
    from .claims import record_name
    return (claims_dir / record_name(notebook, profile, dataset, seed),
            claims_dir / record_name(notebook, profile, "", seed))


def _held_text(path: Path, fallback: Path | None = None) -> str:
    """'held/total claims' of one executed notebook, from the claims file it wrote
    (`fallback` when `path` is missing)."""
    from .claims import read_record
    if fallback is not None and not path.exists():
        path = fallback
    record = read_record(path, quiet=True)
    if record is None:
        return "no claims recorded"
    rows = record["claims"]
    return f"{sum(bool(r.get('held')) for r in rows)}/{len(rows)} claims held"


def claims_over_seeds(notebooks: list[Path], profile: str, seeds: list[int], out_dir: Path,
                      workers: int | None = None, datasets: tuple[str, ...] = ("mnist", "fashion_mnist")) -> int:
    """Run every notebook once per dataset and seed and print, per claim, on how many
    runs it held and its smallest margin: the evidence for the thresholds in the
    claims cells.

    The executions run in parallel, one per core by default (`workers`), each kernel
    limited to its share of the cores through TRAINLAB_THREADS."""
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from .threads import usable_cores, worker_share
    jobs = [(nb, dataset, seed) for nb in notebooks for dataset in datasets for seed in seeds]
    workers = max(1, min(workers or usable_cores(), len(jobs)))
    claims_dir = (out_dir / "claims").resolve()  # kernels run in the notebook's folder
    # An earlier call's record of the same run would be reported for a run that fails
    # before its claims cell: this call's runs start from none.
    for nb, dataset, seed in jobs:
        for path in _record_paths(claims_dir, profile, nb.stem, dataset, seed):
            path.unlink(missing_ok=True)
    # Children (and the kernels they start) inherit these.
    os.environ["TRAINLAB_CLAIMS_DIR"] = str(claims_dir)
    os.environ.setdefault("TRAINLAB_THREADS", str(worker_share(workers)))
    failed_runs = []
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_execute_one, nb, out_dir / f"{profile}-{dataset}-seed{seed}",
                               {"profile": profile, "seed": seed, "dataset": dataset}): (nb, dataset, seed)
                   for nb, dataset, seed in jobs}
        for future in as_completed(futures):
            nb, dataset, seed = futures[future]
            held = _held_text(*_record_paths(claims_dir, profile, nb.stem, dataset, seed))
            try:
                print(f"ok      {nb.stem} {dataset} seed {seed}: {held} ({future.result():.0f}s)", flush=True)
            except Exception as e:  # the claims table is still written before the assertion
                failed_runs.append(f"{nb.stem} {dataset} seed {seed}")
                print(f"FAILED  {nb.stem} {dataset} seed {seed}: {held}: {_last_line(e)}", flush=True)
    # Only this call's runs: records other calls left (more seeds, other notebooks) are not evidence here.
    summary = summarize_claims(claims_dir, profile, runs=[(nb.stem, dataset, seed) for nb, dataset, seed in jobs])
    import pandas as pd
    with pd.option_context("display.width", 200, "display.max_colwidth", 70, "display.max_rows", 500):
        print(summary.to_string(float_format=lambda v: f"{v:.4g}"))
    return 1 if failed_runs or not summary["held"].eq(summary["seeds"]).all() else 0


def summarize_claims(claims_dir: Path, profile: str, runs: Iterable[tuple[str, str, int]] | None = None):
    """One row per (notebook, claim): on how many runs (dataset x seed) it held, and
    its worst run's measured value, margin and what that left to spare. A run whose
    measurement was NaN (saved as null) failed without a margin, so it counts as the
    worst; a claim NaN on every run shows held 0 and worst NaN.

    `runs`: the (notebook, dataset, seed) records to read; by default every record of
    `profile` in the folder. A record that cannot be read (torn, not a claims record)
    is skipped with a warning naming it.

    >>> summarize_claims(Path("reports/seeds/claims"), "smoke")   # doctest: +SKIP
    >>> summarize_claims(Path("reports/seeds/claims"), "smoke", runs=[("04_weight_initialization", "mnist", 0)])  # doctest: +SKIP
    """
    import pandas as pd

    from .claims import margin_text, read_record
    if runs is None:
        files = sorted(claims_dir.glob(f"*-{profile}-*seed*.json"))
    else:  # a run that failed before its claims cell has no record: nothing to read
        files = sorted({f for nb, dataset, seed in runs for f in _record_paths(claims_dir, profile, nb, dataset, seed)
                        if f.is_file()})
    rows = [dict(r, notebook=d["notebook"], seed=d["seed"], dataset=d.get("dataset", ""))
            for f in files for d in [read_record(f)] if d is not None for r in d["claims"] + d.get("answers", [])]
    keys = ["notebook", "claim"]
    columns = ["held", "seeds", "op", "threshold", "worst", "min_margin", "to_spare", "worst_run"]
    if not rows:  # every notebook failed before its claims cell: an empty summary, not a crash
        return pd.DataFrame(columns=columns, index=pd.MultiIndex.from_tuples([], names=keys))
    table = pd.DataFrame(rows)
    # null (NaN in the notebook) would otherwise leave an all-null column as objects
    for c in ("measured", "threshold", "margin", "spare"):
        if c in table:
            table[c] = pd.to_numeric(table[c], errors="coerce")
    counts = table.groupby(keys, sort=False).agg(held=("held", "sum"), seeds=("seed", "size"))
    # idxmin fails on a claim whose margins are all NaN; sorting NaN first picks it instead
    worst = (table.sort_values("margin", na_position="first", kind="stable")
             .drop_duplicates(keys).set_index(keys))
    worst["to_spare"] = [margin_text(r) if isinstance(r.get("spare_unit"), str) else ""
                         for r in worst.reset_index().to_dict("records")]
    worst["worst_run"] = [f"{d or '?'} seed {s}" for d, s in zip(worst["dataset"], worst["seed"])]
    return counts.join(worst[["op", "threshold", "measured", "margin", "to_spare", "worst_run"]].rename(
        columns={"measured": "worst", "margin": "min_margin"}))[columns]
