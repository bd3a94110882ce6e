"""Many runs at once, with finished runs cached on disk by the spec's hash.

Rerunning a notebook, or moving a slider back to a point already computed, loads
the run instead of training it again. The cache lives in `TRAINLAB_RUNS` (default
`<data root>/runs`) and is keyed by the spec, the harness version and the device
type, so results from another version or another kind of device are never reused.

>>> result = sweep(grid(Spec(subset=2000, epochs=1), lr=[0.01, 0.1], batch_size=[32, 128]))  # doctest: +SKIP
>>> result.table.pivot(index="batch_size", columns="lr", values="val_acc")                    # doctest: +SKIP
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from .data import data_root
from .device import resolve_device
from .run import Run
from .spec import Spec

# Bump when a change to the harness changes the numbers a spec produces.
RESULTS_VERSION = "1"


def cache_dir() -> Path:
    return Path(os.environ.get("TRAINLAB_RUNS") or data_root() / "runs")


def cache_path(spec: Spec) -> Path:
    device = resolve_device(spec.device).type
    return cache_dir() / f"{spec.key(RESULTS_VERSION, device)}.json"


def run_cached(spec: Spec, *, cache: bool = True) -> Run:
    """`fit(spec)`, or the saved result of an identical earlier run.

    A loaded run has no `model` (weights are not cached); call `fit` when you need it.
    """
    from .train import fit
    path = cache_path(spec)
    if cache and path.is_file():
        return Run.load(path)
    run = fit(spec, progress=False)
    if cache:
        run.save(path)
    return run


@dataclass
class Sweep:
    """The runs of a sweep and a table of them: one row per run, with the fields
    that vary between runs, the final metrics, `diverged` and `seconds`."""

    runs: list[Run]
    table: pd.DataFrame

    def best(self, metric: str = "val_acc", maximize: bool = True) -> Run:
        """The best run by a final metric (diverged runs never win)."""
        from .measures import best_row
        return self.runs[best_row(self.table, metric, maximize)]


def summarize(runs: list[Run]) -> pd.DataFrame:
    specs = pd.DataFrame([r.spec.to_dict() for r in runs])
    varying = [c for c in specs.columns if specs[c].astype(str).nunique() > 1]
    rows = [{**{c: getattr(r.spec, c) for c in varying}, **r.final,
             "diverged": r.diverged, "seconds": r.seconds} for r in runs]
    return pd.DataFrame(rows)


def sweep(specs: Iterable[Spec], *, cache: bool = True, progress: bool | None = None) -> Sweep:
    """Run every spec (cached), with one progress bar over the runs."""
    from .callbacks import progress_enabled
    from tqdm.auto import tqdm
    specs = list(specs)
    show = progress_enabled() if progress is None else progress
    runs = [run_cached(s, cache=cache) for s in tqdm(specs, desc="sweep", unit="run", leave=False, disable=not show)]
    return Sweep(runs, summarize(runs))
