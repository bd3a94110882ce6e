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

import hashlib
import os
import secrets
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
from .storage import (
    StorageError,
    ensure_space,
    ensure_writable,
    free_bytes,
    human_size,
    is_no_space,
)

# Bump when a change to the harness changes the numbers a spec produces, or what a run records.
# 5: weights files hold a sha256 of their tensors, checked on load.
RESULTS_VERSION = "5"

# Conservative sizes of what the cache writes for one run, for the free-space check
# before training: a step row is about 60 bytes of JSON and a probe row a few hundred,
# so these leave several times that to spare.
RUN_FILE_BASE = 64 * 1024  # spec, final metrics, epoch rows, frame headers
RUN_FILE_PER_STEP = 256
RUN_FILE_PER_PROBE_ROW = 1024
WEIGHTS_SLACK = 1.25  # buffers (BatchNorm's running statistics) and torch.save's zip layout


def cache_dir() -> Path:
    return Path(os.environ.get("TRAINLAB_RUNS") or data_root() / "runs")


def cache_path(spec: Spec, start_tag: str | None = None) -> Path:
    """Where the run of `spec` is saved; `start_tag` names starting weights other than
    the spec's own random init (see `run_cached`)."""
    device = resolve_device(spec.device).type
    extra = () if start_tag is None else ("start", start_tag)
    return cache_dir() / f"{spec.key(RESULTS_VERSION, device, *extra)}.json"


def space_needed(spec: Spec, model: bool = False) -> int:
    """A conservative estimate, in bytes, of the cache entry of `spec`'s run: its run
    file, and with `model=True` its weights.

    >>> space_needed(Spec(subset=2000, epochs=1), model=True)   # doctest: +SKIP
    """
    from .memory import parameter_count
    steps = spec.total_steps
    size = RUN_FILE_BASE + RUN_FILE_PER_STEP * steps
    if spec.probe_every:
        size += RUN_FILE_PER_PROBE_ROW * (spec.depth + 1) * (steps // spec.probe_every + 1)
    if model:
        size += int(WEIGHTS_SLACK * 4 * parameter_count(spec)) + RUN_FILE_BASE  # float32 weights
    return size


def move_aside(path: Path, problem: str) -> None:
    """Move an unreadable cache entry to `corrupt/` beside it, with a warning naming it,
    so the run is trained again instead of every later sweep stopping on it.

    When it cannot be moved (a read-only cache, `corrupt` a file) the warning says so
    and nothing is raised: the run is trained again all the same, and saving it
    replaces the entry where the cache can be written (see `cache_ready`).
    """
    # The pid and a random tail keep two entries moved aside within one second apart.
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"
    aside = path.parent / "corrupt" / f"{path.name}.{stamp}"
    try:
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, aside)
        where = f"moved it to {aside}"
    except FileNotFoundError:  # another process moved or replaced it first
        where = "another process moved it"
    except OSError as e:
        where = f"could not move it aside ({type(e).__name__}: {e.strerror or e})"
    warnings.warn(f"run cache: {problem}; {where} and the run will be trained again", stacklevel=4)


def load_cached(path: Path, spec: Spec | None = None) -> Run | None:
    """The run saved at `path`, or None: also when the entry cannot be read, is not a
    file, or (given `spec`) holds the run of another spec; such an entry is moved
    aside with a warning (see `move_aside`)."""
    if not (path.exists() or path.is_symlink()):
        return None
    if not path.is_file():  # a folder or a dangling link where a run file should be
        move_aside(path, f"{path} is not a file, so not a saved run")
        return None
    try:
        run = Run.load(path)
    except CorruptRunFile as e:
        move_aside(path, str(e))
        return None
    except OSError as e:  # an I/O error or no permission to read it: unusable all the same
        move_aside(path, f"{path} cannot be read ({type(e).__name__}: {e.strerror or e})")
        return None
    if spec is not None and run.spec != spec:
        move_aside(path, f"{path} holds the run of another spec ({_difference(run.spec, spec)})")
        return None
    return run


def _difference(stored: Spec, wanted: Spec) -> str:
    """'lr 0.1, not 0.05': the fields where a stored spec differs from the one asked for."""
    a, b = stored.to_dict(), wanted.to_dict()
    return ", ".join(f"{k} {a.get(k)!r}, not {b[k]!r}" for k in b if a.get(k) != b[k])


def writable_cache(specs: Iterable[Spec] = (), *, model: bool = False) -> Path:
    """The run cache folder, checked writable, and with room for the runs of `specs`
    (at least one small run file), before any training starts."""
    folder = ensure_writable(cache_dir(), "TRAINLAB_RUNS", "run cache")
    specs = list(specs)
    needed = sum(space_needed(s, model) for s in specs) or RUN_FILE_BASE
    what = ("the run of this spec" if len(specs) == 1 else f"the runs of {len(specs)} specs") if specs else "a run"
    ensure_space(folder, needed, "TRAINLAB_RUNS", "run cache",
                 purpose=what + (" with weights" if model else ""))
    return folder


