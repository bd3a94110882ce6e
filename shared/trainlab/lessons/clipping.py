"""Gradient clipping, measured: what it does to one real gradient, and the panel of notebook 09.

Clipping by norm (Pascanu, Mikolov & Bengio 2013) rescales the whole gradient, so
its direction is kept; clipping by value clamps each element on its own, so large
elements shrink more than small ones and the direction turns. `clip_angle` measures
that turn, in degrees, between the gradient of a batch and its clipped copy.

>>> g = torch.tensor([3.0, 0.1])
>>> round(angle_between(g, clip_vector(g, max_norm=1.0)), 6)
0.0
>>> round(angle_between(g, clip_vector(g, max_value=0.1)), 1)
43.1
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from matplotlib.figure import Figure
from torch import nn

from .. import plots
from ..device import to_model
from ..optim import clip_gradients
from ..run import Run
from ..spec import Spec
from ..sweeps import run_cached

GRAD_RANGE = (1e-2, 1e7)   # unclipped global gradient norm per step: well-scaled runs ~1-10, large init ~1e3 and up
RMSE_RANGE = (30, 250)     # diabetes val RMSE: a good fit near 55, the mean predictor near 77


def fit_and_catch(spec: Spec) -> tuple[Run, list[str]]:
    """Train `spec` (uncached) and return the run with the warnings the harness raised
    while training it, which are also printed as a sentence ("the harness warned:
    ..."), not as a warning line that reads like an error: the notebook shows them,
    the claims count them.

    >>> run, warned = fit_and_catch(spec.replace(clip_norm=1.0))   # doctest: +SKIP
    the harness warned: 100% of steps were clipped ...
    """
    from ..train import fit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = fit(spec, progress=False)
    for w in caught:
        print(f"the harness warned: {w.message}")
    return run, [str(w.message) for w in caught]


def tail_norm(run: Run) -> float:
    """Median unclipped gradient norm over the last quarter of the run's steps: where
    the gradient's scale ended up, not where it started.

    >>> tail_norm(run) / tail_norm(healthy)   # doctest: +SKIP
    """
    norms = run.steps["grad_norm"].dropna()
    if norms.empty:
        raise ValueError("run.steps has no logged grad_norm: the run recorded no steps")
    return float(norms.iloc[3 * len(norms) // 4:].median())


def flat_gradient(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The gradient of `loss_fn(model(x), y)` with respect to every parameter, as one flat vector."""
    model.zero_grad(set_to_none=True)
    x, y = to_model(model, x, y)
    loss_fn(model(x), y).backward()
    grads = [p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    return torch.cat(grads).detach()


def clip_vector(g: torch.Tensor, max_norm: float | None = None, max_value: float | None = None) -> torch.Tensor:
    """A clipped copy of the flat gradient `g`, as the harness's Clip callback clips:
    by global norm first (rescale when ||g|| > max_norm), then by value (clamp each
    element to [-max_value, max_value]). None leaves that kind off."""
    out = g.clone()
    clip_gradients([out], max_norm, max_value)
    return out


def angle_between(a: torch.Tensor, b: torch.Tensor) -> float:
    """The angle between two vectors, in degrees (computed in float64)."""
    a, b = a.double(), b.double()
    cos = float((a @ b) / (a.norm() * b.norm()))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def clip_angle(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor,
               max_norm: float | None = None, max_value: float | None = None) -> dict[str, float]:
    """On one batch: the gradient's norm, the fraction of its elements a value clip
    changes, and the angle (degrees) between the gradient and its clipped copy."""
    g = flat_gradient(model, loss_fn, x, y)
    c = clip_vector(g, max_norm, max_value)
    return {"grad_norm": float(g.norm()), "clipped_norm": float(c.norm()),
            "elements_clipped": float((c != g).double().mean()), "angle_deg": angle_between(g, c)}


def clipping_view(spec: Spec) -> Figure:
    """The spec's run (cached): the validation metric per epoch, and the unclipped
    gradient norm of every step on a log scale, with the clip_norm threshold drawn
    across it. The title gives the outcome and the fraction of clipped steps."""
    with warnings.catch_warnings():  # the title reports the clipped share the warning would
        warnings.simplefilter("ignore")
        run = run_cached(spec)
    fig, axes = plots.figure(ncols=2, width=4.6)
    label = f"lr {spec.lr:g}, clip_norm {spec.clip_norm}, clip_value {spec.clip_value}"
    if spec.task == "regression":
        plots.curves({label: run}, "val_rmse", source="epochs", ax=axes[0], ylim=RMSE_RANGE,
                     title="validation RMSE (target units)")
    else:
        plots.curves({label: run}, "val_acc", source="epochs", ax=axes[0], ylim=(0, 1), title="validation accuracy")
    plots.curves({label: run}, "grad_norm", ax=axes[1], logy=True, ylim=GRAD_RANGE,
                 title="unclipped gradient norm per step")
    if spec.clip_norm is not None:
        axes[1].axhline(spec.clip_norm, color="red", ls="--", lw=1, label=f"clip_norm {spec.clip_norm:g}")
    for ax in axes:
        if ax.get_legend():
            ax.get_legend().remove()
    axes[0].set_xlim(0.5, spec.epochs + 0.5)
    axes[1].set_xlim(0, spec.total_steps)
    clipping = run.extra.get("clipping", {})
    fraction = clipping.get("clipped_fraction")
    clipped = "no clipping" if fraction is None else f"{fraction:.0%} of steps clipped"
    if run.diverged:
        status = f"diverged at step {len(run.steps)}"
    elif spec.task == "regression":
        status = f"val RMSE {run.final['val_rmse']:.0f}"
    else:
        status = f"val acc {run.final['val_acc']:.3f}"
    fig.suptitle(f"{spec.dataset}, lr {spec.lr:g}: {status}; {clipped}")
    fig.tight_layout()
    return fig
