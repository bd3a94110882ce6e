"""Optimizers on 2-D test surfaces: the paths they take, drawn over contour lines.

The optimizer is built by `build_optimizer` from a spec, exactly as for a real run,
so `Spec(optimizer="sgd", lr=0.03, momentum=0.9)` means the same on a surface as on
MNIST. The LR stays constant here (a surface has no epochs to schedule over).

Surfaces:
- `bowl`: (x² + 25 y²) / 2, ill-conditioned: 25x steeper across than along. Plain
  SGD is stable only for lr < 2/25 and then crawls along x.
- `rosenbrock`: (1 - x)² + 100 (y - x²)², a curved, flat-bottomed valley with its
  minimum at (1, 1) (Rosenbrock 1960).
- `saddle`: (x² - y²) / 2 + y⁴ / 4, a saddle at the origin between two minima at
  (0, ±1). Started just off the ridge (y = 0.001), gradient descent leaves it only
  as fast as y grows, by a factor (1 + lr) per step.

>>> path(Spec(optimizer="sgd", lr=0.03, momentum=0.9), "bowl", steps=50).iloc[-1]["loss"] < 0.1   # doctest: +SKIP
True
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import pandas as pd
import torch
from matplotlib.figure import Figure

from .optim import build_optimizer
from .spec import Spec, SpecError


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
    xy = torch.nn.Parameter(torch.tensor(start or s.start, dtype=torch.float64))
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
    w = torch.tensor(start or s.start, dtype=torch.float64)
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


def draw(name: str, paths: dict[str, pd.DataFrame], ax=None, title: str | None = None) -> Figure:
    """Contour lines of the surface with each path drawn over them (start: circle,
    minimum: star). Axes are fixed to the surface's extent, so paths that leave it
    show as lines running off the edge."""
    from . import plots
    s = surface(name)
    fig, (ax,) = plots.figure(width=6.0, height=4.2) if ax is None else (ax.figure, [ax])
    x0, x1, y0, y1 = s.extent
    gx, gy = torch.meshgrid(torch.linspace(x0, x1, 200), torch.linspace(y0, y1, 200), indexing="xy")
    z = s.f(gx, gy)
    if s.log_levels:
        ax.contour(gx, gy, torch.log10(z + 1e-3), levels=20, cmap="Greys", linewidths=0.6)
    else:
        ax.contour(gx, gy, z, levels=20, cmap="Greys", linewidths=0.6)
    for i, (label, p) in enumerate(paths.items()):
        line, = ax.plot(p["x"], p["y"], ls=plots.LINESTYLES[i % len(plots.LINESTYLES)], lw=1.4, marker=".",
                        ms=3, label=label)
        ax.plot(p["x"].iloc[0], p["y"].iloc[0], "o", color=line.get_color(), ms=6)
    ax.plot(*s.minimum, "*", color="black", ms=12)
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="x", ylabel="y", title=title or s.name)
    if paths:
        ax.legend(fontsize=8, loc="best", framealpha=0.85)
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
