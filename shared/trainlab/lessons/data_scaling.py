"""Data scaling on the diabetes regression set: the Explore panel of notebook 03.

Raw diabetes features range from 1..2 (sex) to 62..301 (serum cholesterol), and the
target from 25 to 346. A network's first step sees errors the size of the target,
so unscaled targets scale every gradient by about the target's spread; unscaled
features do the same to the first layer's weights.

>>> fig = scaling_view(Spec(dataset="diabetes", val_fraction=0.2, target_scale="none", lr=0.01))  # doctest: +SKIP
"""
from __future__ import annotations

from matplotlib.figure import Figure

from .. import plots
from ..spec import Spec, SpecError
from ..sweeps import run_cached
from ..tabular import mean_predictor_rmse

RMSE_RANGE = (30, 250)       # diabetes targets: a good fit is near 55, the mean predictor near 77
GRAD_RANGE = (1e-2, 1e8)     # global gradient norm per step: standardised ~10, raw targets ~1e3 and up


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
