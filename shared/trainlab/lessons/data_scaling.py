"""Data scaling: how one-signed the first layer's gradient is (notebook 03, section 3)
and the Explore panel on the diabetes regression set.

Raw diabetes features range from 1..2 (sex) to 62..301 (serum cholesterol), and the
target from 25 to 346. A network's first step sees errors the size of the target,
so unscaled targets scale every gradient by about the target's spread; unscaled
features do the same to the first layer's weights.

>>> fig = scaling_view(Spec(dataset="diabetes", val_fraction=0.2, target_scale="none", lr=0.01))  # doctest: +SKIP
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from .. import plots
from ..data import probe_batch
from ..models import fresh_model
from ..spec import Spec, SpecError
from ..sweeps import run_cached
from ..tabular import mean_predictor_rmse

RMSE_RANGE = (30, 250)       # diabetes targets: a good fit is near 55, the mean predictor near 77
GRAD_RANGE = (1e-2, 1e8)     # global gradient norm per step: standardised ~10, raw targets ~1e3 and up


def sign_agreement(spec: Spec) -> float:
    """How one-signed each first-layer unit's weight gradient is on one real batch,
    averaged over the units: |sum of signs| / nonzero entries, 1 when every weight of
    the unit would move the same way, near 0 when signs are mixed evenly.

    LeCun et al. (1998, section 4.3): on one example the gradient of a unit's weights
    is its error signal times the input, so all-positive inputs give it one sign; a
    batch mixes examples, and this measures how much of that survives.

    >>> sign_agreement(Spec(scale="divide"))   # doctest: +SKIP
    0.69
    """
    model = fresh_model(spec)
    x, y, _ = probe_batch(spec)
    F.cross_entropy(model(x), y).backward()
    first = next(m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))
    signs = torch.sign(first.weight.grad.flatten(1))
    return float((signs.sum(1).abs() / (signs != 0).sum(1).clamp_min(1)).mean())


def scaling_view(spec: Spec) -> Figure:
    """The spec's diabetes run (cached): validation RMSE per epoch against the
    mean predictor's, and the gradient norm of every step on a log scale."""
    if spec.task != "regression":
        raise SpecError("dataset", spec.dataset, "a regression set ('diabetes') for the scaling panel")
    run = run_cached(spec)
    fig, axes = plots.figure(ncols=2, width=4.6)
    label = f"inputs {spec.scale}, targets {spec.target_scale}"
    plots.curves({label: run}, "val_rmse", source="epochs", ax=axes[0], ylim=RMSE_RANGE,
                 title="validation RMSE (target units)")
    axes[0].axhline(mean_predictor_rmse(spec), color="grey", ls=":", lw=1, label="predict the mean")
    axes[0].legend(fontsize=8, loc="upper right")
    plots.curves({label: run}, "grad_norm", ax=axes[1], logy=True, ylim=GRAD_RANGE, title="gradient norm per step")
    if axes[1].get_legend():
        axes[1].get_legend().remove()
    axes[0].set_xlim(0.5, spec.epochs + 0.5)  # the whole budget, so a diverged run shows how early it stopped
    axes[1].set_xlim(0, spec.total_steps)
    status = "diverged" if run.diverged else f"val RMSE {run.final['val_rmse']:.0f}"
    fig.suptitle(f"diabetes, lr {spec.lr:g}: {status}")
    fig.tight_layout()
    return fig