def save_cached(run: Run, path: Path, *, model: bool = False) -> bool:
    """Save `run` at `path` (and its weights beside it with `model=True`); return whether
    it was saved.

    A full disk, or an entry that cannot be written, costs the cache entry only: a
    warning names the folder (and the space a run needs) and the run is kept, so a
    finished run is never lost to its cache file and a sweep goes on.
    """
    try:
        if model:
            _save_weights(run, path.with_suffix(".pt"))
        run.save(path)
    except OSError as e:
        if is_no_space(e):
            problem = (f"no space left to save the entry {path.stem} (it needs about "
                       f"{human_size(space_needed(run.spec, model))}, the disk has "
                       f"{human_size(free_bytes(path.parent))} free)")
        else:
            problem = f"could not save the entry {path.stem} ({type(e).__name__}: {e.strerror or e})"
        warnings.warn(f"run cache {path.parent}: {problem}; the run is kept without caching "
                      "(free space there, or set TRAINLAB_RUNS to another folder)", stacklevel=3)
        return False
    return True


def run_cached(spec: Spec, *, cache: bool = True, model: bool = False,
               start: Callable[[], Any] | None = None, start_tag: str | None = None) -> Run:
    """`fit(spec)`, or the saved result of an identical earlier run.

    With `model=True` the trained weights are kept too (`<key>.pt` beside the run)
    and the returned run has `run.model`, rebuilt from them when the run comes from
    the cache; without it a loaded run has no model. `start` returns the model to
    train instead of the spec's random init (pretrained weights, a new head);
    `start_tag` must name how it makes them, since it is part of the cache key.

    A damaged entry is moved aside and the run trained again; one that cannot be
    moved out of a read-only cache is trained again without caching. Too little
    space for the entry raises StorageError before training; a save that fails
    anyway warns and returns the run uncached.

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
    run = load_cached(path, spec)
    if run is not None and model:
        run.model = _load_weights(spec, path.with_suffix(".pt"))
        if run.model is None:
            run = None  # the weights are missing or bad: train again to get them
    if run is not None:
        return run
    keep = cache_ready([spec], [path], model=model)
    run = fit(spec, model=start() if start else None, progress=False)
    if keep:
        save_cached(run, path, model=model)
    return run


def cache_ready(specs: list[Spec], paths: list[Path], *, model: bool = False) -> bool:
    """Check the cache before training `specs`, whose entries are `paths`: True when
    their runs can be saved there (see `writable_cache`), else StorageError.

    One exception: in a cache that cannot be written, an unusable entry that is still
    in place (`move_aside` could not move it) would block its spec for good, so then
    the answer is False, with a warning, and the runs are trained without caching.
    """
    try:
        writable_cache(specs, model=model)
    except StorageError as e:
        stuck = [p for p in paths if p.exists() or p.is_symlink()]
        if not stuck:
            raise
        warnings.warn(f"{e}; the unusable entry {stuck[0].name} cannot be moved out of it, so the "
                      "runs are trained again without caching", stacklevel=3)
        return False
    return True


def _state_digest(state: dict) -> str:
    """sha256 over each tensor's name, dtype, shape and bytes: it catches damage that
    still loads (a flipped bit in a weight), which torch.load cannot."""
    import torch
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key} {t.dtype} {tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # any dtype, as raw bytes
    return h.hexdigest()


def _save_weights(run: Run, path: Path) -> None:
    """The model's weights with their sha256, in one file: written in one atomic
    rename, so no reader ever pairs one process's weights with another's checksum."""
    import torch

    from .storage import atomic_write
    state = {k: v.detach().cpu() for k, v in run.model.state_dict().items()}
    payload = {"state": state, "sha256": _state_digest(state)}
    atomic_write(path, lambda f: torch.save(payload, f))


def _weights_problem(saved: Any) -> str | None:
    """Why loaded weights cannot be trusted, or None."""
    if not isinstance(saved, dict) or set(saved) != {"state", "sha256"}:
        return "are not the state dict and sha256 that the run cache writes"
    if saved["sha256"] != _state_digest(saved["state"]):
        return "do not match the sha256 saved with them (damaged on disk)"
    return None


def _load_weights(spec: Spec, path: Path):
    """The spec's model with the weights saved at `path`, or None when there are none
    (or they cannot be read or fail their checksum: the file is moved aside with a warning)."""
    if not path.is_file():
        return None
    import torch

    from .models import build_model
    net = build_model(spec)  # on the spec's device; the saved CPU tensors are copied in
    try:
        saved = torch.load(path, weights_only=True, map_location="cpu")
        problem = _weights_problem(saved)
        if problem is None:
            net.load_state_dict(saved["state"])
    except Exception as e:  # torn, truncated or from another model: retrain
        problem = f"could not be read ({type(e).__name__})"
    if problem is not None:
        move_aside(path, f"weights {path} {problem}")
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


def summarize(runs: list[Run], stacked: bool = False) -> pd.DataFrame:
    """One row per run: the fields that vary, the final metrics, `diverged`, `seconds`;
    with `stacked`, whether the run trained in a stack (`trainlab.stacked`)."""
    specs = pd.DataFrame([r.spec.to_dict() for r in runs])
    varying = [c for c in specs.columns if specs[c].astype(str).nunique() > 1]
    rows = [{**{c: getattr(r.spec, c) for c in varying}, **r.final,
             "diverged": r.diverged, "seconds": r.seconds} for r in runs]
    if stacked:
        for row, run in zip(rows, runs):
            row["stacked"] = run.extra.get("stacked_with", 1) > 1
    return pd.DataFrame(rows)


def _stacks(groups: list[list[Spec]]) -> Iterator:
    """(spec, run, error) for every spec of every stack, trained one stack at a time
    in this process; a stack that fails fails each of its specs with its error."""
    from .stacked import fit_stacked
    for group in groups:
        try:
            runs = fit_stacked(group)
        except Exception as e:  # noqa: BLE001  (reported per spec, as the other engines do)
            for spec in group:
                yield spec, None, f"{type(e).__name__}: {e}"
            continue
        yield from ((spec, run, None) for spec, run in zip(group, runs))


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


def _check_fits(todo: list[Spec], scheduler: Any) -> None:
    """SpecError for the first spec whose model cannot train in this machine's memory,
    before any run starts: found by `fit`, it would come only after other runs had
    trained, as one failed run among them. A cluster's machines have their own
    memory, so their runs are checked there, by `fit`."""
    if scheduler is not None:
        return
    from .memory import check_fits
    for spec in todo:
        check_fits(spec, resolve_device(spec.device))


def _engine(todo: list[Spec], workers: int | None, scheduler: Any) -> Iterator:
    """Where the runs of `todo` train; called only when there is something to train,
    so a fully cached sweep never contacts (or waits for) a cluster."""
    from . import workers as engines
    if scheduler is not None:
        return engines.on_dask(todo, scheduler)
    if workers is not None and workers > 1 and len(todo) > 1:
        return engines.local_workers(todo, min(workers, len(todo)))
    return engines.in_process(todo)


def sweep(specs: Iterable[Spec], *, cache: bool = True, progress: bool | None = None,
          workers: int | None = None, scheduler: Any = None, stacked: bool = False) -> Sweep:
    """Run every spec (cached), with one progress bar over the runs.

    `stacked=True` trains the specs that differ only in the optimizer's numbers, the
    seed or the init's scale as one stacked model each (`trainlab.stacked`), in this
    process; the rest train as usual, and the table's `stacked` column says which
    was which. Stacked runs match runs alone to rounding, not bit for bit, so it is
    off by default.

    `workers=N` trains on N local processes; `scheduler` (a Dask scheduler address
    or a `distributed.Client`) trains on that cluster. Runs are cached by this
    process as they arrive. When some runs fail, the others are kept and
    `SweepError` lists the failed specs with their errors. Before any run trains,
    a bad `workers` or `scheduler`, or a spec too big for this machine's memory,
    raises SpecError; when every run is cached, no engine is started or contacted.

    >>> sweep(grid(Spec(subset=1000, epochs=1), seed=range(4)), workers=2).table  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    from .callbacks import progress_enabled
    specs = list(specs)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise SpecError("workers", workers, "a whole number >= 1, or None")
    if scheduler is not None:
        from .workers import check_scheduler
        check_scheduler(scheduler)
    # One path per distinct spec (resolving the device for the key is not free);
    # identical specs share a path, so they are trained once.
    paths = {spec: cache_path(spec) for spec in specs}
    done: dict[Spec, Run] = {}
    if cache:
        for spec, path in paths.items():
            run = load_cached(path, spec)  # an entry holding another spec's run is not served
            if run is not None:
                done[spec] = run
    todo = [spec for spec in paths if spec not in done]
    _check_fits(todo, scheduler)
    # Before any training: room for every run, since a run trained and then lost is
    # worse than no run; False (with a warning) when a stuck entry in a read-only
    # cache means training uncached.
    keep = cache and bool(todo) and cache_ready(todo, [paths[s] for s in todo])
    failures: list[Failure] = []
    show = progress_enabled() if progress is None else progress
    from itertools import chain

    from .stacked import stack_groups
    groups, alone = stack_groups(todo) if stacked else ([], todo)
    with tqdm(total=len(specs), initial=len(specs) - len(todo), desc="sweep", unit="run",
              leave=False, disable=not show) as bar:
        for spec, run, error in chain(_stacks(groups), _engine(alone, workers, scheduler) if alone else ()):
            if run is None:
                failures.append(Failure(spec, error))
            else:
                if keep:
                    save_cached(run, paths[spec])  # a full disk warns and the sweep goes on
                done[spec] = run
            bar.update(1)
    runs = [done[s] for s in specs if s in done]
    result = Sweep(runs, summarize(runs, stacked) if runs else pd.DataFrame())
    if failures:
        raise SweepError(failures, result)
    return result
