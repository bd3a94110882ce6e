"""Figures for comparing runs, so notebooks hold no plotting code of their own.

Every function returns a matplotlib Figure that is already closed in pyplot, so it
is shown once: as a cell's last value, or with `display(fig)`; it renders in
JupyterLab and in exported HTML alike.

>>> fig = curves({"He": he_run, "N(0,1)": normal_run}, y="val_acc", source="epochs")  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Mapping

import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .optim import lr_at
from .run import Run
from .spec import Spec
from .tables import number_text


def figure(ncols: int = 1, width: float = 6.0, height: float = 3.6):
    """A new figure with `ncols` axes side by side, closed in pyplot so it shows once."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols if ncols > 1 else width, height), squeeze=False)
    plt.close(fig)
    return fig, list(axes[0])


def _smooth(values: pd.Series, window: int) -> pd.Series:
    return values.rolling(window, min_periods=1).mean() if window > 1 else values


# A line hidden under another must still be told apart: styles cycle with colours.
LINESTYLES = ("-", "--", "-.", ":")
# A log axis labels only its decades; with this few values or fewer, each value gets its own label.
MAX_LABELLED_TICKS = 7
X_LABELS = {"step": "step", "epoch": "epoch", "examples": "training examples seen"}


def _x(run: Run, df: pd.DataFrame, source: str, x: str) -> pd.Series:
    """Where each row sits on the x axis. Runs with different batch sizes line up by
    epochs or examples seen, not by step."""
    if source == "epochs":
        return df["epoch"]
    if x == "epoch":
        return (df["step"] + 1) / max(run.spec.steps_per_epoch, 1)
    if x == "examples":
        return (df["step"] + 1) * run.spec.batch_size
    return df["step"]


def mark_diverged(ax, x: float, color: str = "red") -> None:
    """An x at the top edge of the axes above where a run diverged: visible on any
    y scale, even where the loss became NaN or inf."""
    from matplotlib.transforms import blended_transform_factory
    where = blended_transform_factory(ax.transData, ax.transAxes)
    ax.plot([x], [0.96], "x", color=color, ms=10, mew=2.5, transform=where, clip_on=False, zorder=5)
    ax.annotate("diverged", (x, 0.96), xycoords=where, xytext=(-4, -4), textcoords="offset points",
                ha="right", va="top", fontsize=8, color=color)


