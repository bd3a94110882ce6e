"""A sweep of 8 small specs: in this process, on 2 local workers, on a local Dask cluster.

All three are timed in one go of this script, with the run cache off, and their
histories are compared (they must be identical on the CPU). Prints each time, its
ratio to the sequential sweep, and whether the numbers matched.

    .venv/bin/python benchmarks/sweep_parallel.py        # about 1-2 minutes on 2 cores
"""
from __future__ import annotations

import os
import time

os.environ.setdefault("TRAINLAB_PROGRESS", "0")

import trainlab  # noqa: E402  (sets the thread libraries' environment before torch loads)
from trainlab import Spec, grid, sweep  # noqa: E402

SPECS = grid(Spec(subset=20000, epochs=2, depth=2, width=256, batch_size=64), seed=range(8))


def timed(**how) -> tuple[float, list]:
    t0 = time.perf_counter()
    runs = sweep(SPECS, cache=False, **how).runs
    return time.perf_counter() - t0, runs


def same(a: list, b: list) -> bool:
    return all(x.steps.equals(y.steps) and x.final == y.final for x, y in zip(a, b, strict=True))


def main() -> None:
    from distributed import Client, LocalCluster
    trainlab.data.raw_tensors("mnist")  # the dataset cache is warm for everyone
    sequential, base = timed()
    local, local_runs = timed(workers=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.run(lambda: __import__("trainlab.data").data.raw_tensors("mnist"))  # workers start warm
        on_dask, dask_runs = timed(scheduler=client)
    print(f"{len(SPECS)} runs, {os.cpu_count()} cores")
    print(f"sequential        {sequential:6.1f} s  ratio 1.00")
    print(f"workers=2         {local:6.1f} s  ratio {local / sequential:.2f}  same numbers: {same(base, local_runs)}")
    print(f"Dask, 2 workers   {on_dask:6.1f} s  ratio {on_dask / sequential:.2f}  same numbers: {same(base, dask_runs)}")


if __name__ == "__main__":
    main()
