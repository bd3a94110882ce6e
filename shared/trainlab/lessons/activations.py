"""Activation functions at initialisation: each activation with the init it is usually
paired with, the fraction of hidden units that are dead or saturated, the signs of a
layer's weight gradients, and the view behind notebook 05's sliders.

Almost everything here works on a freshly initialised model and one real batch, so it
needs no training and answers at once; `trained_dead_fraction` counts the dead units
a finished run's model is left with, on the same batch.

>>> spec = paired(Spec(activation="sigmoid", depth=10))   # sigmoid with Xavier init
>>> model, x, y = init_model(spec)                        # doctest: +SKIP
>>> one_sign_fraction(model, x, y, layer=2, batch_size=64)  # doctest: +SKIP
"""
from __future__ import annotations

import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from .. import plots
from ..data import probe_batch
from ..device import to_model
from ..measures import _hidden, gradient_growth
from ..models import ACTIVATION_MODULES
from ..probes import DEAD_WHEN_NONPOSITIVE, fresh_probe, layer_stats, weight_layers
from ..run import Run
from ..spec import Spec

# The init each activation is usually trained with: Xavier (Glorot & Bengio 2010) for
# the S-shaped ones, He (He et al. 2015) for ReLU and its relatives, LeCun normal for
# SELU (Klambauer et al. 2017 give it as the init that keeps SELU self-normalising).
PAIRED_INIT = {
    "relu": "kaiming_normal", "leaky_relu": "kaiming_normal", "elu": "kaiming_normal",
    "gelu": "kaiming_normal", "selu": "lecun_normal", "tanh": "xavier_normal",
    "sigmoid": "xavier_normal", "linear": "xavier_normal",
}
GRAD_RANGE = (1e-20, 1e4)   # weight-gradient norms per layer: room for a sigmoid net 30 layers deep
MEAN_RANGE = (-1.1, 3.1)    # mean activations: tanh near 0, sigmoid near 0.5, ReLU with a bias above


def plot_functions(names: tuple[str, ...] = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "selu"),
                   low: float = -4.0, high: float = 4.0) -> Figure:
    """Each activation (as the models build it) and its slope, from `low` to `high`:
    where it saturates (slope near 0), where it is linear (slope 1), and what it does
    with negative inputs.

    >>> fig = plot_functions(("relu", "tanh"))
    >>> [ax.get_title() for ax in fig.axes]
    ['the activation f(z)', "its slope f'(z)"]
    """
    z = torch.linspace(low, high, 401, device="cpu", requires_grad=True)  # a plot: drawn on the CPU
    fig, (value, slope) = plots.figure(ncols=2, width=4.6)
    for name in names:
        f = ACTIVATION_MODULES[name]()
        out = f(z)
        (grad,) = torch.autograd.grad(out.sum(), z)
        ls = plots.LINESTYLES[len(value.lines) % len(plots.LINESTYLES)]
        value.plot(z.detach().cpu().numpy(), out.detach().cpu().numpy(), ls=ls, label=name)
        slope.plot(z.detach().cpu().numpy(), grad.cpu().numpy(), ls=ls, label=name)
    value.set(title="the activation f(z)", xlabel="input z", ylim=(-2.0, 4.0))
    slope.set(title="its slope f'(z)", xlabel="input z", ylim=(-0.2, 1.9))
    for ax in (value, slope):
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
    slope.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def paired(spec: Spec) -> Spec:
    """The spec with the init its activation is usually paired with (`PAIRED_INIT`)."""
    return spec.replace(init=PAIRED_INIT[spec.activation])


# The model and batch `probes.init_stats` measures, under the name notebook 05 uses.
init_model = fresh_probe


def hidden_mean(stats: pd.DataFrame, column: str) -> float:
    """A `layer_stats` column averaged over the hidden layers. Every hidden layer of a
    trainlab MLP has `width` units, so for `dead_frac` this is the fraction of all hidden
    units that are dead, and for `saturated_frac` the fraction of all (unit, example)
    pairs that are saturated."""
    return float(_hidden(stats)[column].mean())


def dead_fraction(model: nn.Module, x: torch.Tensor, activation: str) -> float:
    """The fraction of all hidden units of `model` (a trainlab MLP with `activation`
    after every hidden layer) that are never positive on the batch x: the units that
    pass no gradient to their weights for any of these examples. One forward pass,
    without gradients; NaN for an activation that has no dead units (tanh, sigmoid).

    >>> model, x, _ = init_model(Spec(activation="relu", depth=10))   # doctest: +SKIP
    >>> dead_fraction(model, x, "relu")                                # doctest: +SKIP
    0.06
    """
    return hidden_mean(layer_stats(model, to_model(model, x), activation), "dead_frac")


def trained_stats(run: Run, x: torch.Tensor | None = None) -> pd.DataFrame:
    """`layer_stats` of the run's trained model, forward only (so no gradient norms), on
    x or, by default, on the batch `init_stats` measures the freshly initialised model
    on (`probe_batch(run.spec)`): the counts before and after training then compare on
    the same images. The run needs its model: `run_cached(spec, model=True)` or `fit`.

    >>> run = run_cached(paired(Spec(activation="relu", depth=10, lr=0.07)), model=True)  # doctest: +SKIP
    >>> trained_stats(run)["dead_frac"]                                                  # doctest: +SKIP
    """
    if run.model is None:
        raise ValueError("run.model is None: train the run with run_cached(spec, model=True) or fit(spec) "
                         "to measure its trained model")
    if x is None:
        x, _, _ = probe_batch(run.spec)
    return layer_stats(run.model, to_model(run.model, x), run.spec.activation, depth=run.spec.depth)


