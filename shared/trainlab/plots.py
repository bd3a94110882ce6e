"""Figures for comparing runs, so notebooks hold no plotting code of their own.

Every function returns a matplotlib Figure that is already closed in pyplot, so it
is shown once: as a cell's last value, or with `display(fig)`; it renders in
JupyterLab and in exported HTML alike.

>>> fig = curves({"He": he_run, "N(0,1)": normal_run}, y="val_acc", source="epochs")  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .optim import lr_at
from .run import Run
from .spec import Spec


def figure(ncols: int = 1, width: float = 6.0, height: float = 3.6):
    """A new figure with `ncols` axes side by side, closed in pyplot so it shows once."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols if ncols > 1 else width, height), squeeze=False)
    plt.close(fig)
    return fig, list(axes[0])


def _smooth(values: pd.Series, window: int) -> pd.Series:
    return values.rolling(window, min_periods=1).mean() if window > 1 else values


def curves(runs: Mapping[str, Run], y: str = "loss", source: str = "steps", smooth: int = 1,
           logy: bool = False, title: str | None = None, ax=None) -> Figure:
    """One line per run: `y` from each run's `steps` (x = step) or `epochs` (x = epoch).

    `smooth` > 1 adds a rolling mean over that many points on top of the raw line.
    """
    fig, (ax,) = figure() if ax is None else (ax.figure, [ax])
    x = "step" if source == "steps" else "epoch"
    for label, run in runs.items():
        df = getattr(run, source)
        if smooth > 1:
            line, = ax.plot(df[x], df[y], alpha=0.25)
            ax.plot(df[x], _smooth(df[y], smooth), color=line.get_color(), label=label)
        else:
            ax.plot(df[x], df[y], "o-" if source == "epochs" else "-", label=label, ms=3)
        if run.diverged:
            ax.plot(df[x].iloc[-1], 0, "x", color="red", ms=9)
    ax.set(xlabel=x, ylabel=y.replace("_", " "), title=title or "")
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    return fig


def heatmap(table: pd.DataFrame, index: str, columns: str, values: str, fmt: str = "{:.2f}",
            title: str | None = None, cmap: str = "viridis") -> Figure:
    """A grid of `values` (e.g. val_acc) over two swept fields, each cell labelled."""
    grid = table.pivot_table(index=index, columns=columns, values=values, aggfunc="mean")
    fig, (ax,) = figure(width=1.1 * len(grid.columns) + 2, height=0.6 * len(grid.index) + 1.6)
    im = ax.imshow(grid.to_numpy(dtype=float), cmap=cmap, aspect="auto", origin="lower")
    ax.set_xticks(range(len(grid.columns)), [f"{c:g}" for c in grid.columns])
    ax.set_yticks(range(len(grid.index)), [f"{i:g}" for i in grid.index])
    ax.set(xlabel=columns, ylabel=index, title=title or values)
    for (r, c), v in np.ndenumerate(grid.to_numpy(dtype=float)):
        ax.text(c, r, "NaN" if np.isnan(v) else fmt.format(v), ha="center", va="center", fontsize=8,
                color="white" if np.isnan(v) or v < np.nanmean(grid.to_numpy(dtype=float)) else "black")
    fig.colorbar(im, ax=ax)
    return fig


def layer_profile(stats: Mapping[str, pd.DataFrame], value: str = "act_std", logy: bool = True,
                  title: str | None = None, ax=None) -> Figure:
    """A per-layer statistic (from `layer_stats` or run.probes) against depth, one line per label."""
    fig, (ax,) = figure() if ax is None else (ax.figure, [ax])
    for label, df in stats.items():
        d = df.dropna(subset=[value])
        ax.plot(d["layer"], d[value], "o-", ms=3, label=label)
    ax.set(xlabel="layer", ylabel=value.replace("_", " "), title=title or "")
    if logy and any((df[value] > 0).any() for df in stats.values()):  # all-zero (zeros init) stays linear
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    return fig


def range_test(result, sweep_table: pd.DataFrame | None = None, metric: str = "val_loss") -> Figure:
    """The LR range test's loss against LR (log), its suggestion, and, if given, a
    constant-LR sweep's final `metric` on a second axis."""
    fig, (ax,) = figure(width=7)
    c = result.curve
    ax.plot(c["lr"], c["loss"], alpha=0.3, label="loss (per step)")
    ax.plot(c["lr"], c["smoothed"], label="smoothed")
    ax.axvline(result.suggestion, color="green", ls="--", label=f"suggestion {result.suggestion:.3g}")
    ax.axvline(result.min_loss_lr, color="grey", ls=":", label=f"min loss {result.min_loss_lr:.3g}")
    finite = c["smoothed"][np.isfinite(c["smoothed"])]
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title="LR range test",
           ylim=(0, min(finite.max(), 3 * finite.iloc[0]) * 1.05))
    if sweep_table is not None:
        ax2 = ax.twinx()
        ok = sweep_table[~sweep_table["diverged"]]
        ax2.plot(ok["lr"], ok[metric], "s-", color="black", ms=4, label=f"sweep {metric}")
        ax2.set_ylabel(f"sweep: final {metric}")
        ax2.legend(loc="upper center", fontsize=8)
    ax.legend(loc="lower left", fontsize=8)
    return fig


def schedules(spec: Spec, names: list[str], total_steps: int | None = None, ax=None) -> Figure:
    """The LR every schedule gives over a run, warm-up included (no training)."""
    fig, (ax,) = figure() if ax is None else (ax.figure, [ax])
    total = total_steps or spec.total_steps
    steps = np.arange(total)
    for name in names:
        s = spec.replace(schedule=name)
        ax.plot(steps, [lr_at(s, int(i), total) for i in steps], label=name)
    ax.set(xlabel="step", ylabel="learning rate", title=f"schedules (warm-up {spec.warmup_steps} steps)")
    ax.legend(fontsize=8)
    return fig
