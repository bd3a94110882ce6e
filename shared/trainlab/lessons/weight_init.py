"""Weight initialisation (notebook 04): activation spread and gradient size per layer
of a freshly initialised network, and the Explore panel behind its sliders.

The numbers come from `trainlab.probes.init_stats` (the spec's fresh model on a
real batch); this module draws them on fixed axes, so a slider's move shows as a
move of the curve, not of the axis.

>>> fig = init_view(Spec(depth=20, init="normal", init_std=1.0))   # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import torch
from matplotlib.figure import Figure

from .. import plots
from ..probes import init_stats
from ..spec import Spec

INIT_RANGE = (1e-20, 1e20)   # per-layer statistics: wide enough for vanishing and exploding signals


def init_view(spec: Spec) -> Figure:
    """Activation spread and gradient norm per layer at initialisation."""
    stats = init_stats(spec)
    fig, axes = plots.figure(ncols=2, width=4.6)
    label = f"{spec.init} + {spec.activation}"
    plots.layer_profile({label: stats}, "act_std", ax=axes[0], title="activation std (forward)", ylim=INIT_RANGE)
    plots.layer_profile({label: stats}, "grad_norm", ax=axes[1], title="weight gradient norm (backward)",
                        ylim=INIT_RANGE)
    fig.suptitle(f"at initialisation, depth {spec.depth}")
    fig.tight_layout()
    return fig


def signal_norms(n: int, stds: Mapping[str, float], seed: int, matrices: int = 50, every: int = 10) -> pd.DataFrame:
    """The norm of a signal of norm 1 sent through `matrices` random n × n matrices with
    N(0, std²) entries, after every `every`-th one: one row per std (labelled by its
    key), all drawn in order from one generator seeded with `seed`. Each matrix scales
    the norm by about std·√n, so only std = 1/√n keeps it of order 1.

    >>> signal_norms(256, {"std 1/√256": 256 ** -0.5}, seed=0).shape
    (1, 5)
    """
    torch.manual_seed(seed)
    rows = {}
    for label, std in stds.items():
        h = torch.ones(n, device="cpu") / n ** 0.5   # a plain-torch demo: the CPU on purpose
        after = []
        for _ in range(matrices):
            h = (std * torch.randn(n, n, device="cpu")) @ h
            after.append(h.norm().item())
        rows[label] = after[every - 1::every]
    return pd.DataFrame(rows, index=[f"after {k}" for k in range(every, matrices + 1, every)]).T.rename_axis("entries")
