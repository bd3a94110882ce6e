"""A run on a shared CPU: alone, beside a second trainlab run, beside a plain torch job.

The same spec (the issue's `run --dataset mnist --batch-size 128 --epochs 2 --depth 2
--width 256`) is trained, in one go of this script, under two settings:

- `torch default`: what the harness did before it chose its threads: one thread per
  core, MKL's default mode;
- `trainlab auto`: the harness as it is (threads from the free cores and the other
  runs' claims, rebalanced every epoch).

and three situations: alone; two identical runs started together; one run beside a
plain torch process multiplying matrices on every core. It prints each time and its
ratio to the same setting alone, and the ratio of the two settings alone.

    .venv/bin/python benchmarks/shared_cpu.py            # about 2-4 minutes on 2 cores
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

RUN = [sys.executable, "-m", "trainlab", "run", "--dataset", "mnist", "--batch-size", "128",
       "--epochs", "2", "--depth", "2", "--width", "256", "--json"]
# A neighbour that knows nothing of trainlab: torch's defaults, all cores, forever.
TORCH_JOB = [sys.executable, "-c",
             "import torch\na = torch.randn(1024, 1024)\nwhile True:\n    a = (a @ a).tanh()"]
SETTINGS = {
    "torch default": {"TRAINLAB_THREADS": str(os.cpu_count() or 1), "MKL_CBWR": "AUTO"},
    "trainlab auto": {"TRAINLAB_THREADS": "auto"},
}
THREADS: list[int] = []  # what each run chose, in order
LIMIT = 150  # seconds; the torch default beside a torch job took 224 s when measured by hand


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TRAINLAB_THREADS", "GOMP_SPINCOUNT", "MKL_CBWR")}
    env.update(extra, TRAINLAB_PROGRESS="0")
    return env


def _finish(proc: subprocess.Popen, t0: float) -> float:
    """Training seconds of one run as it reports them (Python's and torch's import
    time left out, as in the issue's measurements); inf when it passed LIMIT."""
    try:
        out, err = proc.communicate(timeout=max(1.0, LIMIT - (time.perf_counter() - t0)))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return float("inf")
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}): {err.strip()}")
    summary = json.loads(out)
    THREADS.append(summary["threads"])
    return float(summary["seconds"])


def alone(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    return _finish(subprocess.Popen(RUN, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), t0)


def beside_trainlab(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    procs = [subprocess.Popen(RUN, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    return max(_finish(p, t0) for p in procs)


def beside_torch(env: dict[str, str]) -> float:
    job = subprocess.Popen(TORCH_JOB, env={k: v for k, v in os.environ.items() if not k.startswith(("OMP", "GOMP", "MKL"))})
    try:
        time.sleep(3)  # let it import torch and start multiplying
        return alone(env)
    finally:
        job.kill()
        job.wait()


def main() -> None:
    alone(_env(SETTINGS["trainlab auto"]))  # warm the file cache and the dataset cache
    times: dict[str, dict[str, float]] = {}
    for name, extra in SETTINGS.items():
        env = _env(extra)
        THREADS.clear()
        times[name] = {"alone": min(alone(env), alone(env)),
                       "beside trainlab": beside_trainlab(env),
                       "beside torch": beside_torch(env)}
        print(f"{name}: threads per run (alone x2, pair, beside torch): {THREADS}")
    print(f"{'setting':<15} {'situation':<16} {'seconds':>8} {'x alone':>8}")
    for name, row in times.items():
        for situation, seconds in row.items():
            shown = f">{LIMIT}" if seconds == float("inf") else f"{seconds:.1f}"
            print(f"{name:<15} {situation:<16} {shown:>8} {seconds / row['alone']:>8.2f}")
    print(f"ratio auto/default alone {times['trainlab auto']['alone'] / times['torch default']['alone']:.2f}")
    print(f"ratio auto beside trainlab / alone {times['trainlab auto']['beside trainlab'] / times['trainlab auto']['alone']:.2f}")


if __name__ == "__main__":
    main()
