"""Per-class recall, prediction confidence, calibration and the loss at
initialisation: the numbers behind notebook 02 (loss functions), and its Explore view.

A run of a classification spec reports `run.final["val_recall_<c>"]`, the fraction
of class c's validation images it labels correctly. The functions here put those
side by side for several runs (a table, grouped bars), summarise what a change cost
the other classes, and measure two things a loss leaves in a trained network: how
sure its predictions are (the mean largest softmax probability) and how large its
logits have grown; and whether that sureness can be trusted: a reliability table
(accuracy against mean confidence in equal-width confidence bins), its expected
calibration error and its diagram.

>>> recall_table({"plain": run_a, "weighted": run_b})          # doctest: +SKIP
>>> recall_bars({"plain": run_a, "weighted": run_b}, rare=1)    # doctest: +SKIP
>>> fig = recall_view(Spec(rare_class=1, rare_keep=0.02, class_weights="balanced"))  # doctest: +SKIP
>>> expected_calibration_error(probabilities(model, data.val_x), data.val_y)  # doctest: +SKIP
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from .. import plots
from ..data import load_data
from ..evaluation import outputs
from ..evaluation import probabilities as evaluation_probabilities
from ..losses import chance_value, cross_entropy, one_hot_mse
from ..models import fresh_model
from ..spec import Spec
from ..sweeps import run_cached


def recalls(run: Any) -> list[float]:
    """The validation recall of every class of a run, in class order.

    >>> class R: final = {"val_recall_1": 0.5, "val_recall_0": 1.0, "val_acc": 0.75}
    >>> recalls(R())
    [1.0, 0.5]
    """
    keys = sorted((k for k in run.final if k.startswith("val_recall_")), key=lambda k: int(k.rsplit("_", 1)[1]))
    if not keys:
        raise ValueError("the run has no val_recall_<c> entries: per-class recall is reported for "
                         "classification runs only")
    return [float(run.final[k]) for k in keys]


def recall_table(runs: Mapping[str, Any]) -> pd.DataFrame:
    """One row per class, one column per run: the validation recall of each class."""
    if not runs:
        raise ValueError("runs: give at least one run, as {label: run}")
    table = pd.DataFrame({label: recalls(run) for label, run in runs.items()})
    table.insert(0, "class", range(len(table)))
    return table


def others_recall(run: Any, rare: int) -> float:
    """The mean validation recall of every class except `rare`: what the other classes
    got while one class was helped (or hurt).

    >>> class R: final = {"val_recall_0": 0.2, "val_recall_1": 0.9, "val_recall_2": 0.7}
    >>> round(others_recall(R(), 0), 3)
    0.8
    """
    values = recalls(run)
    if not 0 <= rare < len(values):
        raise ValueError(f"rare: {rare!r} is not a class of this run; expected 0 to {len(values) - 1}")
    return float(np.mean([v for c, v in enumerate(values) if c != rare]))


def false_alarms(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, cls: int) -> float:
    """The fraction of the images of every other class that the model labels `cls`:
    what helping one class costs the rest (the rare class's false positives).

    >>> false_alarms(model, data.val_x, data.val_y, 3)   # doctest: +SKIP
    0.012
    """
    others = y != cls
    if not bool(others.any()):
        raise ValueError(f"cls: {cls!r} is the only class in y; there are no other images to mislabel")
    predicted = logits_of(model, x[others]).argmax(1)
    return float((predicted == cls).float().mean())


def recall_bars(runs: Mapping[str, Any], rare: int | None = None, ax=None, title: str | None = None) -> Figure:
    """Grouped bars of per-class validation recall, one colour per run, on a fixed
    0..1 axis; the `rare` class is marked on the x axis."""
    table = recall_table(runs)
    if ax is None:
        fig, (ax,) = plots.figure(width=7.5, height=3.4)
    else:
        fig = ax.figure
    labels = [c for c in table.columns if c != "class"]
    width = 0.8 / len(labels)
    x = np.arange(len(table))
    for i, label in enumerate(labels):
        ax.bar(x + (i - (len(labels) - 1) / 2) * width, table[label], width, label=label)
    ax.set_xticks(x, [f"{c}\n(rare)" if c == rare else str(c) for c in table["class"]])
    ax.set_ylim(0, 1.3)   # room above the bars for the legend
    ax.set_xlabel("class")
    ax.set_ylabel("validation recall")
    if rare is not None:
        ax.axvspan(rare - 0.45, rare + 0.45, color="0.9", zorder=0)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.legend(loc="upper center", ncol=len(labels), fontsize=8, frameon=False)
    ax.set_title(title or "recall of each class on the (balanced) validation set")
    return fig


def recall_view(spec: Spec) -> Figure:
    """The Explore view: per-class recall of the spec's run (trained on its own,
    possibly imbalanced, training set), next to the same loss and weighting trained on
    the full, balanced training set when a class was cut. Runs come from the run cache."""
    if spec.task != "classification":
        raise ValueError(f"recall_view needs a classification dataset, not {spec.dataset!r}")
    run = run_cached(spec)
    weights = "balanced weights" if spec.class_weights == "balanced" else "no weights"
    if spec.rare_class is None or spec.rare_keep == 1.0:   # nothing was cut: one run says it all
        runs = {f"{spec.loss_name}, {weights}, full training set": run}
    else:
        reference = run_cached(spec.replace(rare_class=None, rare_keep=1.0))
        runs = {f"class {spec.rare_class} cut to {spec.rare_keep:.0%}": run, "full training set": reference}
    fig = recall_bars(runs, rare=spec.rare_class,
                      title=f"{spec.loss_name}, {weights}: val acc {run.final['val_acc']:.3f}")
    fig.tight_layout()
    return fig


@torch.no_grad()
def logits_of(model: torch.nn.Module, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """The model's outputs on x, in eval mode, as float32 (on the model's device)."""
    return outputs(model, x, chunk)


def confidence(model: torch.nn.Module, x: torch.Tensor) -> float:
    """The mean, over the examples, of the largest softmax probability: 1/C for a
    uniform guess, 1 for a network sure of every answer (right or wrong)."""
    return float(logits_of(model, x).softmax(1).max(1).values.mean())


def logit_gap(model: torch.nn.Module, x: torch.Tensor) -> float:
    """The mean gap between the largest logit and the mean of the others. Softmax only
    sees differences between logits, so this is the part of their size that matters;
    it grows without bound when a loss keeps rewarding certainty."""
    z = logits_of(model, x)
    top = z.max(1).values
    rest = (z.sum(1) - top) / (z.shape[1] - 1)
    return float((top - rest).mean())


def loss_at_init(spec: Spec, losses: Sequence[str] = ("cross_entropy", "mse")) -> pd.DataFrame:
    """The loss of the spec's freshly initialised network on its validation images,
    for each loss name, next to the value a uniform guess would score (`chance_value`)
    and the loss's possible range."""
    if spec.task != "classification":
        raise ValueError(f"loss_at_init needs a classification dataset, not {spec.dataset!r}")
    data = load_data(spec)
    z = logits_of(fresh_model(spec), data.val_x)
    functions = {"cross_entropy": cross_entropy(), "mse": one_hot_mse()}
    rows = []
    for name in losses:
        if name not in functions:
            raise ValueError(f"losses: {name!r} is not allowed; expected 'cross_entropy' or 'mse'")
        value = float(functions[name](z, data.val_y))
        rows.append({"loss": name, "at init": value, "chance value": chance_value(name, data.num_classes),
                     "range": "0 .. inf" if name == "cross_entropy" else "0 .. 2"})
    return pd.DataFrame(rows)


