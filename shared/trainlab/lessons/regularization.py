"""Regularisation: the train/validation gap of trained runs, and the Explore panel of notebook 11.

A network that can memorise its training set ends with a training loss near zero
and a validation loss well above it. The gap is measured here on the finished
model in eval mode, on every training image: the running training accuracy a run
logs per epoch is taken with dropout and augmentation switched on, so it
understates how well a regularised network fits the images it trained on.

>>> runs = {"none": run_cached(spec, model=True), "dropout 0.5": run_cached(spec.replace(dropout=0.5), model=True)}  # doctest: +SKIP
>>> gap_table(runs)[["run", "loss_gap", "acc_gap"]]                                                                   # doctest: +SKIP
>>> fig = regularization_view(spec.replace(weight_decay=5e-3))                                                       # doctest: +SKIP

Also here: ensembles of trained models, which average their predicted probabilities.
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from .. import plots
from ..data import load_data
from ..evaluation import outputs, score
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


# --- Ensembles of trained models ---------------------------------------------------------

def probabilities(model: nn.Module, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Softmax outputs of `model` on x, in eval mode (the model's mode is restored)."""
    return outputs(model, x, chunk).softmax(1)


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
