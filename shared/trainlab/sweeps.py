"""Many runs at once, with finished runs cached on disk by the spec's hash.

Rerunning a notebook, or moving a slider back to a point already computed, loads
the run instead of training it again. The cache lives in `TRAINLAB_RUNS` (default
`<data root>/runs`) and is keyed by the spec, the harness version and the device
type, so results from another version or another kind of device are never reused.

A sweep trains what is not cached in this process, on `workers=N` local worker
processes, or on a Dask cluster (`scheduler="tcp://host:8786"` or a
`distributed.Client`). At a fixed TRAINLAB_THREADS a spec gives bit-identical
numbers on the CPU whichever way it ran. Runs are cached as they arrive, so a sweep that fails part-way keeps what it
finished, and rerunning it trains only what is missing.

>>> result = sweep(grid(Spec(subset=2000, epochs=1), lr=[0.01, 0.1], batch_size=[32, 128]), workers=2)  # doctest: +SKIP
>>> result.table.pivot(index="batch_size", columns="lr", values="val_acc")                                # doctest: +SKIP
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pandas as pd

from .data import data_root
from .device import resolve_device
from .run import CorruptRunFile, Run
from .spec import Spec, SpecError
from .storage import ensure_writable

# Bump when a change to the harness changes the numbers a spec produces, or what a run records.
RESULTS_VERSION = "4"


def cache_dir() -> Path:
    return Path(os.environ.get("TRAINLAB_RUNS") or data_root() / "runs")


def cache_path(spec: Spec, start_tag: str | None = None) -> Path:
    """Where the run of `spec` is saved; `start_tag` names starting weights other than
    the spec's own random init (see `run_cached`)."""
    device = resolve_device(spec.device).type
    extra = () if start_tag is None else ("start", start_tag)
    return cache_dir() / f"{spec.key(RESULTS_VERSION, device, *extra)}.json"


def move_aside(path: Path, problem: str) -> None:
    """Move an unreadable cache file to `corrupt/` beside it, with a warning naming it,
    so the run is trained again instead of every later sweep stopping on it."""
    aside = path.parent / "corrupt" / f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    aside.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(path, aside)
        where = f"moved it to {aside}"
    except FileNotFoundError:  # another process moved or replaced it first
        where = "another process moved it"
    warnings.warn(f"run cache: {problem}; {where} and the run will be trained again", stacklevel=4)


def load_cached(path: Path) -> Run | None:
    """The run saved at `path`, or None (also when it cannot be read: see `move_aside`)."""
    if not path.is_file():
        return None
    try:
        return Run.load(path)
    except CorruptRunFile as e:
        move_aside(path, str(e))
        return None


def writable_cache() -> Path:
    """The run cache folder, checked writable before any training starts."""
    return ensure_writable(cache_dir(), "TRAINLAB_RUNS", "run cache")


def run_cached(spec: Spec, *, cache: bool = True, model: bool = False,
               start: Callable[[], Any] | None = None, start_tag: str | None = None) -> Run:
    """`fit(spec)`, or the saved result of an identical earlier run.

    With `model=True` the trained weights are kept too (`<key>.pt` beside the run)
    and the returned run has `run.model`, rebuilt from them when the run comes from
    the cache; without it a loaded run has no model. `start` returns the model to
    train instead of the spec's random init (pretrained weights, a new head);
    `start_tag` must name how it makes them, since it is part of the cache key.

    >>> run = run_cached(spec, model=True)     # doctest: +SKIP
    >>> run.model                               # doctest: +SKIP
    >>> run_cached(target, start=lambda: new_head(body, 5), start_tag="head on body of <source>")  # doctest: +SKIP
    """
    from .train import fit
    if (start is None) != (start_tag is None):
        raise SpecError("start_tag", start_tag, "a string naming how `start` makes its weights, given with `start`")
    if not cache:
        return fit(spec, model=start() if start else None, progress=False)
    path = cache_path(spec, start_tag)
    run = load_cached(path)
    if run is not None and model:
        run.model = _load_weights(spec, path.with_suffix(".pt"))
        if run.model is None:
            run = None  # the weights are missing or bad: train again to get them
    if run is None:
        writable_cache()
        run = fit(spec, model=start() if start else None, progress=False)
        if model:
            _save_weights(run, path.with_suffix(".pt"))
        run.save(path)
    return run


