"""Helpers for notebook 08 (optimizers): what an optimizer's steps look like, on the
2-D surfaces of `trainlab.surfaces` and on the real network.

- `effective_lr(name, p)`: how far each step moved per unit of gradient, coordinate by
  coordinate (|Δx| / |∂f/∂x| at the point the step started from). Plain SGD keeps it
  at its lr; AdaGrad's falls as its sum of squared gradients grows; RMSProp's, a
  moving average, can rise again.
- `first_updates(spec, optimizers)`: the size of the first few weight updates of the
  spec's real network on one real batch, for several optimizers from the same start
  (Adam's bias correction shows in the very first step).
- `weight_norm(model)`: the L2 norm of all weight matrices together (biases left out).
- `logistic_race(x, y)`: full-batch logistic regression by gradient descent (at
  several LRs) and by L-BFGS (`trainlab.second_order`), and `iterations_to_reach`.
- `path_curves(tables, y)`: a column of several step-indexed tables (paths,
  `effective_lr`, `fit_logistic`) against the step.
- `surfaces_view(spec)`: the spec's optimizer and lr on all three surfaces side by side
  (the Explore panel of notebook 08).

>>> effective_lr("bowl", path(Spec(optimizer="sgd", lr=0.03), "bowl", 5))["eff_x"].tolist()  # doctest: +SKIP
[0.03, 0.03, 0.03, 0.03, 0.03]

Also here: the 2-D test surfaces and the paths optimizers take on them, and
L-BFGS against gradient descent on multinomial logistic regression (a second-order
method on a small real problem).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ..device import to_model
from ..models import fresh_model
from ..optim import build_optimizer
from ..spec import Spec, SpecError

VIEW_STEPS = 200  # steps per surface in the Explore panel
# Paths on the 2-D surfaces are two float64 numbers a step, never a network's data:
# the CPU is exact and faster than a launch per step on any accelerator.
SURFACE_DEVICE = "cpu"


def gradients(name: str, p: pd.DataFrame) -> pd.DataFrame:
    """∂f/∂x and ∂f/∂y of the surface at every point of the path `p`."""
    s = surface(name)
    xy = torch.tensor(p[["x", "y"]].to_numpy(), dtype=torch.float64, device=SURFACE_DEVICE, requires_grad=True)
    s.f(xy[:, 0], xy[:, 1]).sum().backward()
    g = xy.grad.cpu().numpy()
    return pd.DataFrame({"step": p["step"].to_numpy(), "gx": g[:, 0], "gy": g[:, 1]})


def effective_lr(name: str, p: pd.DataFrame) -> pd.DataFrame:
    """Per step (from 1 on): the distance moved along x and along y, each over the size
    of that gradient component at the point the step started from.

    For an optimizer whose step is lr times a per-coordinate factor times the current
    gradient (SGD, AdaGrad, RMSProp without momentum) this is exactly lr times that
    factor; with momentum or Adam's averages it mixes in earlier gradients. A
    component of exactly 0 gives NaN.
    """
    g = gradients(name, p)
    dx, dy = p["x"].diff().abs().to_numpy()[1:], p["y"].diff().abs().to_numpy()[1:]
    gx, gy = g["gx"].abs().to_numpy()[:-1], g["gy"].abs().to_numpy()[:-1]
    eff_x = [d / a if a > 0 else math.nan for d, a in zip(dx, gx)]
    eff_y = [d / a if a > 0 else math.nan for d, a in zip(dy, gy)]
    return pd.DataFrame({"step": p["step"].to_numpy()[1:], "eff_x": eff_x, "eff_y": eff_y})


def weight_norm(model: torch.nn.Module) -> float:
    """The L2 norm of every weight matrix (and conv kernel) together; biases and
    normalisation parameters (1-D tensors) are left out."""
    return math.sqrt(sum(float(p.detach().double().pow(2).sum()) for p in model.parameters() if p.dim() > 1))


def lr_tuning(specs: dict[str, Spec], factors: tuple[float, ...] = (1 / 3, 1.0, 3.0)) -> pd.DataFrame:
    """Each named spec trained at its LR times every factor (one sweep, cached), one row
    per optimizer and LR with the final validation accuracy and training loss; `best`
    marks each optimizer's LR with the highest validation accuracy (a diverged run counts
    as chance). Comparing optimizers at their best LRs, rather than at customary ones, keeps
    a badly chosen LR from passing for a bad optimizer.

    >>> table = lr_tuning({"Adam": base.replace(optimizer="adam", lr=1e-3)})   # doctest: +SKIP
    >>> table[table["best"]]                                                   # doctest: +SKIP
    """
    from ..sweeps import sweep
    if not specs:
        raise SpecError("specs", specs, "at least one named spec")
    if not factors or any(not (f > 0 and math.isfinite(f)) for f in factors) or len(set(factors)) != len(factors):
        raise SpecError("factors", factors, "distinct finite numbers > 0 (multiples of each spec's lr)")
    grid = [(name, spec.replace(lr=spec.lr * f)) for name, spec in specs.items() for f in factors]
    runs = sweep([s for _, s in grid]).runs
    table = pd.DataFrame([{"optimizer": name, "lr": s.lr, "diverged": run.diverged,
                           "val_acc": run.final.get("val_acc", float("nan")) if not run.diverged else float("nan"),
                           "train_loss": run.final.get("train_loss", float("nan"))}
                          for (name, s), run in zip(grid, runs)])
    chance = 1 / next(iter(specs.values())).num_classes
    table["val_acc"] = table["val_acc"].fillna(chance)
    table["best"] = table.index.isin(table.groupby("optimizer", sort=False)["val_acc"].idxmax())
    return table


def first_updates(spec: Spec, optimizers: dict[str, Spec] | list[str], steps: int = 5,
                  batch: tuple[torch.Tensor, torch.Tensor] | None = None) -> pd.DataFrame:
    """The first `steps` updates of the spec's network, from one initialisation, on one
    real batch (the same batch every step), for each optimizer. `batch` (images, labels
    of ten classes) replaces the spec's probe batch.

    `optimizers` is a list of optimizer names (each `spec.replace(optimizer=name)`) or a
    dict of label -> spec. One row per (label, step): the L2 norm of the change of all
    parameters in that step, and the loss before it.
    """
    from ..data import probe_batch
    from ..threads import run_threads
    if not (isinstance(steps, int) and 1 <= steps <= 1000):
        raise SpecError("steps", steps, "a whole number from 1 to 1000")
    specs = optimizers if isinstance(optimizers, dict) else {o: spec.replace(optimizer=o) for o in optimizers}
    x, y, classes = probe_batch(spec) if batch is None else (*batch, 10)
    rows = []
    with run_threads():
        for label, s in specs.items():
            rows += _updates(label, s, x, y, classes, spec.seed, steps)
    return pd.DataFrame(rows)


def _updates(label: str, s: Spec, x: torch.Tensor, y: torch.Tensor, classes: int, seed: int,
             steps: int) -> list[dict]:
    """The rows of `first_updates` for one optimizer."""
    model = fresh_model(s.replace(seed=seed))
    x, y = to_model(model, x, y)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = build_optimizer(s, params)
    rows = []
    for step in range(1, steps + 1):
        before = torch.cat([p.detach().reshape(-1).clone() for p in params])
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        after = torch.cat([p.detach().reshape(-1) for p in params])
        rows.append({"optimizer": label, "step": step, "loss": loss.item(),
                     "update_norm": float((after - before).norm())})
    return rows


def path_curves(tables: dict[str, pd.DataFrame], y: str, x: str = "step", logy: bool = False,
                title: str | None = None, ax=None, ylim: tuple[float, float] | None = None,
                ylabel: str | None = None) -> Figure:
    """One line per table: column `y` against column `x` (a path's "step", a
    `fit_logistic` table's "iteration"), on a log y axis if asked (non-positive values
    are then left out)."""
    from .. import plots
    fig, (ax,) = plots.figure(width=7.2) if ax is None else (ax.figure, [ax])
    for i, (label, t) in enumerate(tables.items()):
        if y not in t.columns or x not in t.columns:
            raise ValueError(f"y={y!r}, x={x!r}: the table {label!r} has columns {', '.join(t.columns)}")
        values = t[y].where(t[y] > 0) if logy else t[y]
        ax.plot(t[x], values, ls=plots.LINESTYLES[i % len(plots.LINESTYLES)], lw=1.4, label=label)
    ax.set(xlabel=x, ylabel=ylabel or y.replace("_", " "), title=title or "")
    if logy:
        ax.set_yscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    plots.legend_outside(ax)
    return fig


def logistic_race(x: torch.Tensor, y: torch.Tensor, gd_lrs: tuple[float, ...] = (0.1, 0.3, 1.0),
                  gd_iterations: int = 300, lbfgs_lrs: tuple[float, ...] = (1.0,), lbfgs_iterations: int = 50,
                  seed: int = 0) -> dict[str, pd.DataFrame]:
    """`fit_logistic` on (x, y) by gradient descent at each of `gd_lrs` and by L-BFGS
    at each of `lbfgs_lrs` (1: its full quasi-Newton step), from the same start, on the
    harness's thread budget (so the seconds column is comparable between methods).
    Keys: "GD, lr 0.3", "L-BFGS" (lr 1), "L-BFGS, lr 0.01"."""
    from ..threads import run_threads
    out = {}
    with run_threads():
        for lr in gd_lrs:
            out[f"GD, lr {lr:g}"] = fit_logistic(x, y, "gd", gd_iterations, lr=lr, seed=seed)
        for lr in lbfgs_lrs:
            out["L-BFGS" if lr == 1 else f"L-BFGS, lr {lr:g}"] = fit_logistic(x, y, "lbfgs", lbfgs_iterations,
                                                                               lr=lr, seed=seed)
    return out


def iterations_to_reach(df: pd.DataFrame, loss: float) -> float:
    """The first iteration of a `fit_logistic` table whose loss is at or below `loss`
    (inf if none)."""
    hit = df.index[df["loss"] <= loss]
    return float(df.loc[hit[0], "iteration"]) if len(hit) else math.inf


def surfaces_view(spec: Spec, steps: int = VIEW_STEPS) -> Figure:
    """The spec's optimizer (with its lr, momentum, betas) for `steps` steps on every
    surface, side by side; each panel's title gives the final loss, or where the path
    left for infinity."""
    from .. import plots
    fig, axes = plots.figure(ncols=len(SURFACES), width=4.4, height=3.6)
    label = f"{spec.optimizer}, lr {spec.lr:g}"
    if spec.optimizer in ("sgd", "nesterov", "rmsprop") and spec.momentum:
        label += f", momentum {spec.momentum:g}"
    for ax, name in zip(axes, SURFACES):
        p = path(spec, name, steps)
        last = p["loss"].iloc[-1]
        state = f"loss {last:.3g} after {steps} steps" if math.isfinite(last) else f"diverged at step {len(p) - 1}"
        draw(name, {label: p}, ax=ax, title=f"{name}: {state}")
    fig.suptitle(label)
    fig.tight_layout()
    return fig


# --- Optimizers on 2-D test surfaces -----------------------------------------------------

@dataclass(frozen=True)
class Surface:
    name: str
    f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    start: tuple[float, float]
    extent: tuple[float, float, float, float]  # x min, x max, y min, y max
    minimum: tuple[float, float]
    log_levels: bool = False  # contour levels on a log scale (for steep walls)


SURFACES = {
    "bowl": Surface("bowl", lambda x, y: (x ** 2 + 25 * y ** 2) / 2, (-4.0, 1.0), (-5, 5, -2, 2), (0.0, 0.0)),
    "rosenbrock": Surface("rosenbrock", lambda x, y: (1 - x) ** 2 + 100 * (y - x ** 2) ** 2, (-1.5, 2.0),
                          (-2, 2, -1, 3), (1.0, 1.0), log_levels=True),
    "saddle": Surface("saddle", lambda x, y: (x ** 2 - y ** 2) / 2 + y ** 4 / 4, (-2.0, 1e-3), (-2.5, 2.5, -1.6, 1.6),
                      (0.0, 1.0)),
}


def surface(name: str) -> Surface:
    if name not in SURFACES:
        raise SpecError("surface", name, "one of " + ", ".join(SURFACES))
    return SURFACES[name]


def path(spec: Spec, name: str, steps: int = 100, start: tuple[float, float] | None = None) -> pd.DataFrame:
    """The spec's optimizer run for `steps` steps from `start` (the surface's own by
    default): one row per point visited, with x, y, the loss there, the gradient norm
    and the length of the step that led there (a NaN loss ends the path early).

    >>> path(Spec(optimizer="adam", lr=0.1), "rosenbrock", steps=3).columns.tolist()   # doctest: +SKIP
    ['step', 'x', 'y', 'loss', 'grad_norm', 'step_size']
    """
    s = surface(name)
    if not (isinstance(steps, int) and 1 <= steps <= 100_000):
        raise SpecError("steps", steps, "a whole number from 1 to 100000")
    xy = torch.nn.Parameter(torch.tensor(start or s.start, dtype=torch.float64, device=SURFACE_DEVICE))
    opt = build_optimizer(spec, [xy])
    rows, last = [], xy.detach().clone()
    for step in range(steps + 1):
        loss = s.f(xy[0], xy[1])
        opt.zero_grad()
        loss.backward()
        at = xy.detach()
        rows.append({"step": step, "x": float(at[0]), "y": float(at[1]), "loss": float(loss.detach()),
                     "grad_norm": float(xy.grad.norm()), "step_size": float((xy.detach() - last).norm())})
        if not torch.isfinite(loss) or step == steps:
            break
        last = xy.detach().clone()
        opt.step()
    return pd.DataFrame(rows)


def newton_path(name: str, steps: int = 5, start: tuple[float, float] | None = None) -> pd.DataFrame:
    """Newton's method, w <- w - H⁻¹ g, with the exact Hessian: on a quadratic it lands
    on the minimum in one step, whatever the conditioning."""
    s = surface(name)
    w = torch.tensor(start or s.start, dtype=torch.float64, device=SURFACE_DEVICE)
    rows = []

    def f(v: torch.Tensor) -> torch.Tensor:
        return s.f(v[0], v[1])

    for step in range(steps + 1):
        g = torch.autograd.functional.jacobian(f, w)
        rows.append({"step": step, "x": float(w[0]), "y": float(w[1]), "loss": float(f(w)),
                     "grad_norm": float(g.norm())})
        if step == steps:
            break
        w = w - torch.linalg.solve(torch.autograd.functional.hessian(f, w), g)
    return pd.DataFrame(rows)


def _contours(ax, s: Surface) -> None:
    x0, x1, y0, y1 = s.extent
    gx, gy = torch.meshgrid(torch.linspace(x0, x1, 200, device=SURFACE_DEVICE),
                            torch.linspace(y0, y1, 200, device=SURFACE_DEVICE), indexing="xy")
    z = s.f(gx, gy)
    ax.contour(gx, gy, torch.log10(z + 1e-3) if s.log_levels else z, levels=20, cmap="Greys", linewidths=0.6)
    ax.plot(*s.minimum, "*", color="black", ms=12, zorder=6)
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="x", ylabel="y")


def draw(name: str, paths: dict[str, pd.DataFrame], ax=None, title: str | None = None) -> Figure:
    """Contour lines of the surface with each path drawn over them (start: circle,
    minimum: star). Axes are fixed to the surface's extent, so paths that leave it
    show as lines running off the edge. Earlier paths are drawn wider, so one that a
    later path runs along still shows as a band around it.

    >>> fig = draw("bowl", {"SGD": path(Spec(optimizer="sgd", lr=0.03), "bowl", 60)})   # doctest: +SKIP
    """
    from .. import plots
    s = surface(name)
    fig, (ax,) = plots.figure(width=6.0, height=4.2) if ax is None else (ax.figure, [ax])
    _contours(ax, s)
    widths = [3.6 - 2.4 * i / (len(paths) - 1) for i in range(len(paths))] if len(paths) > 1 else [1.4]
    for i, ((label, p), lw) in enumerate(zip(paths.items(), widths)):
        line, = ax.plot(p["x"], p["y"], ls=plots.LINESTYLES[i % len(plots.LINESTYLES)], lw=lw, marker=".",
                        ms=3, label=label)
        ax.plot(p["x"].iloc[0], p["y"].iloc[0], "o", color=line.get_color(), ms=6)
    ax.set_title(title or s.name)
    if paths:
        ax.legend(fontsize=8, loc="best", framealpha=0.85)
    return fig


def draw_each(name: str, paths: dict[str, pd.DataFrame], title: str, cols: int = 4) -> Figure:
    """One small panel per path on the surface, the other paths faint grey behind it:
    for many paths that follow the same valley and would hide each other in one panel.

    >>> fig = draw_each("rosenbrock", rosen, title="Rosenbrock, 1000 steps")   # doctest: +SKIP
    """
    import matplotlib.pyplot as plt
    s = surface(name)
    rows = -(-len(paths) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.9 * rows), squeeze=False, sharex=True, sharey=True)
    plt.close(fig)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (ax, (label, p)) in enumerate(zip(axes.flat, paths.items())):
        _contours(ax, s)
        for other, q in paths.items():
            if other != label:
                ax.plot(q["x"], q["y"], color="0.6", lw=0.8, alpha=0.5)
        color = colors[i % len(colors)]
        ax.plot(p["x"], p["y"], color=color, lw=1.6, marker=".", ms=2)
        ax.plot(p["x"].iloc[0], p["y"].iloc[0], "o", color=color, ms=5)
        last = p["loss"].iloc[-1]
        ax.set_title(f"{label}: loss {last:.2g}" if math.isfinite(last) else f"{label}: diverged", fontsize=9)
        ax.label_outer()
    for ax in axes.flat[len(paths):]:
        ax.set_visible(False)
    fig.suptitle(f"{title} (grey: the other paths)")
    fig.tight_layout()
    return fig


def steps_to_reach(p: pd.DataFrame, loss: float) -> float:
    """The first step at which the path's loss is below `loss` (inf if never)."""
    below = p.index[p["loss"] < loss]
    return float(p.loc[below[0], "step"]) if len(below) else float("inf")