def chance_ratio(value: float, loss: str, num_classes: int) -> float:
    """A loss value over the chance value of that loss: 1 at chance, < 1 better.

    >>> chance_ratio(0.45, "mse", 10)
    0.5
    """
    return value / chance_value(loss, num_classes)


def probabilities(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's softmax probabilities on x, in eval mode, as a float32 CPU tensor (n, C)."""
    return evaluation_probabilities(model, x).cpu()


def reliability(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> pd.DataFrame:
    """The data of a reliability diagram: the predictions (argmax of `probs`, shape
    (n, C)) grouped by their confidence (the largest probability) into `bins` bins of
    equal width, (0, 1/bins], (1/bins, 2/bins], ... Per bin: its edges, how many
    predictions fell in it, their mean confidence and the fraction of them that are
    right (NaN for an empty bin). A calibrated model's accuracy equals its confidence
    in every bin.

    >>> probs = torch.tensor([[0.95, 0.05], [0.9, 0.1], [0.3, 0.7], [0.45, 0.55]])
    >>> table = reliability(probs, torch.tensor([0, 1, 1, 0]), bins=2)
    >>> table[["count", "confidence", "accuracy"]].round(3).values.tolist()
    [[0.0, nan, nan], [4.0, 0.775, 0.5]]
    """
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"probs: expected shape (n, C) with n = len(labels) = {len(labels)}, "
                         f"got {tuple(probs.shape)}")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins: {bins!r} is not allowed; expected a whole number >= 1")
    probs, labels = probs.detach().cpu().double(), labels.detach().cpu()
    conf, predicted = probs.max(1)
    right = (predicted == labels).double().cpu().numpy()
    conf = conf.cpu().numpy()
    edges = np.linspace(0.0, 1.0, bins + 1)
    # side="left" puts a confidence equal to an inner edge in the bin below it: bins are (lo, hi].
    which = np.searchsorted(edges[1:-1], conf, side="left")
    rows = []
    for b in range(bins):
        members = which == b
        n = int(members.sum())
        rows.append({"low": edges[b], "high": edges[b + 1], "count": float(n),
                     "confidence": float(conf[members].mean()) if n else math.nan,
                     "accuracy": float(right[members].mean()) if n else math.nan})
    return pd.DataFrame(rows)


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> float:
    """Expected calibration error (Guo et al. 2017): the gap |accuracy - mean
    confidence| of each equal-width confidence bin of `reliability`, averaged over the
    bins weighted by how many predictions each holds. 0 for a calibrated model; at most 1.

    >>> probs = torch.tensor([[0.95, 0.05], [0.9, 0.1], [0.3, 0.7], [0.45, 0.55]])
    >>> round(expected_calibration_error(probs, torch.tensor([0, 1, 1, 0]), bins=2), 3)
    0.275
    """
    table = reliability(probs, labels, bins)
    full = table[table["count"] > 0]
    if full.empty:
        raise ValueError("labels: no predictions to judge; give at least one example")
    return float((full["count"] * (full["accuracy"] - full["confidence"]).abs()).sum() / full["count"].sum())


def confidence_gap(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy minus mean confidence (the largest probability) over all predictions:
    > 0 for an under-confident model, < 0 for an over-confident one.

    >>> round(confidence_gap(torch.tensor([[0.6, 0.4], [0.8, 0.2]]), torch.tensor([0, 0])), 3)
    0.3
    """
    if len(probs) == 0 or len(probs) != len(labels):
        raise ValueError(f"probs: expected (n, C) with n = len(labels) = {len(labels)} > 0, got {tuple(probs.shape)}")
    probs, labels = probs.detach().cpu(), labels.detach().cpu()
    conf, predicted = probs.max(1)
    return float((predicted == labels).double().mean() - conf.double().mean())


def reliability_diagram(tables: Mapping[str, pd.DataFrame], ax=None, title: str | None = None) -> Figure:
    """Accuracy against mean confidence, one line of markers per table of
    `reliability` (empty bins left out), with the diagonal a calibrated model would
    follow: points above it are under-confident, below it over-confident."""
    if not tables:
        raise ValueError("tables: give at least one reliability table, as {label: table}")
    if ax is None:
        fig, (ax,) = plots.figure(width=4.6, height=4.2)
    else:
        fig = ax.figure
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="calibrated")
    for (label, table), style in zip(tables.items(), plots.LINESTYLES * len(tables)):
        full = table[table["count"] > 0]
        ax.plot(full["confidence"], full["accuracy"], marker="o", ls=style, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean confidence in the bin (top probability)")
    ax.set_ylabel("accuracy in the bin")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.set_title(title or "reliability diagram")
    return fig
