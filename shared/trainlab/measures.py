"""Numbers the notebooks' claims are made of, computed from runs and layer statistics.

>>> signal_ratio(probes.init_stats(Spec(depth=20, init="normal", init_std=0.01)))  # doctest: +SKIP
"""
from __future__ import annotations

import math

import pandas as pd
import torch

from .device import to_model
from .run import Run


def unit_spread(weight: torch.Tensor) -> float:
    """The largest difference between any unit's incoming weights and the first unit's:
    0 means every unit of the layer computes the same function."""
    w = weight.detach()
    return float((w - w[0]).abs().max())


def _hidden(stats: pd.DataFrame) -> pd.DataFrame:
    """The hidden layers of `layer_stats` rows, in order (the output layer has no activation)."""
    return stats.dropna(subset=["act_std"]).sort_values("layer")


def signal_ratio(stats: pd.DataFrame) -> float:
    """Activation std of the last hidden layer over that of the first: < 1 the signal
    fades with depth, > 1 it grows."""
    hidden = _hidden(stats)
    return float(hidden["act_std"].iloc[-1] / hidden["act_std"].iloc[0])


def last_hidden(stats: pd.DataFrame, column: str) -> float:
    """A statistic of the last hidden layer."""
    return float(_hidden(stats)[column].iloc[-1])


def gradient_growth(stats: pd.DataFrame) -> float:
    """Weight-gradient norm of the first hidden layer over that of the last: > 1 the
    gradient grows toward the input, < 1 it fades. NaN when both underflowed to 0."""
    grads = _hidden(stats)["grad_norm"]
    first, last = float(grads.iloc[0]), float(grads.iloc[-1])
    return first / last if last > 0 else math.nan


def mean_val_acc(run: Run) -> float:
    """Validation accuracy averaged over the epochs: how much a run learned per epoch, all along."""
    return float(run.epochs["val_acc"].mean())


def val_acc_after(run: Run, epoch: int = 1) -> float:
    """Validation accuracy after `epoch` epochs."""
    return float(run.epochs["val_acc"].iloc[epoch - 1])


