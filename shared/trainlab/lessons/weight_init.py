"""Weight initialisation (notebook 04): activation spread and gradient size per layer
of a freshly initialised network, and the Explore panel behind its sliders.

The numbers come from `trainlab.probes.init_stats` (the spec's fresh model on a
real batch); this module draws them on fixed axes, so a slider's move shows as a
move of the curve, not of the axis.

>>> fig = init_view(Spec(depth=20, init="normal", init_std=1.0))   # doctest: +SKIP
"""
from __future__ import annotations

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
