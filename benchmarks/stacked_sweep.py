"""A 16-spec LR x seed grid of the quick profile's MLPs (one hidden layer of 32 units,
two of 128): one spec at a time, against one stacked model per MLP
(`sweep(..., stacked=True)`, trainlab.stacked), in one go of this script, with the run
cache off.

Prints each time, the stacked sweep's ratio to the sequential one (issue target: at
most 0.5 on a 2-core CPU; on a GPU, at most 2x the time of one spec alone, printed
as `stacked / one spec`), and the largest difference between the two paths' final
validation accuracies (float32: rounding only).

    .venv/bin/python benchmarks/stacked_sweep.py      # a few minutes on 2 cores
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TRAINLAB_PROGRESS", "0")

import trainlab  # noqa: E402  (sets the thread libraries' environment before torch loads)
from trainlab import Spec, grid, sweep  # noqa: E402

# The quick profile's data (15,000 images, a fifth held out) and notebook-sized MLPs.
QUICK = Spec(subset=15000, val_fraction=0.2, batch_size=128, optimizer="sgd", momentum=0.9, schedule="cosine")
MLPS = {"1 x 32": dict(depth=1, width=32), "2 x 128": dict(depth=2, width=128)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    trainlab.data.raw_tensors("mnist")  # the dataset cache is warm for both
    for name, size in MLPS.items():
        specs = grid(QUICK.replace(epochs=args.epochs, **size), lr=[0.003, 0.01, 0.03, 0.1], seed=range(4))
        t0 = time.perf_counter()
        one = sweep(specs[:1], cache=False).runs
        single = time.perf_counter() - t0
        t0 = time.perf_counter()
        sequential = sweep(specs, cache=False).runs
        seq = time.perf_counter() - t0
        t0 = time.perf_counter()
        stacked = sweep(specs, cache=False, stacked=True)
        stack = time.perf_counter() - t0
        worst = max(abs(a.final["val_acc"] - b.final["val_acc"]) for a, b in zip(sequential, stacked.runs))
        print(f"MLP {name}: {len(specs)} specs (lr x seed), {args.epochs} epochs, {QUICK.subset} images, "
              f"device {one[0].device}, {os.cpu_count()} cores; stacked: {int(stacked.table['stacked'].sum())} "
              f"of {len(specs)}")
        print(f"  one spec          {single:6.1f} s")
        print(f"  sequential        {seq:6.1f} s  ratio 1.00")
        print(f"  stacked           {stack:6.1f} s  ratio {stack / seq:.2f}  stacked / one spec "
              f"{stack / single:.2f}  largest val acc difference {worst:.2g}")


if __name__ == "__main__":
    main()
