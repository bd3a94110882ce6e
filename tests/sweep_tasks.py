"""Stand-in training tasks for the worker tests: importable by spawned workers
(the tests put this folder on their PYTHONPATH), and instant."""
from __future__ import annotations

import os


def echo_or_fail(spec, max_threads):
    """seed 1 raises, seed 2 kills its worker, others return the seed and thread share."""
    if spec.seed == 1:
        raise ValueError("bad luck on seed 1")
    if spec.seed == 2:
        os._exit(3)
    return (spec.seed, max_threads)
