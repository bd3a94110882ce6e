"""Normalisation layers: helpers and the Explore panel of notebook 10.

BatchNorm normalises each unit over the batch while training and over running
averages of those batch statistics at evaluation, so one model computes two
different functions depending on its mode. These helpers measure that gap, how far
the running statistics sit from the statistics of the data, and the largest
learning rate at which a sweep still trained.

>>> gap = train_eval_gap(model, x)                         # doctest: +SKIP
>>> running_stats_error(model, x)                          # doctest: +SKIP
>>> fig = norm_view(Spec(norm="batch", lr=0.3))            # doctest: +SKIP
"""
from __future__ import annotations

import copy
import math

import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from .. import plots
from ..device import to_model
from ..spec import Spec
from ..sweeps import run_cached

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


@torch.no_grad()
def train_eval_gap(model: nn.Module, x: torch.Tensor) -> float:
    """How much the outputs on one batch `x` change between train and eval mode:
    the largest absolute difference of the outputs over the spread (std) of the eval
    outputs. 0 for a model without mode-dependent layers (no BatchNorm, no dropout).
    The model itself is left untouched (train mode would update its running stats)."""
    m = copy.deepcopy(model)
    x = to_model(m, x)
    out_eval = m.eval()(x)
    out_train = m.train()(x)
    scale = out_eval.std().item()
    diff = (out_train - out_eval).abs().max().item()
    return diff / scale if scale > 0 else math.inf * (diff > 0)


@torch.no_grad()
def running_stats_error(model: nn.Module, x: torch.Tensor, reset: bool = False) -> pd.DataFrame:
    """For every BatchNorm layer: how far its running statistics are from the
    statistics of its inputs over `x` (the model in eval mode).

    `mean_error` is the mean over units of |running mean - data mean| / data std;
    `var_error` the mean over units of |ln(running var / data var)| (0: equal; ln 2
    = 0.69: off by a factor 2). `reset=True` measures a copy whose running stats are
    put back to their starting values (mean 0, variance 1), as before any batch."""
    m = copy.deepcopy(model).eval()
    layers = [(name, mod) for name, mod in m.named_modules() if isinstance(mod, BATCH_NORMS)]
    if reset:
        for _, mod in layers:
            mod.reset_running_stats()
    seen: dict[str, torch.Tensor] = {}
    hooks = [mod.register_forward_pre_hook(lambda mod, inp, name=name: seen.__setitem__(name, inp[0]))
             for name, mod in layers]
    try:
        m(to_model(m, x))
    finally:
        for h in hooks:
            h.remove()
    rows = []
    for name, mod in layers:
        a = seen[name]
        dims = [d for d in range(a.dim()) if d != 1]  # every axis but the units/channels
        mean, var = a.mean(dims), a.var(dims, unbiased=False)
        rows.append({
            "layer": name,
            "mean_error": ((mod.running_mean - mean).abs() / var.sqrt().clamp_min(1e-8)).mean().item(),
            "var_error": (mod.running_var.clamp_min(1e-12) / var.clamp_min(1e-12)).log().abs().mean().item(),
        })
    return pd.DataFrame(rows, columns=["layer", "mean_error", "var_error"])


def largest_trained_lr(table: pd.DataFrame, min_acc: float, by: str | None = None) -> "float | pd.Series":
    """The largest swept `lr` whose run did not diverge and reached `val_acc` >= `min_acc`
    (NaN where none did), overall or for every value of the field `by`."""
    def largest(part: pd.DataFrame) -> float:
        ok = part[~part["diverged"] & (part["val_acc"] >= min_acc)]
        return float(ok["lr"].max()) if len(ok) else math.nan
    if by is None:
        return largest(table)
    return pd.Series({key: largest(part) for key, part in table.groupby(by, sort=False)}, name="lr")


def norm_view(spec: Spec) -> Figure:
    """The spec's run next to the same spec without normalisation (both cached):
    training loss per step (log scale) and validation accuracy per epoch."""
    runs = {f"norm {spec.norm}": run_cached(spec)}
    if spec.norm != "none":
        runs["norm none (same spec)"] = run_cached(spec.replace(norm="none"))
    fig, axes = plots.figure(ncols=2, width=4.6)
    plots.curves(runs, "loss", smooth=5, logy=True, ax=axes[0], ylim=(0.05, 20), title="training loss per step")
    plots.curves(runs, "val_acc", source="epochs", ax=axes[1], ylim=(0, 1), title="validation accuracy")
    axes[1].set_xlim(0.5, spec.epochs + 0.5)
    if axes[0].get_legend():
        axes[0].get_legend().remove()
    first = next(iter(runs.values()))
    status = "diverged" if first.diverged else f"val acc {first.final['val_acc']:.3f}"
    init = spec.init + (f" (std {spec.init_std:g})" if spec.init in ("normal", "uniform") else "")
    fig.suptitle(f"{spec.depth} x {spec.width} {spec.activation}, {spec.norm}, lr {spec.lr:g}, {init}: {status}")
    fig.tight_layout()
    return fig