def loss_noise(run: Run, window: int = 10) -> float:
    """How much the per-step loss jumps around its own trend, over the second half of
    training: the std of the loss minus its centred rolling mean."""
    loss = run.steps["loss"]
    late = loss.iloc[len(loss) // 2:]
    return float((late - late.rolling(window, center=True, min_periods=1).mean()).std())


def _unmeasured(metric: str) -> str:
    """Why a sweep's `metric` can be NaN on every run that finished, and what to use instead."""
    why = ("there is no validation set (val_fraction = 0)" if metric.startswith("val_")
           else "it was not measured")
    return (f"metric={metric!r} is NaN on every run that did not diverge: {why}; pick a "
            f"metric that was measured, e.g. metric='train_loss', maximize=False")


def best_row(table: pd.DataFrame, metric: str = "val_acc", maximize: bool = True):
    """The index of the sweep row with the best final `metric`; diverged runs never win.

    >>> best_row(sweep_result.table, "train_loss", maximize=False)   # doctest: +SKIP
    """
    if metric not in table.columns:
        raise ValueError(f"metric={metric!r} is not a column of the sweep table; expected one of "
                         f"{', '.join(map(str, table.columns))}")
    ok = table[~table["diverged"]]
    if ok.empty:
        raise ValueError("every run of the sweep diverged")
    if ok[metric].isna().all():  # idxmax would fail with a message about NA values
        raise ValueError(_unmeasured(metric))
    return ok[metric].idxmax() if maximize else ok[metric].idxmin()


def best_lr(table: pd.DataFrame, metric: str = "val_acc", by: str | None = None,
            maximize: bool = True) -> "float | pd.Series":
    """The swept LR with the best final `metric` (diverged runs excluded), overall or
    for every value of the field `by`; `maximize=False` for losses.

    >>> best_lr(sweep_result.table, by="batch_size")                    # doctest: +SKIP
    >>> best_lr(sweep_result.table, "train_loss", maximize=False)       # doctest: +SKIP
    """
    if by is None:
        return float(table.loc[best_row(table, metric, maximize), "lr"])
    return table.loc[[best_row(group, metric, maximize) for _, group in table.groupby(by)]].set_index(by)["lr"]


def good_lr_centre(table: pd.DataFrame, n_val: int, tol: float = 2.0, metric: str = "val_acc") -> float:
    """The geometric mean of the swept LRs whose final `metric` (an accuracy) is within
    `tol` standard errors of the best (diverged runs excluded): the middle of the good
    band. Unlike the argmax, it does not jump a whole grid step when two LRs near the
    top trade places by chance.

    >>> t = pd.DataFrame({"lr": [0.01, 0.03, 0.1, 0.3], "val_acc": [0.80, 0.90, 0.90, 0.50]})
    >>> round(good_lr_centre(t, n_val=3000), 4)
    0.0548
    """
    ok = table[~table["diverged"]] if "diverged" in table else table
    good = ok[near_best(ok[metric].tolist(), n_val, tol)]
    return math.exp(sum(math.log(float(lr)) for lr in good["lr"]) / len(good))


def near_best(values: list[float], n_val: int, tol: float = 2.0) -> list[bool]:
    """Which accuracies lie within `tol` standard errors of the best of them (NaN: no):
    the good band that `good_lr_centre` and the search lesson's `good_band` read.

    >>> near_best([0.80, 0.90, 0.905, float("nan")], n_val=3000)
    [False, True, True, False]
    """
    best = max(v for v in values if not math.isnan(v))
    return [not math.isnan(v) and gap_in_se(best, v, n_val) < tol for v in values]


def nearest(values: list[float], target: float) -> float:
    """The value closest to `target` on a log scale."""
    return min(values, key=lambda v: abs(math.log(v / target)))


def peak_loss_ratio(run: Run) -> float:
    """The highest loss the run reached over its first loss. A loss that overflowed
    to inf counts as the largest float; NaN (what overflow turns into) is skipped."""
    loss = run.steps["loss"].replace(math.inf, 3.4e38).dropna()
    return float(loss.max() / loss.iloc[0])


def gap_in_se(better: float, worse: float, n: int) -> float:
    """An accuracy gap in standard errors: (better - worse) over the standard error of
    the difference of two accuracies each measured on `n` examples. Judge gaps in
    these units: on 300 validation images one standard error is ~2.4 points.

    >>> round(gap_in_se(0.95, 0.90, 2000), 1)
    6.0
    """
    se = math.sqrt((better * (1 - better) + worse * (1 - worse)) / max(n, 1))
    if se == 0:
        return 0.0 if better == worse else math.copysign(math.inf, better - worse)
    return (better - worse) / se


def gradient_noise(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                   draws: int = 32, seed: int = 0) -> float:
    """How far minibatch gradients scatter around the full gradient over (x, y): the
    mean squared distance E||g_B - g||^2, over `draws` batches of `batch_size` drawn
    without replacement, at the model's current weights (nothing is updated).

    Sampling theory says it shrinks like 1/B; two equal batch sizes give a ratio
    near 1, the null case of "small batches are noisier".

    >>> gradient_noise(model, data.train_x[:2048], data.train_y[:2048], 16)   # doctest: +SKIP
    """
    params = [p for p in model.parameters() if p.requires_grad]
    x, y = to_model(model, x, y)

    def grad(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        loss = torch.nn.functional.cross_entropy(model(xb).float(), yb)
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])

    was_training = model.training
    model.train()
    full = grad(x, y)
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(draws):
        idx = torch.randperm(len(x), generator=g)[:batch_size].to(x.device)
        total += float((grad(x[idx], y[idx]) - full).pow(2).sum())
    model.train(was_training)
    return total / draws
