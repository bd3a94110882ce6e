"""trainlab: the training harness shared by the trainlab notebooks.

>>> import trainlab
>>> spec = trainlab.Spec(dataset="mnist", depth=3, width=256, epochs=2)
>>> run = trainlab.fit(spec)              # doctest: +SKIP
>>> run.epochs                            # doctest: +SKIP

Names are imported on first use, so `import trainlab` (and the CLI's answer to a bad
flag) does not wait for torch to load.
"""
from __future__ import annotations

import importlib
from typing import Any

from .threads import configure_libraries

# Before torch loads MKL and OpenMP: reproducible matrix products at any thread
# count, and OpenMP threads that yield to a neighbour (see trainlab.threads).
configure_libraries()

__version__ = "0.1.0"

_EXPORTS = {
    "callbacks": ["Callback", "Clip", "EarlyStopping", "LivePlot", "Progress", "Schedule", "ShareCores"],
    "data": ["DataBundle", "DataError", "data_root", "fetch", "load_data"],
    "device": ["resolve_device", "seed_everything"],
    "gradcheck": ["gradient_check"],
    "lesson": ["Lesson", "start"],
    "losses": ["build_loss", "chance_value"],
    "models": ["build_model", "init_weights"],
    "optim": ["build_optimizer", "lr_at"],
    "probes": ["Probes", "activation_stats", "layer_stats"],
    "run": ["CorruptRunFile", "Run"],
    "range_test": ["RangeTest", "lr_find"],
    "spec": ["Spec", "SpecError", "grid"],
    "sweeps": ["Sweep", "SweepError", "run_cached", "sweep"],
    "threads": ["choose_threads"],
    "train": ["Learner", "evaluate", "fit"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)  # the submodules in _MODULES load on use too


# Modules a notebook reaches as `trainlab.plots`, `trainlab.measures`, ... after one `import trainlab`.
_MODULES = ("claims", "gradcheck", "losses", "measures", "plots", "profiles", "tables", "views", "widgets")


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'trainlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
