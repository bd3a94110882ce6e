"""Where a sweep's runs are trained: in this process, in local worker processes, or
on a Dask cluster. Each engine yields `(spec, run, error)` as runs finish, so the
caller can cache every run as it arrives.

Local workers are a `ProcessPoolExecutor` (spawned, so no worker inherits a forked
torch thread pool); a cluster is `dask.distributed`, which already schedules,
retries a task whose worker died and reports `KilledWorker` when it keeps dying.
Workers return the finished `Run` (without its model); they never write the run
cache, so a cluster's workers need no shared disk.

A local worker exits when the process that started it dies, even by SIGKILL (a
killed notebook kernel or `python -m trainlab sweep`): each worker holds several
hundred MB and would otherwise train on, and keep multiprocessing's resource
tracker alive, until its run ends.
"""
from __future__ import annotations

import ctypes
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any, Callable, Iterable, Iterator

from .run import Run
from .spec import Spec, SpecError
from .threads import usable_cores, worker_share

# (what was trained, its result, the error that stopped it): a spec and its Run, or a
# stack (a tuple of specs) and its list of Runs, with the engine's task.
Outcome = tuple[Any, Any, "str | None"]


def train_remote(spec: Spec, max_threads: int | None = None) -> Run:
    """Train one spec in whatever process this runs in, and return the Run without
    its model (the model is large and the collector does not need it)."""
    from .train import fit
    return _without_models([fit(spec, progress=False, max_threads=_threads(max_threads))])[0]


def _threads(max_threads: int | None) -> int | None:
    """What a remote task may use: the caller's share, or on a Dask worker the cores
    divided among its slots. Remote tasks never draw progress bars."""
    os.environ.setdefault("TRAINLAB_PROGRESS", "0")
    return max_threads if max_threads is not None else _dask_worker_share()


def _without_models(runs: list[Run]) -> list[Run]:
    """The runs as the collector needs them: models are large and stay where they trained."""
    for run in runs:
        run.model = None
    return runs


def train_unit(unit: "Spec | tuple[Spec, ...]", max_threads: int | None = None) -> list[Run]:
    """Train one unit of a sweep wherever this runs: a spec alone, or a tuple of specs
    trained as one stacked model (`trainlab.stacked`); the runs in the unit's order,
    without their models. The engines below hand out units, so workers and a Dask
    cluster take stacks as they take single runs."""
    if not isinstance(unit, tuple):
        return [train_remote(unit, max_threads)]
    from .stacked import fit_stacked
    return _without_models(fit_stacked(list(unit), max_threads=_threads(max_threads)))