def legend_outside(ax) -> None:
    """The legend to the right of the axes, so it never covers a curve."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, frameon=False)


def whole_numbers_on_x(ax) -> None:
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def curves(runs: Mapping[str, Run], y: str = "loss", source: str = "steps", smooth: int = 1,
           logy: bool = False, title: str | None = None, ax=None, x: str = "step",
           ylim: tuple[float, float] | None = None, zoom: float | None = None) -> Figure:
    """One line per run: `y` from each run's `steps` or `epochs`.

    `x` ("step", "epoch" or "examples") places per-step rows; compare runs with
    different batch sizes by "epoch" or "examples". `smooth` > 1 draws a rolling
    mean over that many points on top of the faint raw line. A diverged run gets an
    x at the top of the axes where it diverged. `ylim` fixes the y range (panels keep
    it from move to move); `zoom` (e.g. 0.3) adds an inset over the last 30% of
    training, scaled to the curves there, where small final gaps become visible.

    >>> fig = curves({"bs 32": a, "bs 256": b}, "loss", x="epoch", smooth=10, logy=True)  # doctest: +SKIP
    """
    fig, (ax,) = figure(width=7.2) if ax is None else (ax.figure, [ax])
    if x not in X_LABELS:
        raise ValueError(f"x: {x!r} is not allowed; expected one of {', '.join(X_LABELS)}")
    lines = []
    for i, (label, run) in enumerate(runs.items()):
        df = getattr(run, source)
        xs, style = _x(run, df, source, x), LINESTYLES[i % len(LINESTYLES)]
        if smooth > 1:
            raw, = ax.plot(xs, df[y], alpha=0.2, lw=0.8)
            line, = ax.plot(xs, _smooth(df[y], smooth), color=raw.get_color(), ls=style, label=label)
        else:
            line, = ax.plot(xs, df[y], ls=style, marker="o" if source == "epochs" else None, ms=3, label=label)
        lines.append((xs, _smooth(df[y], smooth), line.get_color(), style))
        if run.diverged:
            mark_diverged(ax, float(xs.iloc[-1]), line.get_color())
    ax.set(xlabel=X_LABELS["epoch" if source == "epochs" else x], ylabel=y.replace("_", " "), title=title or "")
    if source == "epochs" or x == "epoch":
        whole_numbers_on_x(ax)
    if logy:
        ax.set_yscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    if zoom:
        _zoom_inset(ax, lines, zoom, logy)
    legend_outside(ax)
    return fig


def metric_vs(table: pd.DataFrame, x: str, y: str, by: str | None = None, logx: bool = True,
              ylim: tuple[float, float] | None = None, title: str | None = None, ax=None) -> Figure:
    """A final metric against a swept field (a sweep's table), one line per value of `by`.

    Diverged runs have no metric: each is drawn as an x on the bottom edge at its x, so a
    line that stops early shows where and why.

    >>> fig = metric_vs(sweep.table, "lr", "val_acc", by="scale", ylim=(0, 1))   # doctest: +SKIP
    """
    for name in (x, y, by):
        if name is not None and name not in table.columns:
            raise ValueError(f"{name!r} is not a column of the table; it has {', '.join(map(str, table.columns))}")
    fig, (ax,) = figure(width=7.2) if ax is None else (ax.figure, [ax])
    groups = table.groupby(by, sort=False) if by else [(None, table)]
    for i, (key, part) in enumerate(groups):
        part = part.sort_values(x)
        ok = part[~part["diverged"]] if "diverged" in part else part
        line, = ax.plot(ok[x], ok[y], marker="o", ms=4, ls=LINESTYLES[i % len(LINESTYLES)],
                        label=f"{by} = {key}" if by else None)
        if "diverged" in part:
            gone = part[part["diverged"]]
            ax.plot(gone[x], [0.0] * len(gone), "x", color=line.get_color(), ms=8, mew=2, clip_on=False,
                    transform=ax.get_xaxis_transform())
    if logx:
        ax.set_xscale("log")
        values = sorted(v for v in table[x].dropna().unique() if v > 0)
        if len(values) <= MAX_LABELLED_TICKS:  # few values: label each (50, 100, 200, ...), not just the decades
            ax.set_xticks(values, [number_text(v, digits=2) for v in values])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set(xlabel=x.replace("_", " "), ylabel=y.replace("_", " "), title=title or "")
    legend_outside(ax)
    return fig


INSET_SPOTS = ([0.5, 0.5, 0.46, 0.42], [0.5, 0.08, 0.46, 0.42], [0.1, 0.08, 0.46, 0.42], [0.1, 0.5, 0.46, 0.42])


def _emptiest_spot(ax, lines: list) -> list[float]:
    """Of the four corners, the one where the fewest plotted points lie (in axes
    coordinates), so the inset covers as little of the curves as possible."""
    to_axes = ax.transData + ax.transAxes.inverted()
    points = np.concatenate([to_axes.transform(np.column_stack([xs, ys])[np.isfinite(ys.to_numpy(dtype=float))])
                             for xs, ys, _, _ in lines if len(xs)] or [np.empty((0, 2))])

    def covered(spot: list[float]) -> int:
        x0, y0, w, h = spot
        inside = (points[:, 0] >= x0) & (points[:, 0] <= x0 + w) & (points[:, 1] >= y0) & (points[:, 1] <= y0 + h)
        return int(inside.sum())
    return min(INSET_SPOTS, key=covered)


def _zoom_inset(ax, lines: list, fraction: float, logy: bool) -> None:
    """An inset with the last `fraction` of every line, its y range fitted to them, in
    the corner where it hides the fewest points."""
    inset = ax.inset_axes(_emptiest_spot(ax, lines))
    lo, hi = np.inf, -np.inf
    for xs, ys, color, style in lines:
        start = xs.min() + (1 - fraction) * (xs.max() - xs.min())
        keep = (xs >= start) & np.isfinite(ys)
        inset.plot(xs[keep], ys[keep], color=color, ls=style)
        if keep.any():
            lo, hi = min(lo, ys[keep].min()), max(hi, ys[keep].max())
    # A log inset over less than a decade has no readable ticks; linear shows the gap.
    log_inset = logy and np.isfinite(lo) and lo > 0 and hi / lo > 10
    if np.isfinite(lo) and np.isfinite(hi):
        pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 0.01
        inset.set_ylim(lo / 1.1 if log_inset else lo - pad, hi * 1.1 if log_inset else hi + pad)
    if log_inset:
        inset.set_yscale("log")
    inset.set_title(f"last {fraction:.0%}", fontsize=8)
    inset.tick_params(labelsize=7)


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
                  title: str | None = None, ax=None, ylim: tuple[float, float] | None = None) -> Figure:
    """A per-layer statistic (from `layer_stats` or run.probes) against depth, one line per label."""
    fig, (ax,) = figure() if ax is None else (ax.figure, [ax])
    for i, (label, df) in enumerate(stats.items()):
        d = df.dropna(subset=[value])
        ax.plot(d["layer"], d[value], marker="o", ls=LINESTYLES[i % len(LINESTYLES)], ms=3, label=label)
    ax.set(xlabel="layer", ylabel=value.replace("_", " "), title=title or "")
    if logy and any((df[value] > 0).any() for df in stats.values()):  # all-zero (zeros init) stays linear
        ax.set_yscale("log")
        if ylim is not None:  # a log range means nothing to an all-zero, linear axis
            ax.set_ylim(*ylim)
    elif ylim is not None and not logy:
        ax.set_ylim(*ylim)
    whole_numbers_on_x(ax)  # layers count in whole numbers too
    legend_outside(ax)
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


def schedules(specs: "Spec | Mapping[str, Spec]", names: list[str] | None = None,
              total_steps: int | None = None, ax=None, x: str = "step") -> Figure:
    """The LR of every step, exactly as training sets it (no training).

    Pass the specs that were trained, by label, so what is drawn is what is trained;
    or one spec and schedule `names` to compare shapes with that spec's warm-up.
    `x="epoch"` matches curves drawn against epochs.

    >>> fig = schedules({"cosine": s, "cosine + warm-up": s.replace(warmup_steps=50)})  # doctest: +SKIP
    """
    if isinstance(specs, Spec):
        specs = {name: specs.replace(schedule=name) for name in (names or [specs.schedule])}
    fig, (ax,) = figure(width=7.2) if ax is None else (ax.figure, [ax])
    for i, (label, s) in enumerate(specs.items()):
        total = total_steps or s.total_steps
        steps = np.arange(total)
        where = (steps + 1) / max(s.steps_per_epoch, 1) if x == "epoch" else steps
        ax.plot(where, [lr_at(s, int(t), total) for t in steps], ls=LINESTYLES[i % len(LINESTYLES)], label=label)
    ax.set(xlabel=X_LABELS[x], ylabel="learning rate", title="learning rate at every step")
    ax.set_ylim(bottom=0)  # a constant LR is a flat line, not a zoom into rounding
    if x == "epoch":
        whole_numbers_on_x(ax)
    legend_outside(ax)
    return fig


LOSS_RANGE = (1e-2, 1e1)     # cross-entropy from near-perfect to well above chance (ln 10 = 2.3)


def run_panel(run: Run, title: str, show_schedule: bool = False) -> Figure:
    """One run's training loss and validation accuracy on fixed axes, with its LR
    schedule in front when asked: the Explore panel of a single training run.

    >>> fig = run_panel(run_cached(spec), "lr 0.01")   # doctest: +SKIP
    """
    spec = run.spec
    fig, axes = figure(ncols=3 if show_schedule else 2, width=3.6 if show_schedule else 4.6)
    if show_schedule:
        schedules({spec.schedule: spec}, ax=axes.pop(0), x="epoch")
    # Fixed axes: accuracy on [0, 1] and the loss on one log range, so panels from two
    # slider positions can be compared by eye.
    curves({"train (per step)": run}, "loss", smooth=max(spec.steps_per_epoch // 5, 1), ax=axes[0],
                 title="training loss", x="epoch", logy=True, ylim=LOSS_RANGE)
    curves({"validation": run}, "val_acc", source="epochs", ax=axes[1], title="validation accuracy",
                 ylim=(0.0, 1.0))
    for ax in axes[-2:]:  # the whole run's length, even when it diverged in its first epoch
        ax.set_xlim(0, spec.epochs + 0.05)
    state = "diverged" if run.diverged else f"val acc {run.final['val_acc']:.3f}"
    fig.suptitle(f"{title}: {state}")
    fig.tight_layout()
    return fig
