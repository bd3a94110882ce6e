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
    y scale, even where the loss became NaN or inf. The word goes on the side with
    room, so it never prints over the tick labels of the y axis."""
    from matplotlib.transforms import blended_transform_factory
    where = blended_transform_factory(ax.transData, ax.transAxes)
    ax.plot([x], [0.96], "x", color=color, ms=10, mew=2.5, transform=where, clip_on=False, zorder=5)
    left, right = ax.get_xlim()
    if ax.get_xscale() == "log" and left > 0 and x > 0:
        frac = (np.log(x) - np.log(left)) / (np.log(right) - np.log(left))
    else:
        frac = (x - left) / (right - left) if right != left else 0.5
    on_right = frac < 0.3
    ax.annotate("diverged", (x, 0.96), xycoords=where, xytext=(6 if on_right else -6, -4), textcoords="offset points",
                ha="left" if on_right else "right", va="top", fontsize=8, color=color)


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
    it from move to move); `zoom` (e.g. 0.3) adds a panel on the right with the
    last 30% of training, scaled to the curves there, where small final gaps become
    visible (an inset when `ax` is given: a panel has no room beside it).

    >>> fig = curves({"bs 32": a, "bs 256": b}, "loss", x="epoch", smooth=10, logy=True)  # doctest: +SKIP
    """
    if x not in X_LABELS:
        raise ValueError(f"x: {x!r} is not allowed; expected one of {', '.join(X_LABELS)}")
    zoom_ax = None
    if ax is None and zoom:
        # The zoom gets its own panel beside the whole run: an inset would cover curves.
        import matplotlib.pyplot as plt
        fig, (ax, zoom_ax) = plt.subplots(1, 2, figsize=(10.0, 3.8), gridspec_kw={"width_ratios": [2, 1]})
        plt.close(fig)
    else:
        fig, (ax,) = figure(width=7.2) if ax is None else (ax.figure, [ax])
    lines, diverged = [], []
    for i, (label, run) in enumerate(runs.items()):
        df = getattr(run, source)
        xs, style = _x(run, df, source, x), LINESTYLES[i % len(LINESTYLES)]
        # A run of a few points (one that diverged at once) gets markers, or it is a sliver.
        dots = "o" if source == "epochs" or len(xs) <= 20 else None
        if smooth > 1:
            raw, = ax.plot(xs, df[y], alpha=0.2, lw=0.8)
            line, = ax.plot(xs, _smooth(df[y], smooth), color=raw.get_color(), ls=style, marker=dots, ms=4,
                            label=label)
        else:
            line, = ax.plot(xs, df[y], ls=style, marker=dots, ms=3, label=label)
        lines.append((xs, _smooth(df[y], smooth), line.get_color(), style))
        if run.diverged:
            diverged.append((float(xs.iloc[-1]), line.get_color()))
    ax.set(xlabel=X_LABELS["epoch" if source == "epochs" else x], ylabel=y.replace("_", " "), title=title or "")
    if source == "epochs" or x == "epoch":
        whole_numbers_on_x(ax)
    if logy:
        ax.set_yscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    for where, color in diverged:   # once every line is drawn, so the x range is final
        mark_diverged(ax, where, color)
    if zoom:
        _zoom(zoom_ax or ax.inset_axes(_emptiest_spot(ax, lines)), lines, zoom, logy, inset=zoom_ax is None)
        if zoom_ax is not None:
            zoom_ax.set_xlabel(ax.get_xlabel())
            ax.axvspan(zoom_ax.get_xlim()[0], zoom_ax.get_xlim()[1], color="0.9", zorder=0)
            handles, labels = ax.get_legend_handles_labels()
            zoom_ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.04, 1.0),
                           borderaxespad=0, frameon=False)
            fig.tight_layout()
            return fig
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


def _zoom(target, lines: list, fraction: float, logy: bool, inset: bool) -> None:
    """The last `fraction` of every line on `target` (a panel of its own, or an inset
    in the corner where it hides the fewest points), its y range fitted to them."""
    lo, hi = np.inf, -np.inf
    for xs, ys, color, style in lines:
        start = xs.min() + (1 - fraction) * (xs.max() - xs.min())
        keep = (xs >= start) & np.isfinite(ys)
        target.plot(xs[keep], ys[keep], color=color, ls=style)
        if keep.any():
            lo, hi = min(lo, ys[keep].min()), max(hi, ys[keep].max())
    # A log zoom over less than a decade has no readable ticks; linear shows the gap.
    log_zoom = logy and np.isfinite(lo) and lo > 0 and hi / lo > 10
    if np.isfinite(lo) and np.isfinite(hi):
        pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 0.01
        target.set_ylim(lo / 1.1 if log_zoom else lo - pad, hi * 1.1 if log_zoom else hi + pad)
    if log_zoom:
        target.set_yscale("log")
    if inset:
        target.set_title(f"last {fraction:.0%}", fontsize=8)
        target.tick_params(labelsize=7)
    else:
        target.set_title(f"last {fraction:.0%}, zoomed", fontsize=9)


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
    # One legend for both axes, outside them, so it covers no line.
    handles, labels = [], []
    for a in fig.axes:
        h, lab = a.get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.12 if sweep_table is not None else 1.02, 1.0),
              borderaxespad=0, frameon=False)
    return fig


