"""Batch size and learning rate (notebook 06): the Explore panel of one
(learning rate, batch size) point.

How noisy a minibatch gradient is, the lesson's measured quantity, is
`trainlab.measures.gradient_noise`.

>>> fig = batch_lr_view(Spec(lr=0.1, batch_size=32))   # doctest: +SKIP
"""
from __future__ import annotations

from matplotlib.figure import Figure

from .. import plots
from ..spec import Spec
from ..sweeps import run_cached


def batch_lr_view(spec: Spec) -> Figure:
    """Training curves of one (learning rate, batch size) point (cached)."""
    return plots.run_panel(run_cached(spec), f"lr {spec.lr:g}, batch {spec.batch_size}")
