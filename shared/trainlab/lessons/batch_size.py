"""Batch size and learning rate (notebook 06): the Explore panel of one
(learning rate, batch size) point.

How noisy a minibatch gradient is, the lesson's measured quantity, is
`trainlab.measures.gradient_noise`.

>>> fig = batch_lr_view(Spec(lr=0.1, batch_size=32))   # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from matplotlib.figure import Figure

from .. import plots
from ..spec import Spec
from ..sweeps import run_cached


def batch_lr_view(spec: Spec) -> Figure:
    """Training curves of one (learning rate, batch size) point (cached)."""
    return plots.run_panel(run_cached(spec), f"lr {spec.lr:g}, batch {spec.batch_size}")


def batch_mean_spread(seed: int, sizes: Sequence[int] = (16, 64, 256), means: int = 1000) -> pd.DataFrame:
    """The spread of a batch mean: `means` batches of each size B, drawn with
    replacement from 100,000 draws of a skewed population of std about 1 (an
    exponential, like per-example losses), against 1/√B. The batches of each size are
    drawn in order from one generator seeded with `seed`, so adding a size at the end
    leaves the rows before it unchanged.

    >>> batch_mean_spread(0, sizes=(16,)).columns.tolist()
    ['batch size B', 'std of 1000 batch means', '1 / sqrt(B)']
    """
    torch.manual_seed(seed)
    population = torch.empty(100_000, device="cpu").exponential_()   # a plain-torch demo: CPU on purpose
    spread = [population[torch.randint(len(population), (means, B), device="cpu")].mean(dim=1).std().item() for B in sizes]
    return pd.DataFrame({"batch size B": list(sizes), f"std of {means} batch means": spread,
                         "1 / sqrt(B)": [B ** -0.5 for B in sizes]})
