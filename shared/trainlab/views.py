"""The functions behind the notebooks' sliders: each takes a spec and returns a Figure.

They are plain functions so the tests can call them with several values; training
views use `run_cached`, so a slider moved back to a point already seen answers at
once.

>>> fig = init_view(Spec(depth=20, init="normal", init_std=1.0))   # doctest: +SKIP
"""
from __future__ import annotations

import pandas as pd
import torch
from matplotlib.figure import Figure

from . import plots
from .data import load_data
from .models import build_model
from .probes import layer_stats
from .spec import Spec
from .sweeps import run_cached

PROBE_BATCH = 512
INIT_RANGE = (1e-20, 1e20)   # per-layer statistics: wide enough for vanishing and exploding signals
LOSS_RANGE = (1e-2, 1e1)     # cross-entropy from near-perfect to well above chance (ln 10 = 2.3)


def probe_batch(spec: Spec, n: int = PROBE_BATCH) -> tuple[torch.Tensor, torch.Tensor, int]:
    """`n` real training images (at least 20), scaled as the spec says, their labels and the class count."""
    data = load_data(spec.replace(subset=max(n, 20), val_fraction=0.0, batch_size=1))
    return data.train_x, data.train_y, data.num_classes


def init_stats(spec: Spec) -> pd.DataFrame:
    """`layer_stats` of the spec's freshly initialised model on a real batch: the
    forward activations and the backward gradient norms of every layer."""
    torch.manual_seed(spec.seed)
    x, y, classes = probe_batch(spec)
    model = build_model(spec, tuple(x.shape[1:]), classes)
    return layer_stats(model, x, spec.activation, y=y, depth=spec.depth)


def init_view(spec: Spec) -> Figure:
    """Activation spread and gradient norm per layer at initialisation."""
    stats = init_stats(spec)
    fig, axes = plots.figure(ncols=2, width=4.6)
    label = f"{spec.init} + {spec.activation}"
    # Fixed ranges, so a move of a slider shows as a move of the curve, not of the axis.
    plots.layer_profile({label: stats}, "act_std", ax=axes[0], title="activation std (forward)", ylim=INIT_RANGE)
    plots.layer_profile({label: stats}, "grad_norm", ax=axes[1], title="weight gradient norm (backward)",
                        ylim=INIT_RANGE)
    fig.suptitle(f"at initialisation, depth {spec.depth}")
    fig.tight_layout()
    return fig


def _run_panel(spec: Spec, title: str, show_schedule: bool = False) -> Figure:
    """The run of `spec` (cached): training loss and validation accuracy, with the
    LR schedule in front when asked."""
    run = run_cached(spec)
    fig, axes = plots.figure(ncols=3 if show_schedule else 2, width=3.6 if show_schedule else 4.6)
    if show_schedule:
        plots.schedules({spec.schedule: spec}, ax=axes.pop(0), x="epoch")
    # Fixed axes: accuracy on [0, 1] and the loss on one log range, so panels from two
    # slider positions can be compared by eye.
    plots.curves({"train (per step)": run}, "loss", smooth=max(spec.steps_per_epoch // 5, 1), ax=axes[0],
                 title="training loss", x="epoch", logy=True, ylim=LOSS_RANGE)
    plots.curves({"validation": run}, "val_acc", source="epochs", ax=axes[1], title="validation accuracy",
                 ylim=(0.0, 1.0))
    for ax in axes[-2:]:  # the whole run's length, even when it diverged in its first epoch
        ax.set_xlim(0, spec.epochs + 0.05)
    state = "diverged" if run.diverged else f"val acc {run.final['val_acc']:.3f}"
    fig.suptitle(f"{title}: {state}")
    fig.tight_layout()
    return fig


def batch_lr_view(spec: Spec) -> Figure:
    """Training curves of one (learning rate, batch size) point."""
    return _run_panel(spec, f"lr {spec.lr:g}, batch {spec.batch_size}")


def schedule_view(spec: Spec) -> Figure:
    """The LR the schedule gives at every step, and the run it produces."""
    return _run_panel(spec, f"{spec.schedule} from lr {spec.lr:g}", show_schedule=True)