def schedules(specs: "Spec | Mapping[str, Spec]", names: list[str] | None = None,
              total_steps: int | None = None, ax=None, x: str = "step") -> Figure:
    """The LR of every step, exactly as training sets it (no training).

    Pass the specs that were trained, by label, so what is drawn is what is trained;
    or one spec and schedule `names` to compare shapes with that spec's warm-up.
    `x="epoch"` matches curves drawn against epochs. More than four schedules get a
    small panel each (the others faint grey behind), since on one panel they hide
    each other.

    >>> fig = schedules({"cosine": s, "cosine + warm-up": s.replace(warmup_steps=50)})  # doctest: +SKIP
    """
    if isinstance(specs, Spec):
        specs = {name: specs.replace(schedule=name) for name in (names or [specs.schedule])}
    drawn = {}
    for label, s in specs.items():
        total = total_steps or s.total_steps
        steps = np.arange(total)
        where = (steps + 1) / max(s.steps_per_epoch, 1) if x == "epoch" else steps
        drawn[label] = (where, [lr_at(s, int(t), total) for t in steps])
    if ax is None and len(specs) > 4:
        return _schedule_panels(drawn, x)
    fig, (ax,) = figure(width=7.2) if ax is None else (ax.figure, [ax])
    for i, (label, (where, lrs)) in enumerate(drawn.items()):
        ax.plot(where, lrs, ls=LINESTYLES[i % len(LINESTYLES)], label=label)
    ax.set(xlabel=X_LABELS[x], ylabel="learning rate", title="learning rate at every step")
    ax.set_ylim(bottom=0)  # a constant LR is a flat line, not a zoom into rounding
    if x == "epoch":
        whole_numbers_on_x(ax)
    legend_outside(ax)
    return fig


def _schedule_panels(drawn: dict, x: str, cols: int = 4) -> Figure:
    import matplotlib.pyplot as plt
    rows = -(-len(drawn) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.3 * rows), sharex=True, sharey=True, squeeze=False)
    plt.close(fig)
    for i, (ax, (label, (where, lrs))) in enumerate(zip(axes.flat, drawn.items())):
        for other, (w, l) in drawn.items():
            if other != label:
                ax.plot(w, l, color="0.8", lw=0.8)
        ax.plot(where, lrs, color=f"C{i}", lw=1.8)
        ax.set_title(label, fontsize=9)
        ax.set_ylim(bottom=0)
        if x == "epoch":
            whole_numbers_on_x(ax)
    for ax in axes[-1]:
        ax.set_xlabel(X_LABELS[x])
    for ax in axes[:, 0]:
        ax.set_ylabel("learning rate")
    for ax in axes.flat[len(drawn):]:
        ax.set_visible(False)
    fig.suptitle("learning rate at every step (grey: the other schedules)")
    fig.tight_layout()
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


def describe(fig: Figure) -> str:
    """A figure in words, for a reader who cannot see it (alt text, the site's captions):
    its title, then each panel's title, axes and lines, read from the figure itself.

    >>> fig, (ax,) = figure()
    >>> _ = ax.plot([1, 2], [3, 4], label="He"); _ = ax.set(xlabel="epoch", ylabel="val acc", title="runs")
    >>> describe(fig)
    'runs: val acc against epoch; lines: He.'
    """
    parts = []
    suptitle = fig._suptitle.get_text().strip() if getattr(fig, "_suptitle", None) else ""
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.get_visible()
              and not any(ax in other.child_axes for other in fig.axes)]
    for ax in panels:
        ylabel, xlabel = ax.get_ylabel().strip(), ax.get_xlabel().strip()
        axes_words = " against ".join(w for w in (ylabel, xlabel) if w)
        scales = [f"log {name}" for name, scale in (("x", ax.get_xscale()), ("y", ax.get_yscale())) if scale == "log"]
        if scales:
            axes_words += f" ({', '.join(scales)})" if axes_words else ", ".join(scales)
        labels = [t for t in ax.get_legend_handles_labels()[1] if t and not t.startswith("_")]
        if not labels and ax.get_legend() is not None:
            labels = [t.get_text() for t in ax.get_legend().get_texts()]
        # A label with a comma of its own is quoted, so the list still reads as one name per line.
        names = ", ".join(f'"{t}"' if "," in t else t for t in labels)
        pieces = [axes_words, f"lines: {names}" if labels else "", "a colour map" if ax.images else ""]
        words = "; ".join(p for p in pieces if p)
        title = ax.get_title().strip()
        text = f"{title}: {words}" if title and words else title or words
        if text:
            parts.append(text)
    body = ". ".join(parts)
    if suptitle:
        body = f"{suptitle}. {body}" if body else suptitle
    return (body.rstrip(".") + ".") if body else f"a figure with {len(panels)} panel(s) and no labels."


def install_figure_text() -> None:
    """In a notebook, make a figure's plain-text form its description (`describe`),
    instead of "<Figure size 720x360 with 1 Axes>": front ends still show the image,
    and a page built from the executed notebook (the course site) has the words for
    its alt text. Outside IPython this does nothing."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    # The inline backend switches itself on with the first figure and then clears every
    # formatter's entry for Figure before adding its own: make that happen first.
    import matplotlib.pyplot as plt
    plt.close(plt.figure())
    shell.display_formatter.formatters["text/plain"].for_type(Figure, lambda fig, p, cycle: p.text(describe(fig)))