def trained_dead_fraction(run: Run, x: torch.Tensor | None = None) -> float:
    """The fraction of all hidden units of the run's trained model that are never
    positive on x (by default the `init_stats` batch; see `trained_stats`).

    >>> run = run_cached(paired(Spec(activation="relu", depth=10, lr=0.07)), model=True)  # doctest: +SKIP
    >>> trained_dead_fraction(run), hidden_mean(init_stats(run.spec), "dead_frac")        # doctest: +SKIP
    (0.3, 0.06)
    """
    return hidden_mean(trained_stats(run, x), "dead_frac")


def rows_of_one_sign(grad: torch.Tensor) -> float:
    """The fraction of a weight gradient's rows (one row per unit: the gradients of its
    incoming weights) whose entries all share one sign; zeros count as either sign.

    >>> rows_of_one_sign(torch.tensor([[1.0, 2.0], [-1.0, 0.0], [1.0, -1.0], [0.5, 0.5]]))
    0.75
    """
    g = grad.detach().reshape(grad.shape[0], -1)
    same = (g >= 0).all(dim=1) | (g <= 0).all(dim=1)
    return float(same.float().mean())


def one_sign_fraction(model: nn.Module, x: torch.Tensor, y: torch.Tensor, layer: int = 2,
                      batch_size: int = 64) -> float:
    """For the weights of hidden layer `layer` (fed by the activations of layer - 1):
    the fraction of its units whose incoming weight gradients all share one sign,
    averaged over the consecutive batches of `batch_size` examples in x (batch_size=1:
    one example at a time). Nothing is updated.

    Each entry is dL/dw_ij = sum over the batch of delta_i * a_j. When every input a_j
    is positive (sigmoid outputs), a single example gives every entry of row i the sign
    of delta_i, so the fraction is 1; a batch sums examples with different deltas, which
    mixes the signs again. Zero-centred inputs (tanh) mix the signs even for one example.
    """
    if batch_size < 1 or batch_size > len(x):
        raise ValueError(f"batch_size: {batch_size} is not allowed; expected 1 to {len(x)} (the examples in x)")
    depth = sum(n.startswith("act") for n, _ in model.named_children())
    weights = weight_layers(model, depth)
    if not 2 <= layer <= depth + 1:
        raise ValueError(f"layer: {layer} is not allowed; expected 2 to {depth + 1} (a layer fed by a hidden "
                         f"layer's activations; {depth + 1} is the output layer)")
    w = weights[layer].weight
    x, y = to_model(model, x, y)
    was_training = model.training
    model.train()
    fractions = []
    try:
        for i in range(0, len(x) - batch_size + 1, batch_size):
            loss = nn.functional.cross_entropy(model(x[i:i + batch_size]), y[i:i + batch_size])
            (grad,) = torch.autograd.grad(loss, [w])
            fractions.append(rows_of_one_sign(grad))
    finally:
        model.train(was_training)
    return sum(fractions) / len(fractions)


def init_summary(spec: Spec) -> dict[str, float]:
    """One row of numbers about the spec's model at initialisation, on a real batch:
    the gradient norm of the first hidden layer's weights over the last's, the mean
    activation, and the dead and saturated fractions over all hidden layers."""
    model, x, y = init_model(spec)
    stats = layer_stats(model, x, spec.activation, y=y, depth=spec.depth)
    return {"grad first / grad last": gradient_growth(stats),
            "mean activation": hidden_mean(stats, "act_mean"),
            "dead units": hidden_mean(stats, "dead_frac"),
            "saturated": hidden_mean(stats, "saturated_frac")}


def activation_view(spec: Spec) -> Figure:
    """Three panels at initialisation, for the spec's activation with its paired init:
    the mean activation of each hidden layer, the weight-gradient norm of every layer,
    and the fraction of dead units (ReLU family) or of saturated units (tanh,
    sigmoid) per hidden layer. Axes are fixed so slider moves compare by eye."""
    spec = paired(spec)
    model, x, y = init_model(spec)
    stats = layer_stats(model, x, spec.activation, y=y, depth=spec.depth)
    label = f"{spec.activation} + {spec.init}"
    fig, axes = plots.figure(ncols=3, width=4.2)
    plots.layer_profile({label: stats}, "act_mean", logy=False, ax=axes[0], ylim=MEAN_RANGE,
                        title="mean activation")
    axes[0].axhline(0, color="grey", lw=0.6)
    plots.layer_profile({label: stats}, "grad_norm", ax=axes[1], ylim=GRAD_RANGE,
                        title="weight gradient norm")
    if spec.activation in DEAD_WHEN_NONPOSITIVE:
        column, what = "dead_frac", "dead units (never on)"
    elif spec.activation in ("tanh", "sigmoid"):
        column, what = "saturated_frac", "saturated outputs"
    else:
        column, what = None, f"no dead or saturated units for {spec.activation}"
    if column is not None:
        plots.layer_profile({label: stats}, column, logy=False, ax=axes[2], ylim=(-0.02, 1.02), title=what)
    else:
        axes[2].set(title=what, xlabel="layer", ylim=(-0.02, 1.02))
    for ax in axes:  # one net per figure: the title names it
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    ratio = gradient_growth(stats)
    fig.suptitle(f"{label}, depth {spec.depth}, bias {spec.bias_init:g}, at initialisation: "
                 f"grad first / last hidden layer = {ratio:.2g}")
    fig.tight_layout()
    return fig


__all__ = [
    "PAIRED_INIT",
    "activation_view",
    "dead_fraction",
    "hidden_mean",
    "init_model",
    "init_summary",
    "one_sign_fraction",
    "paired",
    "rows_of_one_sign",
    "trained_dead_fraction",
    "trained_stats",
]
