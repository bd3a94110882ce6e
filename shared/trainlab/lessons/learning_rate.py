"""The learning-rate range test, in fastai's form (`lr_find`, Howard & Gugger), built on
Smith's idea (Smith 2017, "Cyclical Learning Rates for Training Neural Networks").

Smith's own test raises the LR linearly over a few epochs and reads accuracy: where
it starts to rise and where it falls off bound a cyclical schedule. The form here is
fastai's: train from the spec's initialisation while the LR grows exponentially from
`start` to `end`, one value per step; record the loss; stop once the smoothed loss
passes `stop_factor` times its minimum (or goes NaN).

Where the smoothed loss bottoms out is about the largest LR that still trains.
`suggestion` is a quarter of the minimum-loss LR, after Smith's rule that a
schedule's lower bound is a third to a quarter of its upper bound. Measured on MNIST
MLPs with SGD + momentum 0.9 (5 seeds, two data sizes), it fell within 0.6x-1.9x of
the best LR of a constant-LR sweep, where "an order of magnitude below the minimum"
fell 2.4x-4x too low and the steepest slope of the curve was pulled down by the
early steps, when the loss falls at any LR because the network is learning.

Also here: `schedule_view`, the Explore panel of notebook 07 (a schedule's LR at
every step, and the run it produces).

>>> result = lr_find(Spec(optimizer="sgd", momentum=0.9, subset=5000))   # doctest: +SKIP
>>> result.suggestion                                                      # doctest: +SKIP
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from .. import plots
from ..callbacks import Callback
from ..optim import set_lr
from ..spec import Spec
from ..sweeps import run_cached

SUGGESTED_FRACTION = 0.25


@dataclass
class RangeTest:
    """The curve (`lr`, `loss`, `smoothed`) and the LRs read off it."""

    curve: pd.DataFrame
    suggestion: float   # a quarter of min_loss_lr
    min_loss_lr: float  # where the smoothed loss is lowest
    spec: Spec


class _ExponentialLR(Callback):
    def __init__(self, start: float, end: float, steps: int, beta: float, stop_factor: float):
        self.lrs = np.geomspace(start, end, steps)
        self.beta, self.stop_factor = beta, stop_factor
        self.rows: list[dict] = []
        self.avg, self.best = 0.0, math.inf

    def before_step(self, learner) -> None:
        learner.lr = float(self.lrs[learner.step])
        set_lr(learner.optimizer, learner.lr)

    def after_step(self, learner) -> None:
        i, loss = learner.step - 1, learner.step_rows[-1]["loss"]
        # Exponential moving average with bias correction, as in Adam.
        self.avg = self.beta * self.avg + (1 - self.beta) * loss
        smoothed = self.avg / (1 - self.beta ** (i + 1))
        self.rows.append({"lr": float(self.lrs[i]), "loss": loss, "smoothed": smoothed})
        self.best = min(self.best, smoothed)
        if not math.isfinite(smoothed) or smoothed > self.stop_factor * self.best or i + 1 >= len(self.lrs):
            learner.stop = True


def quadratic_steps(lr: float, curvature: float = 1.0, steps: int = 6) -> list[float]:
    """w after each of `steps` steps of torch's SGD on the loss curvature·w²/2 from
    w = 1 (float32): every step multiplies w by (1 − lr·curvature), so it converges for
    lr below 2/curvature and grows without bound above it.

    >>> quadratic_steps(1.5, steps=3)
    [-0.5, 0.25, -0.125]
    """
    w = torch.ones(1, requires_grad=True, device="cpu")   # one number: the CPU on purpose
    opt = torch.optim.SGD([w], lr=lr)
    path = []
    for _ in range(steps):
        opt.zero_grad()
        (curvature * w ** 2 / 2).sum().backward()
        opt.step()
        path.append(w.item())
    return path


def lr_find(spec: Spec, start: float = 1e-5, end: float = 10.0, steps: int = 100,
            beta: float = 0.9, stop_factor: float = 4.0) -> RangeTest:
    """Run the range test from `spec` (its optimizer, batch size, data and seed)."""
    if not (0 < start < end):
        raise ValueError(f"start, end: {start!r}, {end!r} are not allowed; expected 0 < start < end")
    if steps < 10:
        raise ValueError(f"steps: {steps!r} is not allowed; expected at least 10")
    from ..train import fit
    epochs = math.ceil(steps / spec.steps_per_epoch)
    probe = _ExponentialLR(start, end, steps, beta, stop_factor)
    fit(spec.replace(epochs=epochs, schedule="constant", warmup_steps=0), callbacks=[probe], progress=False)
    curve = pd.DataFrame(probe.rows)
    lowest = min_loss_lr(curve)
    return RangeTest(curve, lowest * SUGGESTED_FRACTION, lowest, spec)


def min_loss_lr(curve: pd.DataFrame) -> float:
    finite = curve[np.isfinite(curve["smoothed"])]
    return float(finite["lr"].loc[finite["smoothed"].idxmin()])


def schedule_view(spec: Spec) -> Figure:
    """The LR the schedule gives at every step, and the run it produces (cached)."""
    return plots.run_panel(run_cached(spec), f"{spec.schedule} from lr {spec.lr:g}", show_schedule=True)
