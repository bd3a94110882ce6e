"""Capacity in nodes and layers: how well nets of many sizes fit their own training set.

A run's `final["train_acc"]` is the running accuracy over the last epoch's batches,
counted while the weights were still moving (and in training mode). Whether a net
*can* fit its training set is a question about the finished weights, so here the
training accuracy is measured again at the end, in eval mode, on the whole
training set (`train_accuracy`). `capacity_table` does that for a width x depth
sweep and adds the parameter count and the train-minus-validation gap;
`capacity_plot` draws it against the parameter count; `capacity_view` is the
Explore panel's view of one (width, depth) point; `random_label_run` trains on
labels shuffled among the training images (Zhang et al. 2017); `reference_spec`
trains on every other training image of the dataset and validates on the same
images as the sweep, for a reference error to judge training errors against
(avoidable bias, in A. Ng's terms).

>>> runs = capacity_runs(grid(spec, depth=[1, 3], width=[2, 32, 512]))   # doctest: +SKIP
>>> capacity_table(runs)[["depth", "width", "params", "train_acc", "val_acc"]]   # doctest: +SKIP
"""
from __future__ import annotations

import math
from typing import Iterable

import pandas as pd
from matplotlib.figure import Figure

from .. import plots
from ..data import DataBundle, load_data
from ..evaluation import evaluate
from ..measures import gap_in_se
from ..memory import parameter_count
from ..run import Run
from ..spec import TRAIN_SIZES, Spec, SpecError
from ..sweeps import run_cached

ACC_RANGE = (0.0, 1.02)   # accuracy axes, with room to see points at exactly 1
DEPTH_MARKERS = ("o", "s", "^", "D", "v", "P")
# The fields that decide which images a run trained and was validated on.
DATA_FIELDS = ("dataset", "subset", "val_fraction", "rare_class", "rare_keep", "scale", "target_scale", "seed")


def _data_key(spec: Spec) -> tuple:
    return tuple(getattr(spec, f) for f in DATA_FIELDS)


def train_accuracy(run: Run, data: DataBundle | None = None) -> float:
    """Accuracy of the run's finished model on its whole training set, in eval mode.

    The run needs its model (`run_cached(spec, model=True)` or `fit`); `data` reuses
    tensors already loaded for the run's spec. NaN when the model outputs NaN.

    >>> train_accuracy(run_cached(spec, model=True))   # doctest: +SKIP
    1.0
    """
    if run.model is None:
        raise ValueError("the run has no model: train it with run_cached(spec, model=True) or fit(spec)")
    data = data if data is not None else load_data(run.spec)
    return evaluate(run.model, data.train_x, data.train_y)[1]


def capacity_runs(specs: Iterable[Spec]) -> list[Run]:
    """Each spec trained (or loaded from the run cache) with its weights, in order."""
    return [run_cached(spec, model=True) for spec in specs]


def split_sizes(spec: Spec) -> tuple[int, int]:
    """(training images, validation images) of the spec's split (before any rare-class cut).

    >>> split_sizes(Spec(subset=4000, val_fraction=0.5))
    (2000, 2000)
    """
    pool = spec.subset or TRAIN_SIZES[spec.dataset]
    n_val = round(spec.val_fraction * pool)
    return pool - n_val, n_val


def capacity_table(runs: Iterable[Run]) -> pd.DataFrame:
    """One row per run: depth, width, parameter count, the training accuracy measured
    at the end in eval mode (`train_acc`), the last epoch's running average
    (`running_train_acc`), the validation accuracy, and the train-minus-validation gap
    in points and in standard errors (`gap_se`, from `measures.gap_in_se` with the
    smaller of the two set sizes, so it never overstates the gap)."""
    rows, loaded = [], {}
    for run in runs:
        key = _data_key(run.spec)
        if key not in loaded:
            loaded = {key: load_data(run.spec)}  # runs of one sweep share their data: keep one set
        train, val = train_accuracy(run, loaded[key]), run.final["val_acc"]
        rows.append({"depth": run.spec.depth, "width": run.spec.width, "params": parameter_count(run.spec),
                     "train_acc": train, "running_train_acc": run.final["train_acc"], "val_acc": val,
                     "gap": train - val, "gap_se": gap_in_se(train, val, min(split_sizes(run.spec)))})
    return pd.DataFrame(rows)