def _save_weights(run: Run, path: Path) -> None:
    import torch

    from .storage import atomic_write
    state = {k: v.detach().cpu() for k, v in run.model.state_dict().items()}
    atomic_write(path, lambda f: torch.save(state, f))


def _load_weights(spec: Spec, path: Path):
    """The spec's model with the weights saved at `path`, or None when there are none
    (or they cannot be read: the file is moved aside with a warning)."""
    if not path.is_file():
        return None
    import torch

    from .models import build_model
    net = build_model(spec)  # on the spec's device; the saved CPU tensors are copied in
    try:
        net.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
    except Exception as e:  # torn, truncated or from another model: retrain
        move_aside(path, f"weights {path} could not be read ({type(e).__name__})")
        return None
    return net


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


@dataclass
class Failure:
    """A run of a sweep that did not finish, and why."""

    spec: Spec
    error: str

    def __str__(self) -> str:
        return f"{self.spec.diff() or 'the default spec'}: {self.error}"


class SweepError(RuntimeError):
    """Some runs of a sweep failed. `failures` says which and why; `partial` is the
    Sweep of the runs that finished (they are cached too)."""

    def __init__(self, failures: list[Failure], partial: "Sweep"):
        self.failures, self.partial = failures, partial
        lines = "\n".join(f"  {f}" for f in failures)
        super().__init__(f"{len(failures)} of {len(failures) + len(partial.runs)} runs failed "
                         f"(the others are cached; rerunning trains only the missing ones):\n{lines}")


def _engine(todo: list[Spec], workers: int | None, scheduler: Any) -> Iterator:
    from . import workers as engines
    if scheduler is not None:
        return engines.on_dask(todo, scheduler)
    if workers is not None and workers > 1 and len(todo) > 1:
        return engines.local_workers(todo, min(workers, len(todo)))
    return engines.in_process(todo)


def sweep(specs: Iterable[Spec], *, cache: bool = True, progress: bool | None = None,
          workers: int | None = None, scheduler: Any = None) -> Sweep:
    """Run every spec (cached), with one progress bar over the runs.

    `workers=N` trains on N local processes; `scheduler` (a Dask scheduler address
    or a `distributed.Client`) trains on that cluster. Runs are cached by this
    process as they arrive. When some runs fail, the others are kept and
    `SweepError` lists the failed specs with their errors.

    >>> sweep(grid(Spec(subset=1000, epochs=1), seed=range(4)), workers=2).table  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    from .callbacks import progress_enabled
    specs = list(specs)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise SpecError("workers", workers, "a whole number >= 1, or None")
    # One path per distinct spec (resolving the device for the key is not free);
    # identical specs share a path, so they are trained once.
    paths = {spec: cache_path(spec) for spec in specs}
    done: dict[Spec, Run] = {}
    if cache:
        for spec, path in paths.items():
            run = load_cached(path)
            if run is not None:
                done[spec] = run
    todo = [spec for spec in paths if spec not in done]
    if todo and cache:
        writable_cache()  # before any training: a run trained and then lost is worse than no run
    failures: list[Failure] = []
    show = progress_enabled() if progress is None else progress
    with tqdm(total=len(specs), initial=len(specs) - len(todo), desc="sweep", unit="run",
              leave=False, disable=not show) as bar:
        for spec, run, error in _engine(todo, workers, scheduler):
            if run is None:
                failures.append(Failure(spec, error))
            else:
                if cache:
                    run.save(paths[spec])
                done[spec] = run
            bar.update(1)
    runs = [done[s] for s in specs if s in done]
    result = Sweep(runs, summarize(runs) if runs else pd.DataFrame())
    if failures:
        raise SweepError(failures, result)
    return result