def _dask_worker_share() -> int | None:
    """On a Dask worker, the cores of this machine divided among the worker's task slots."""
    try:
        from distributed import get_worker
        slots = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        return None
    return max(1, usable_cores() // max(1, slots))


def describe(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# --- scheduler addresses ---------------------------------------------------------------
SCHEME = ("tcp", "tls", "ucx", "ws", "wss")  # Dask's network protocols
SCHEDULER_FORMS = "a Dask scheduler address, host:port or tcp://host:port (or tls://, ucx://, ws://, wss://)"
_ADDRESS = re.compile(r"(?:(?P<scheme>[a-z]+)://)?(?P<host>\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):(?P<port>\d+)")


def check_scheduler(address: Any, field: str = "scheduler") -> Any:
    """`address` when it is a usable scheduler address (or an object such as a
    `distributed.Client`, which Dask checks itself); SpecError naming `field`
    otherwise. Checked before any work: Dask's own errors come only after the
    cached runs are read, as a traceback, or after a 20 s connect timeout."""
    if not isinstance(address, str):
        if isinstance(address, (int, float, bool, bytes)):
            raise SpecError(field, address, SCHEDULER_FORMS)
        return address
    match = _ADDRESS.fullmatch(address)
    if (match is None or match["scheme"] not in (None, *SCHEME)
            or not 1 <= int(match["port"]) <= 65535):
        raise SpecError(field, address, SCHEDULER_FORMS)
    return address


# --- local workers die with their parent ---------------------------------------------------
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PARENT_WATCH_SECONDS = 0.5


def _set_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where that is
    not available (other systems, no libc). SIGKILL, not SIGTERM: a worker holds
    nothing to clean up (it never writes the run cache, and the thread ledger skips
    dead pids), and a library's SIGTERM handler cannot keep it alive."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    """Exit this process once its parent is gone (it is then re-parented, so the
    parent pid changes). The fallback where prctl is absent."""
    while os.getppid() == parent:
        time.sleep(PARENT_WATCH_SECONDS)
    os._exit(1)  # no cleanup to run, and a busy main thread must not delay it


def _die_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when `parent` (the pool's process) dies.

    Never raises: an initializer that fails breaks the whole pool."""
    _set_parent_death_signal()
    if os.getppid() != parent:  # it died before the signal was set: nothing would send it
        os._exit(1)
    watch = threading.Thread(target=_watch_parent, args=(parent,), name="trainlab-parent-watch", daemon=True)
    try:
        watch.start()
    except RuntimeError:  # no thread to spare: the worker still trains, the prctl signal still holds
        return


def in_process(specs: Iterable[Spec], task: Callable[..., Run] = train_remote) -> Iterator[Outcome]:
    for spec in specs:
        try:
            yield spec, task(spec, None), None
        except Exception as e:  # one failed run must not lose the others
            yield spec, None, describe(e)


def local_workers(specs: Iterable[Spec], workers: int, task: Callable[..., Run] = train_remote) -> Iterator[Outcome]:
    """Train on `workers` spawned processes, at most `workers` runs in flight.

    When a worker dies, every run then in flight fails with BrokenProcessPool and
    the pool is rebuilt. Those runs are retried one at a time, so the run that
    killed its worker is found and reported, and the innocent ones finish.
    """
    share = worker_share(workers)
    queue, suspects = deque(specs), deque()
    inflight: dict[Any, tuple[Spec, bool]] = {}
    pool = None
    try:
        while queue or suspects or inflight:
            if pool is None:
                pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                           initializer=_die_with_parent, initargs=(os.getpid(),))
            limit = 1 if suspects else workers
            while len(inflight) < limit and (suspects or queue):
                alone = bool(suspects)
                spec = suspects.popleft() if alone else queue.popleft()
                inflight[pool.submit(task, spec, share)] = (spec, alone)
                if alone:
                    break
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                spec, alone = inflight.pop(future)
                try:
                    yield spec, future.result(), None
                except BrokenProcessPool:
                    broken = True
                    if alone:
                        yield spec, None, "worker died while training this run (it was retried alone and died again)"
                    else:
                        suspects.append(spec)
                except Exception as e:
                    yield spec, None, describe(e)
            if broken:
                # Every other run in flight went down with the pool: retry them too.
                for future, (spec, alone) in list(inflight.items()):
                    suspects.append(spec)
                inflight.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = None
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def on_dask(specs: Iterable[Spec], scheduler: Any, task: Callable[..., Run] = train_remote) -> Iterator[Outcome]:
    """Train on a Dask cluster: `scheduler` is its address ('tcp://host:8786') or a
    `distributed.Client`. Dask moves the task of a dead worker to another one and
    gives up with KilledWorker after a few deaths; that run is then reported."""
    from distributed import Client, as_completed
    own = not isinstance(scheduler, Client)
    client = Client(scheduler, timeout="20s") if own else scheduler
    try:
        futures = {client.submit(task, spec, None, pure=False): spec for spec in specs}
        for future in as_completed(futures):
            spec = futures[future]
            try:
                yield spec, future.result(), None
            except Exception as e:
                yield spec, None, describe(e)
            finally:
                future.release()
    finally:
        if own:
            client.close()