def capacity_plot(table: pd.DataFrame, title: str = "") -> Figure:
    """Training accuracy (eval mode, at the end) and validation accuracy against the
    parameter count on a log axis, one marker per depth; beside it the train-minus-
    validation gap in standard errors."""
    fig, (acc, gap) = plots.figure(ncols=2, width=4.8)
    for i, (depth, rows) in enumerate(table.sort_values("params").groupby("depth")):
        marker = DEPTH_MARKERS[i % len(DEPTH_MARKERS)]
        layers = f"{depth} hidden layer{'s' if depth != 1 else ''}"
        acc.plot(rows["params"], rows["train_acc"], marker=marker, color="C0", ls="-", label=f"train, {layers}")
        acc.plot(rows["params"], rows["val_acc"], marker=marker, color="C1", ls="--", label=f"validation, {layers}")
        gap.plot(rows["params"], rows["gap_se"], marker=marker, color="C2", ls="-", label=layers)
    acc.set(xscale="log", ylim=ACC_RANGE, xlabel="parameters (log scale)", ylabel="accuracy",
            title="accuracy at the end of training")
    gap.axhline(0, color="grey", lw=0.8)
    gap.set(xscale="log", xlabel="parameters (log scale)", ylabel="train - validation (standard errors)",
            title="the generalisation gap")
    for ax in (acc, gap):
        plots.legend_outside(ax)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def capacity_view(spec: Spec) -> Figure:
    """One (width, depth) point of the sweep: accuracy per epoch (the running
    training accuracy and the validation accuracy) with the final eval-mode training
    accuracy marked, and the training and validation loss per epoch."""
    run = run_cached(spec, model=True)
    train = train_accuracy(run)
    fig, (acc, loss) = plots.figure(ncols=2, width=4.6)
    epochs = run.epochs["epoch"]
    acc.plot(epochs, run.epochs["train_acc"], marker="o", ms=3, color="C0", label="train (running, per epoch)")
    acc.plot(epochs, run.epochs["val_acc"], marker="o", ms=3, color="C1", ls="--", label="validation")
    acc.plot([epochs.iloc[-1]], [train], marker="*", ms=12, color="C0", ls="none", label="train (eval, at the end)")
    acc.set(ylim=ACC_RANGE, xlabel="epoch", ylabel="accuracy", title="accuracy")
    loss.plot(epochs, run.epochs["train_loss"], marker="o", ms=3, color="C0", label="train (running)")
    loss.plot(epochs, run.epochs["val_loss"], marker="o", ms=3, color="C1", ls="--", label="validation")
    loss.set(yscale="log", ylim=(1e-5, 1e1), xlabel="epoch", ylabel="cross-entropy", title="loss (log scale)")
    for ax in (acc, loss):
        plots.whole_numbers_on_x(ax)
        plots.legend_outside(ax)
    fig.suptitle(f"depth {spec.depth} x width {spec.width}: {parameter_count(spec):,} parameters; "
                 f"train {train:.3f}, validation {run.final['val_acc']:.3f}")
    fig.tight_layout()
    return fig


def above_chance_in_se(accuracy: float, n: int, chance: float = 0.1) -> float:
    """How far an accuracy on `n` examples lies above `chance`, in standard errors of
    an accuracy at chance (chance is known, not measured, so only one side has noise).

    >>> round(above_chance_in_se(0.1, 500), 6), round(above_chance_in_se(0.16, 900), 1)
    (0.0, 6.0)
    """
    return (accuracy - chance) / math.sqrt(chance * (1 - chance) / max(n, 1))


def random_label_run(spec: Spec) -> tuple[Run, float]:
    """Train `spec` on its training images with shuffled labels (Zhang et al. 2017).

    Returns the run (its validation accuracy is against the true labels) and its
    final eval-mode accuracy on the shuffled training labels it was fitted to. The
    labels are shuffled by the spec field `fault="shuffled_labels"` (see
    `trainlab.faults`), so the run is cached like any other.
    """
    run = run_cached(spec.replace(fault="shuffled_labels"), model=True)
    return run, train_accuracy(run)


def reference_spec(spec: Spec, **fields) -> Spec:
    """A spec that validates on exactly the images `spec` validates on and trains on
    every other training image of the dataset (tens of times more than a small
    `spec.subset`): its validation error is a reference error, one a model of this
    kind reaches on those images without having seen them. `fields` change the
    rest (model, epochs, batch size); the split's own fields cannot be changed.

    Both splits take the first images of the same seeded order of the dataset as
    validation, so equal validation counts mean the same validation images.

    >>> ref = reference_spec(Spec(subset=2000, val_fraction=0.5), epochs=1)
    >>> split_sizes(ref), ref.epochs
    ((59000, 1000), 1)
    """
    fixed = {"subset", "val_fraction", "seed", "dataset", "rare_class", "classes", "train_labels"} & set(fields)
    if fixed:
        raise SpecError(sorted(fixed)[0], fields[sorted(fixed)[0]], "left as the spec has it: it decides the split")
    if spec.rare_class is not None or spec.classes is not None or spec.train_labels is not None:
        raise SpecError("rare_class/classes/train_labels", None, "unset: the reference uses whole classes")
    n_val = split_sizes(spec)[1]
    pool = TRAIN_SIZES[spec.dataset]
    ref = spec.replace(subset=None, val_fraction=n_val / pool, **fields)
    if split_sizes(ref)[1] != n_val:  # rounding of the fraction must give back the count
        raise SpecError("val_fraction", ref.val_fraction, f"a fraction that holds out exactly {n_val} images")
    return ref


__all__ = ["train_accuracy", "capacity_runs", "capacity_table", "capacity_plot", "capacity_view",
           "random_label_run", "split_sizes", "above_chance_in_se", "reference_spec"]