def timed(fn: Callable[[], pd.DataFrame]) -> tuple[pd.DataFrame, float]:
    """(fn(), seconds it took)."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


# --- A second-order method: L-BFGS against gradient descent ------------------------------

METHODS = ("gd", "lbfgs")


def fit_logistic(x: torch.Tensor, y: torch.Tensor, method: str, iterations: int, lr: float = 1.0,
                 l2: float = 1e-4, seed: int = 0) -> pd.DataFrame:
    """Full-batch logistic regression on (x, y) by gradient descent ("gd") or L-BFGS.

    One row per iteration: the loss (cross-entropy plus l2/2 * ||W||²) after it, the
    loss-and-gradient evaluations used so far and the seconds so far. For L-BFGS, `lr`
    scales its quasi-Newton step (1, the default, is the full step).
    """
    if method not in METHODS:
        raise ValueError(f"method: {method!r} is not allowed; expected one of {', '.join(METHODS)}")
    if not (isinstance(iterations, int) and iterations >= 1):
        raise ValueError(f"iterations: {iterations!r} is not allowed; expected a whole number >= 1")
    g = torch.Generator().manual_seed(seed)
    x = x.flatten(1).double()
    classes = int(y.max()) + 1
    # Drawn on the CPU generator, so a seed gives the same start on every device.
    w = (torch.randn(x.shape[1], classes, generator=g, dtype=torch.float64, device="cpu") * 0.01)
    w = w.to(x.device).requires_grad_(True)
    b = torch.zeros(classes, dtype=torch.float64, device=x.device, requires_grad=True)
    evals = 0

    def closure() -> torch.Tensor:
        nonlocal evals
        evals += 1
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + l2 / 2 * (w * w).sum()
        loss.backward()
        return loss

    # torch's default L-BFGS: unit steps along the quasi-Newton direction, no line search
    # (one iteration per step() call, so the table has a row per iteration).
    opt = (torch.optim.LBFGS([w, b], lr=lr, max_iter=1, history_size=10)
           if method == "lbfgs" else torch.optim.SGD([w, b], lr=lr))
    rows, start = [], time.perf_counter()
    for it in range(1, iterations + 1):
        opt.step(closure)
        with torch.no_grad():
            loss = float(F.cross_entropy(x @ w + b, y) + l2 / 2 * (w * w).sum())
        rows.append({"iteration": it, "loss": loss, "evaluations": evals, "seconds": time.perf_counter() - start})
    return pd.DataFrame(rows)
