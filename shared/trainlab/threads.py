"""How many CPU threads a run uses, chosen from the cores that are actually free.

torch starts one intra-op thread per core and its OpenMP threads spin while they
wait. Beside any other busy process (a second run, a notebook, a sweep worker, a
plain torch job) those spinning threads fight for the same cores and a run can take
10-100x longer than alone. So the harness picks the thread count per run:

- `TRAINLAB_THREADS=<n>`: exactly n threads for every run.
- `TRAINLAB_THREADS=auto` (the default): the cores this process may use, less the
  cores other processes kept busy (over the last ~0.1 s, or, for back-to-back
  runs, since the previous run started when that was under 5 s ago) and those other trainlab
  runs hold, at least 1; capped by `OMP_NUM_THREADS` when that is set. Alone on a
  2-core machine a run gets 2 threads; beside another busy process it gets 1.
  Runs record what they hold in a small ledger in the temp folder, so two runs
  started together do not both take every core, and every few steps a run gives
  cores back to a newcomer or takes back (up to what was free when it started)
  the ones a finished neighbour left.

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

import json
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows: runs do not see each other's claims
    fcntl = None

from .spec import SpecError
from .storage import atomic_write

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


def _snapshot() -> tuple[float, tuple[int, int], int] | None:
    """(monotonic time, machine ticks, own ticks), or None without /proc."""
    machine, own = _cpu_ticks(), _own_ticks()
    return None if machine is None or own is None else (time.monotonic(), machine, own)


def _busy_between(before: tuple[float, tuple[int, int], int], after: tuple[float, tuple[int, int], int]) -> float:
    busy, total = after[1][0] - before[1][0], after[1][1] - before[1][1]
    if total <= 0:
        return 0.0
    cores = os.cpu_count() or 1
    return max(0.0, (busy - (after[2] - before[2])) / total * cores)


def busy_elsewhere(seconds: float = SAMPLE_SECONDS) -> float:
    """How many cores other processes kept busy over the next `seconds`.

    Our own threads are subtracted, so a kernel whose torch threads are still
    spinning after its previous run does not count against itself. Without /proc
    (macOS) the 1-minute load average stands in.
    """
    before = _snapshot()
    if before is None:
        try:
            return max(0.0, os.getloadavg()[0])
        except OSError:
            return 0.0
    time.sleep(seconds)
    return _busy_between(before, _snapshot())


# Back-to-back runs in one process (a search of hundreds of one-epoch runs) spent
# more time in busy_elsewhere's sleep than in training. The window since this
# process last chose, when it is between SAMPLE_SECONDS and REUSE_SECONDS long,
# measures the same thing (others' load while our previous run trained) for free.
# A window shorter than SAMPLE_SECONDS is too coarse for /proc's 10 ms ticks: runs
# that fast reuse the last measurement until the window is long enough.
REUSE_SECONDS = 5.0
_mark: tuple[float, tuple[int, int], int] | None = None
_last_busy = 0.0


def recent_busy() -> float:
    """Cores other processes kept busy: over the window since this process last
    measured, when that was under REUSE_SECONDS ago (under SAMPLE_SECONDS: the last
    measurement again), else `busy_elsewhere()`."""
    global _mark, _last_busy
    now = _snapshot()
    age = None if now is None or _mark is None else now[0] - _mark[0]
    if age is not None and age < SAMPLE_SECONDS:
        return _last_busy
    if age is not None and age <= REUSE_SECONDS:
        _last_busy, _mark = _busy_between(_mark, now), now
        return _last_busy
    _last_busy = busy_elsewhere()
    _mark = _snapshot()
    return _last_busy


def _setting() -> int | None:
    """TRAINLAB_THREADS as a number, or None for auto; a bad value is a clear error."""
    text = os.environ.get("TRAINLAB_THREADS", "auto").strip().lower()
    if text in ("", "auto"):
        return None
    if not text.isdigit() or int(text) < 1:
        raise SpecError("TRAINLAB_THREADS", text, "'auto' or a whole number >= 1")
    return int(text)


def _cap(limit: int | None) -> int:
    """The most threads a run may have: usable cores, OMP_NUM_THREADS, `limit`."""
    cores = usable_cores()
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        cores = min(cores, int(omp))
    if limit is not None:
        cores = min(cores, max(1, limit))
    return cores


def choose_threads(limit: int | None = None) -> int:
    """The thread count a run would start with now: TRAINLAB_THREADS, or the free cores.

    `limit` caps it (a sweep worker passes its share of the cores).

    >>> 1 <= choose_threads() <= usable_cores()
    True
    """
    fixed = _setting()
    if fixed is not None:
        return fixed
    cores = _cap(limit)
    if cores == 1:
        return 1
    taken = int(recent_busy() + (1 - BUSY_SHARE))  # round a half-busy core up
    return max(1, min(cores, usable_cores() - taken))


def _ledger_path() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"trainlab-threads-{uid}.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


@contextmanager
def _ledger() -> Iterator[dict[str, int]]:
    """The threads live trainlab runs on this machine hold, by pid, read and written
    back under a file lock (entries of processes that died are dropped)."""
    path = _ledger_path()
    with open(path.with_suffix(".lock"), "a+") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            try:
                claims = {pid: int(n) for pid, n in json.loads(path.read_text()).items() if _alive(int(pid))}
            except (OSError, ValueError, AttributeError):
                claims = {}
            before = dict(claims)
            yield claims
            if claims != before:  # a rebalance that changes nothing writes nothing
                atomic_write(path, lambda f: f.write(json.dumps(claims).encode()), durable=False)
        finally:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_UN)


class ThreadClaim:
    """This process's share of the cores while a run trains, kept in the ledger.

    Two runs started together both measure an idle machine; the ledger shows the
    later one the cores the earlier one took, and `rebalance()` (every few steps)
    gives cores back to a newcomer and takes back what a finished neighbour left.
    With TRAINLAB_THREADS set, the count is fixed and the ledger is not used.
    """

    def __init__(self, limit: int | None = None):
        self.limit, self.pid = limit, str(os.getpid())
        self.fixed = _setting() is not None
        # What the machine could spare when the run started: the ledger only shows
        # trainlab runs, so a run never grows past this on the ledger's word alone.
        self.measured = choose_threads(limit)
        self.threads = self.measured
        if not self.fixed:
            self._update(self.measured)

    def _update(self, wanted: int) -> None:
        try:
            with _ledger() as claims:
                others = sum(n for pid, n in claims.items() if pid != self.pid)
                self.threads = max(1, min(wanted, _cap(self.limit) - others))
                claims[self.pid] = self.threads
        except OSError:  # no writable temp folder: keep the measured choice
            pass

    def rebalance(self) -> int:
        """The share the ledger allows now, up to what was free at the start (no
        sampling: a locked read of a small file, cheap enough every few steps)."""
        if not self.fixed:
            self._update(self.measured)
        return self.threads

    def release(self) -> None:
        if not self.fixed:
            try:
                with _ledger() as claims:
                    claims.pop(self.pid, None)
            except OSError:
                pass


@contextmanager
def run_threads(limit: int | None = None) -> Iterator[ThreadClaim]:
    """Hold a share of the cores for one run; torch's thread count follows the claim
    inside the block and comes back to the process's own setting after it."""
    import torch
    previous = torch.get_num_threads()
    claim = ThreadClaim(limit)
    torch.set_num_threads(claim.threads)
    try:
        yield claim
    finally:
        claim.release()
        torch.set_num_threads(previous)


def worker_share(workers: int) -> int:
    """Threads for each of `workers` processes on this machine, so together they
    use every core once."""
    return max(1, usable_cores() // max(1, workers))


def configure_libraries() -> None:
    """Environment defaults that must be in place before torch loads its libraries.

    `MKL_CBWR=AUTO,STRICT`: MKL's matrix products round the same whatever the thread
    count (the module docstring says where that falls short). A user's own setting
    wins.
    """
    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
