"""Regularisation: the train/validation gap of trained runs, and the Explore panel of notebook 11.

A network that can memorise its training set ends with a training loss near zero
and a validation loss well above it. The gap is measured here on the finished
model in eval mode, on every training image: the running training accuracy a run
logs per epoch is taken with dropout and augmentation switched on, so it
understates how well a regularised network fits the images it trained on.

>>> runs = {"none": run_cached(spec, model=True), "dropout 0.5": run_cached(spec.replace(dropout=0.5), model=True)}  # doctest: +SKIP
>>> gap_table(runs)[["run", "loss_gap", "acc_gap"]]                                                                   # doctest: +SKIP
>>> fig = regularization_view(spec.replace(weight_decay=5e-3))                                                       # doctest: +SKIP

How strong? `strength_sweep` trains each regulariser at several strengths, and
`middle_advantage` says whether a middle strength beats both ends:

>>> table = strength_sweep(spec)                         # doctest: +SKIP
>>> middle_advantage(table, "weight_decay")              # doctest: +SKIP

Also here: ensembles of trained models, which average their predicted probabilities.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from .. import plots
from ..callbacks import epochs_before_stop  # noqa: F401  (notebook 11 imports it from here)
from ..data import load_data
from ..evaluation import probabilities, score
from ..run import Run
from ..spec import Spec, SpecError
from ..sweeps import run_cached

ACC_RANGE = (0.0, 1.02)
LOSS_RANGE = (1e-4, 10.0)


def clean_fit(run: Run) -> dict:
    """Loss and accuracy of the run's trained model (eval mode: no dropout, no
    augmentation) on its training, validation and test sets, and the gaps
    val - train (loss) and train - val (accuracy). Needs `run.model`
    (`run_cached(spec, model=True)` or `fit`)."""
    if run.model is None:
        raise ValueError("run.model is None: load the run with run_cached(spec, model=True) to measure its fit")
    return score(run.model, load_data(run.spec))


def gap_table(runs: Mapping[str, Run]) -> pd.DataFrame:
    """One row per run (named by its key): `clean_fit` of its trained model."""
    return pd.DataFrame([{"run": name, **clean_fit(run)} for name, run in runs.items()])


def _setting(spec: Spec) -> str:
    parts = [f"dropout {spec.dropout:g}" if spec.dropout else "",
             f"weight decay {spec.weight_decay:g}" if spec.weight_decay else "",
             f"L1 {spec.l1:g}" if spec.l1 else "",
             f"augment {spec.augment:g}" if spec.augment else ""]
    return ", ".join(p for p in parts if p) or "no regularisation"


def regularization_view(spec: Spec) -> Figure:
    """The spec's run (cached): training and validation accuracy per epoch (left)
    and loss per epoch on a log scale (right), on fixed axes so a slider move shows
    as a move of the curves. The training curves are the running values logged
    while training, with dropout and augmentation on."""
    if spec.task != "classification":
        raise SpecError("dataset", spec.dataset, "an image set ('mnist' or 'fashion_mnist') for the gap panel")
    run = run_cached(spec)
    fig, axes = plots.figure(ncols=2, width=4.6)
    epochs = run.epochs["epoch"]
    for ax, metric, logy, ylim in ((axes[0], "acc", False, ACC_RANGE), (axes[1], "loss", True, LOSS_RANGE)):
        ax.plot(epochs, run.epochs[f"train_{metric}"], "-", color="tab:blue", label="train (as trained)")
        ax.plot(epochs, run.epochs[f"val_{metric}"], "--", color="tab:orange", label="validation")
        if logy:
            ax.set_yscale("log")
        ax.set(xlabel="epoch", ylabel=metric.replace("acc", "accuracy"), ylim=ylim, xlim=(0.5, spec.epochs + 0.5))
        plots.whole_numbers_on_x(ax)
        if run.diverged:
            plots.mark_diverged(ax, float(epochs.iloc[-1]))
    axes[0].set_title("accuracy")
    axes[1].set_title("loss (log scale)")
    axes[0].legend(fontsize=8, loc="lower right")
    last = run.epochs.iloc[-1]
    fig.suptitle(f"{_setting(spec)}: final train acc {last['train_acc']:.3f}, val acc {last['val_acc']:.3f}, "
                 f"val loss {last['val_loss']:.2f}", fontsize=10)
    fig.tight_layout()
    return fig


# --- How strong: too little, right, too much -----------------------------------------------

# Each regulariser from off (0) to a strength that plainly costs fit; the ends are the
# "too little" and "too much" of the notebook, everything between is a candidate "right".
STRENGTHS: dict[str, tuple[float, ...]] = {
    "weight_decay": (0.0, 0.005, 0.02, 0.1),
    "dropout": (0.0, 0.1, 0.3, 0.5, 0.7),
    "augment": (0.0, 0.5, 1.0),
}


def strength_sweep(base: Spec, strengths: Mapping[str, Sequence[float]] = STRENGTHS) -> pd.DataFrame:
    """One row per regulariser and strength: `clean_fit` of the cached run with only that
    field changed from `base` (strength 0 is `base` itself), with columns `regulariser`
    and `strength`.

    >>> table = strength_sweep(spec, {"dropout": (0.0, 0.3, 0.7)})   # doctest: +SKIP
    >>> table.pivot(index="strength", columns="regulariser", values="val_loss")   # doctest: +SKIP
    """
    for field_name, values in strengths.items():   # every setting checked before anything trains
        values = list(values)
        if len(values) < 3 or values != sorted(values) or len(set(values)) != len(values):
            raise SpecError(f"strengths[{field_name!r}]", values,
                            "at least three distinct strengths in increasing order (too little, right, too much)")
    specs = [(name, value, base.replace(**{name: value})) for name, values in strengths.items() for value in values]
    return pd.DataFrame([{"regulariser": name, "strength": value, **clean_fit(run_cached(spec, model=True))}
                         for name, value, spec in specs])


def middle_advantage(table: pd.DataFrame, regulariser: str, metric: str = "val_loss") -> float:
    """How far both ends of one regulariser's sweep sit above its best middle strength,
    on a loss-like `metric` (lower is better): min(weakest / best middle, strongest /
    best middle). Above 1, too little and too much are both worse than a strength in
    between; at or below 1, one end is as good as any middle.

    >>> t = pd.DataFrame({"regulariser": "dropout", "strength": [0, 0.3, 0.7], "val_loss": [0.5, 0.4, 0.6]})
    >>> round(middle_advantage(t, "dropout"), 3)
    1.25
    """
    part = table[table["regulariser"] == regulariser].sort_values("strength")
    if len(part) < 3:
        raise ValueError(f"regulariser: {regulariser!r} has {len(part)} strengths in the table; expected at least 3 "
                         f"(known: {', '.join(sorted(table['regulariser'].unique()))})")
    values = part[metric].to_numpy(dtype=float)
    middle = values[1:-1].min()
    return float(min(values[0] / middle, values[-1] / middle))


def plot_strengths(table: pd.DataFrame, metrics: Sequence[str] = ("val_loss", "train_loss")) -> Figure:
    """One panel per regulariser: each metric against its strength (evenly spaced, since
    the strengths span orders of magnitude and include 0), on a log scale, with the
    lowest point of each curve marked."""
    names = list(dict.fromkeys(table["regulariser"]))
    fig, axes = plots.figure(ncols=len(names), width=3.6)
    for ax, name in zip(axes, names):
        part = table[table["regulariser"] == name].sort_values("strength")
        at = range(len(part))
        for metric, style in zip(metrics, ("-o", "--s", ":^")):
            values = part[metric].to_numpy(dtype=float)
            ax.plot(at, values, style, ms=4, label=metric.replace("_", " "))
            best = int(values.argmin())
            ax.plot([best], [values[best]], "o", ms=10, mfc="none", color="black")
        ax.set_yscale("log")
        ax.set_xticks(list(at), [f"{v:g}" for v in part["strength"]])
        ax.set(xlabel=name.replace("_", " "), title=name.replace("_", " "))
    axes[0].set_ylabel("loss (log scale); circle: lowest")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- Ensembles of trained models ---------------------------------------------------------

def ensemble_errors(models: list[nn.Module], x: torch.Tensor, y: torch.Tensor) -> dict:
    """Error rate of each model, of their mean, and of the ensemble that averages
    their probabilities. Raises ValueError naming `models` when there are none."""
    if not models:
        raise ValueError("models: [] is not allowed; expected at least one trained model")
    probs = [probabilities(m, x) for m in models]
    members = [float((p.argmax(1) != y).float().mean()) for p in probs]
    together = torch.stack(probs).mean(0)
    return {"members": members, "mean_member": sum(members) / len(members),
            "ensemble": float((together.argmax(1) != y).float().mean())}
