"""Optimizers on 2-D surfaces, Newton's method, and L-BFGS on logistic regression."""
from __future__ import annotations

import math

import pytest
import torch
from matplotlib.figure import Figure
from trainlab import Spec, SpecError
from trainlab.lessons.optimizers import (
    SURFACES,
    draw,
    fit_logistic,
    newton_path,
    path,
    steps_to_reach,
)


def test_a_path_follows_the_spec_optimizer_step_by_step():
    p = path(Spec(optimizer="sgd", lr=0.1), "bowl", steps=1)
    # one plain step from (-4, 1): the gradient is (x, 25 y) = (-4, 25)
    assert (p["x"].iloc[1], p["y"].iloc[1]) == pytest.approx((-4 + 0.4, 1 - 2.5))
    assert p["step_size"].iloc[1] == pytest.approx(math.hypot(0.4, 2.5))
    assert list(p.columns) == ["step", "x", "y", "loss", "grad_norm", "step_size"]


def test_momentum_crosses_the_ill_conditioned_bowl_in_fewer_steps():
    plain = steps_to_reach(path(Spec(optimizer="sgd", lr=0.03), "bowl", 300), 1e-3)
    heavy = steps_to_reach(path(Spec(optimizer="sgd", lr=0.03, momentum=0.9), "bowl", 300), 1e-3)
    assert heavy < plain / 1.5
    # the null: with momentum 0 the two are the same optimizer
    assert steps_to_reach(path(Spec(optimizer="sgd", lr=0.03, momentum=0.0), "bowl", 300), 1e-3) == plain


def test_gradient_descent_lingers_near_the_saddle_ridge():
    near = path(Spec(optimizer="sgd", lr=0.05), "saddle", 200)
    off = path(Spec(optimizer="sgd", lr=0.05), "saddle", 200, start=(-2.0, 0.5))
    assert (near["y"].abs() < 0.1).sum() > 5 * (off["y"].abs() < 0.1).sum()


def test_a_path_stops_when_the_loss_is_no_longer_finite():
    p = path(Spec(optimizer="sgd", lr=1.0), "rosenbrock", steps=500)
    assert len(p) < 501 and not math.isfinite(p["loss"].iloc[-1])


def test_newton_lands_on_the_quadratic_minimum_in_one_step():
    p = newton_path("bowl", steps=1)
    assert p["loss"].iloc[1] == pytest.approx(0.0, abs=1e-12)


def test_draw_and_bad_names():
    fig = draw("rosenbrock", {"adam": path(Spec(optimizer="adam", lr=0.05), "rosenbrock", 20)})
    assert isinstance(fig, Figure) and fig.axes[0].get_xlim() == SURFACES["rosenbrock"].extent[:2]
    with pytest.raises(SpecError, match="surface: 'ackley'"):
        path(Spec(), "ackley")
    with pytest.raises(SpecError, match="steps: 0"):
        path(Spec(), "bowl", steps=0)


def test_lbfgs_reaches_a_lower_loss_than_gradient_descent_in_the_same_iterations():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 20, generator=g)
    y = (x[:, :3] @ torch.randn(3, 3, generator=g)).argmax(1)  # three linearly separable classes
    gd = fit_logistic(x, y, "gd", iterations=30, lr=0.5)
    lb = fit_logistic(x, y, "lbfgs", iterations=30)
    assert lb["loss"].iloc[-1] < 0.5 * gd["loss"].iloc[-1]
    assert (lb["loss"].diff().dropna() <= 1e-9).mean() > 0.8  # it mostly descends
    assert gd["evaluations"].iloc[-1] == 30
    with pytest.raises(ValueError, match="method: 'newton'"):
        fit_logistic(x, y, "newton", iterations=3)


def test_many_paths_get_a_panel_each_and_one_panel_keeps_every_path_visible():
    from trainlab.lessons.optimizers import draw_each
    paths = {f"adam, lr {lr:g}": path(Spec(optimizer="adam", lr=lr), "rosenbrock", 20) for lr in (0.01, 0.03, 0.05)}
    fig = draw_each("rosenbrock", paths, title="three Adams")
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().split(":")[0] for ax in shown] == list(paths)
    greys = [line for line in shown[0].lines if line.get_color() == "0.6"]
    assert len(greys) == 2                     # the other two paths, faint behind this one
    one = draw("rosenbrock", paths)
    widths = [line.get_linewidth() for line in one.axes[0].lines if line.get_label() in paths]
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1]   # earlier paths stay visible around later ones
