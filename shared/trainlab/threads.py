"""How many CPU threads a run uses, chosen from the cores that are actually free.

torch starts one intra-op thread per core and its OpenMP threads spin while they
wait. Beside any other busy process (a second run, a notebook, a sweep worker, a
plain torch job) those spinning threads fight for the same cores and a run can take
10-100x longer than alone. So the harness picks the thread count per run:

- `TRAINLAB_THREADS=<n>`: exactly n threads for every run.
- `TRAINLAB_THREADS=auto` (the default): the cores this process may use, less the
  cores other processes kept busy over the last ~0.1 s, at least 1; capped by
  `OMP_NUM_THREADS` when that is set. Alone on a 2-core machine a run gets 2
  threads; beside another busy process it gets 1.

The thread count can change the last bits of a run's numbers, so it is recorded in
`run.extra["threads"]`. Two things keep that rare: matrix products use MKL's strict
reproducible mode (`MKL_CBWR=AUTO,STRICT`, set when trainlab is imported), and the
data statistics are exact sums. Intel documents strict mode as making its products
independent of the thread count on Intel CPUs; on the AMD CPU this was measured on,
3 of 150 small product shapes (a 10 x 16 output summed over 64-784 terms) still
round differently, and convolutions (oneDNN) do too. For bit-identical runs across machines, processes
and sweep engines, fix the count: `TRAINLAB_THREADS=1`.

>>> with run_threads() as n:   # doctest: +SKIP
...     print(f"training on {n} threads")
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Iterator

from .spec import SpecError

SAMPLE_SECONDS = 0.1
# A core counts as busy when other processes used more than this share of it.
BUSY_SHARE = 0.5


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. a container's quota)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) clock ticks of the whole machine since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            parts = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)  # idle + iowait
    return sum(parts) - idle, sum(parts)


def _own_ticks() -> int | None:
    """User + system clock ticks this process has used (all its threads)."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None


def busy_elsewhere(seconds: float = SAMPLE_SECONDS) -> float:
    """How many cores other processes kept busy over the next `seconds`.

    Our own threads are subtracted, so a kernel whose torch threads are still
    spinning after its previous run does not count against itself. Without /proc
    (macOS) the 1-minute load average stands in.
    """
    before, own_before = _cpu_ticks(), _own_ticks()
    if before is None or own_before is None:
        try:
            return max(0.0, os.getloadavg()[0])
        except OSError:
            return 0.0
    time.sleep(seconds)
    after, own_after = _cpu_ticks(), _own_ticks()
    busy, total = after[0] - before[0], after[1] - before[1]
    if total <= 0:
        return 0.0
    cores = os.cpu_count() or 1
    return max(0.0, (busy - (own_after - own_before)) / total * cores)


def _setting() -> int | None:
    """TRAINLAB_THREADS as a number, or None for auto; a bad value is a clear error."""
    text = os.environ.get("TRAINLAB_THREADS", "auto").strip().lower()
    if text in ("", "auto"):
        return None
    if not text.isdigit() or int(text) < 1:
        raise SpecError("TRAINLAB_THREADS", text, "'auto' or a whole number >= 1")
    return int(text)


def choose_threads(limit: int | None = None) -> int:
    """The thread count for the next run: TRAINLAB_THREADS, or the free cores.

    `limit` caps it (a sweep worker passes its share of the cores).

    >>> 1 <= choose_threads() <= usable_cores()
    True
    """
    fixed = _setting()
    if fixed is not None:
        return fixed
    cores = usable_cores()
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        cores = min(cores, int(omp))
    if limit is not None:
        cores = min(cores, max(1, limit))
    if cores == 1:
        return 1
    busy = int(busy_elsewhere() + (1 - BUSY_SHARE))  # round a half-busy core up
    return max(1, min(cores, usable_cores() - busy))


@contextmanager
def run_threads(limit: int | None = None) -> Iterator[int]:
    """Use `choose_threads(limit)` torch threads inside the block, then restore the
    process's previous setting (a notebook's own torch work is left as it was)."""
    import torch
    previous = torch.get_num_threads()
    n = choose_threads(limit)
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(previous)


def worker_share(workers: int) -> int:
    """Threads for each of `workers` processes on this machine, so together they
    use every core once."""
    return max(1, usable_cores() // max(1, workers))


def configure_libraries() -> None:
    """Environment defaults that must be in place before torch loads its libraries.

    - `MKL_CBWR=AUTO,STRICT`: MKL's matrix products give the same bits whatever the
      thread count, so a run's numbers do not depend on how busy the machine was.
    - `GOMP_SPINCOUNT`: OpenMP threads spin ~1000 iterations, not ~300,000, before
      they sleep, so a thread preempted by a neighbour does not stall the others at
      every barrier (measured: two runs side by side 17.6 s each with the default,
      5.3 s with this; alone 2.2-2.5 s either way).
    A user's own settings win.
    """
    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")
