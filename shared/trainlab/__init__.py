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
    "data": ["DataBundle", "DataError", "data_root", "fetch", "load_data", "probe_batch"],
    "device": ["model_device", "resolve_device", "seed_everything", "to_model"],
    "evaluation": ["evaluate", "outputs", "score"],
    "gradcheck": ["gradient_check"],
    "lesson": ["Lesson", "start"],
    "losses": ["build_loss", "chance_value"],
    "models": ["build_model", "fresh_model", "init_weights"],
    "optim": ["build_optimizer", "clip_gradients", "lr_at"],
    "probes": ["Probes", "activation_stats", "fresh_probe", "init_stats", "layer_stats"],
    "run": ["CorruptRunFile", "Run"],
    "spec": ["Spec", "SpecError", "grid"],
    "sweeps": ["Sweep", "SweepError", "run_cached", "sweep"],
    "threads": ["choose_threads"],
    "train": ["Learner", "fit"],
    "vitals": ["Vitals"],
    # Lesson names the README documents at the top level; loaded only when used.
    "lessons.doctor": ["Doctor", "Finding", "diagnose"],
    "lessons.learning_rate": ["RangeTest", "lr_find"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)  # the submodules in _MODULES load on use too


# Modules a notebook reaches as `trainlab.plots`, `trainlab.measures`, ... after one
# `import trainlab`; each lesson module by its own name too (`trainlab.search`).
_MODULES = ("claims", "data", "device", "evaluation", "faults", "gradcheck", "losses", "measures", "models",
            "plots", "probes", "profiles", "tables", "widgets", "lessons")
_LESSONS = ("sanity", "capacity", "loss_functions", "data_scaling", "weight_init", "activations", "batch_size",
            "learning_rate", "optimizers", "clipping", "normalization", "regularization", "transfer", "search",
            "doctor")


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LESSONS:
        return importlib.import_module(f".lessons.{name}", __name__)
    raise AttributeError(f"module 'trainlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_MODULES) | set(_LESSONS))
