"""Notebook 08's helpers: effective LR on the surfaces, first weight updates, weight
norms, the logistic-regression race and the surfaces panel."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from trainlab import Spec, SpecError
from trainlab.lessons.optimizers import (
    effective_lr,
    first_updates,
    gradients,
    iterations_to_reach,
    logistic_race,
    lr_tuning,
    path,
    path_curves,
    surfaces_view,
    weight_norm,
)


def test_gradients_of_the_bowl():
    p = path(Spec(optimizer="sgd", lr=0.01), "bowl", steps=1)
    g = gradients("bowl", p)
    assert (g["gx"].iloc[0], g["gy"].iloc[0]) == pytest.approx((-4.0, 25.0))  # (x, 25 y) at (-4, 1)


def test_effective_lr_is_sgds_lr_and_falls_for_adagrad_only():
    sgd = effective_lr("bowl", path(Spec(optimizer="sgd", lr=0.03), "bowl", 100))
    assert sgd["eff_x"].to_numpy() == pytest.approx(0.03)
    assert list(sgd.columns) == ["step", "eff_x", "eff_y"] and sgd["step"].iloc[0] == 1
    ada = effective_lr("bowl", path(Spec(optimizer="adagrad", lr=0.3), "bowl", 100))["eff_x"]
    assert (ada.diff().dropna() <= 1e-12).all()          # the sum of squares only grows
    assert ada.iloc[-1] < 0.5 * ada.iloc[0]
    # the null: RMSProp's moving average forgets, and its effective LR grows back
    rms = effective_lr("bowl", path(Spec(optimizer="rmsprop", lr=0.3), "bowl", 100))["eff_x"]
    assert rms.iloc[-1] > rms.iloc[0]


def test_effective_lr_is_nan_where_a_gradient_component_is_zero():
    p = path(Spec(optimizer="sgd", lr=0.1), "bowl", steps=2, start=(1.0, 0.0))   # y stays on 0
    e = effective_lr("bowl", p)
    assert e["eff_x"].to_numpy() == pytest.approx(0.1) and e["eff_y"].isna().all()


def test_weight_norm_leaves_out_biases():
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    with torch.no_grad():
        net[0].weight.fill_(1.0), net[1].weight.fill_(2.0), net[0].bias.fill_(100.0)
    assert weight_norm(net) == pytest.approx(math.sqrt(6 * 1 + 2 * 4))


def _batch(n=32):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 28, 28, generator=g), torch.arange(n) % 10


def test_first_updates_show_adams_bias_correction():
    spec = Spec(lr=1e-3)
    arms = {"corrected": spec.replace(optimizer="adam"), "raw": spec.replace(optimizer="adam_uncorrected"),
            "corrected .99": spec.replace(optimizer="adam", betas=(0.9, 0.99)),
            "raw .99": spec.replace(optimizer="adam_uncorrected", betas=(0.9, 0.99))}
    t = first_updates(spec, arms, steps=3, batch=_batch()).pivot(index="step", columns="optimizer",
                                                                 values="update_norm")
    assert t.loc[1, "raw"] / t.loc[1, "corrected"] == pytest.approx(0.1 / math.sqrt(0.001), rel=1e-3)
    # the null: with 1 - beta1 = sqrt(1 - beta2) the two biases cancel in the first step
    assert t.loc[1, "raw .99"] / t.loc[1, "corrected .99"] == pytest.approx(1.0, rel=1e-3)
    assert list(t.index) == [1, 2, 3]


def test_first_updates_from_names_start_from_one_initialisation():
    spec = Spec(optimizer="sgd", lr=0.01, momentum=0.9)
    t = first_updates(spec, ["sgd", "nesterov"], steps=2, batch=_batch())
    assert list(t.columns) == ["optimizer", "step", "loss", "update_norm"]
    first = t[t["step"] == 1].set_index("optimizer")["loss"]
    assert first["sgd"] == first["nesterov"]      # same weights, same batch, before any step
    assert (t["update_norm"] > 0).all()
    with pytest.raises(SpecError, match="steps: 0"):
        first_updates(spec, ["sgd"], steps=0, batch=_batch())


def test_logistic_race_and_iterations_to_reach():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 12, generator=g)
    y = (x[:, :3] @ torch.randn(3, 3, generator=g)).argmax(1)
    race = logistic_race(x, y, gd_lrs=(0.1, 0.5), gd_iterations=60, lbfgs_lrs=(1.0, 0.01), lbfgs_iterations=20)
    assert list(race) == ["GD, lr 0.1", "GD, lr 0.5", "L-BFGS", "L-BFGS, lr 0.01"]
    assert len(race["GD, lr 0.5"]) == 60 and len(race["L-BFGS"]) == 20
    target = race["GD, lr 0.5"]["loss"].iloc[-1]
    assert iterations_to_reach(race["L-BFGS"], target) < 20
    assert iterations_to_reach(race["L-BFGS, lr 0.01"], target) == math.inf
    table = pd.DataFrame({"iteration": [1, 2, 3], "loss": [3.0, 2.0, 1.0]})
    assert [iterations_to_reach(table, v) for v in (2.5, 2.0, 0.5)] == [2.0, 2.0, math.inf]


def test_path_curves_draws_each_table_and_names_a_bad_column():
    p = {"a": path(Spec(optimizer="sgd", lr=0.03), "bowl", 20), "b": path(Spec(optimizer="adam", lr=0.1), "bowl", 20)}
    fig = path_curves(p, "loss", logy=True, title="t")
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 2 and fig.axes[0].get_yscale() == "log"
    with pytest.raises(ValueError, match="y='nope'"):
        path_curves(p, "nope")


@pytest.mark.parametrize("spec, bowl_diverges", [
    (Spec(optimizer="sgd", lr=0.03, momentum=0.9), False),
    (Spec(optimizer="adam", lr=0.1), False),
    (Spec(optimizer="adagrad", lr=0.3), False),
    (Spec(optimizer="nesterov", lr=0.01, momentum=0.9), False),
    (Spec(optimizer="sgd", lr=1.0), True),     # far above the bowl's limit of 2/25: inf by step 112
])
def test_surfaces_view_draws_all_three_surfaces(spec, bowl_diverges):
    fig = surfaces_view(spec, steps=150)
    titles = [ax.get_title() for ax in fig.axes]
    assert [t.split(":")[0] for t in titles] == ["bowl", "rosenbrock", "saddle"]
    assert ("diverged" in titles[0]) == bowl_diverges
    assert all("diverged" in t or "after 150 steps" in t for t in titles)
    assert spec.optimizer in fig._suptitle.get_text()


TINY = Spec(subset=600, val_fraction=0.5, epochs=1, depth=1, width=16, batch_size=50, schedule="constant")


def test_lr_tuning_trains_every_factor_and_marks_one_best_lr_per_optimizer(mnist_ready, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    specs = {"SGD": TINY.replace(optimizer="sgd", lr=0.05), "Adam": TINY.replace(optimizer="adam", lr=1e-3)}
    table = lr_tuning(specs, factors=(0.01, 1.0, 1000.0))            # 50: plain SGD diverges there
    assert list(table["optimizer"]) == ["SGD"] * 3 + ["Adam"] * 3
    assert table["lr"].tolist() == pytest.approx([5e-4, 0.05, 50.0, 1e-5, 1e-3, 1.0])
    assert table.groupby("optimizer")["best"].sum().tolist() == [1, 1]
    best = table[table["best"]].set_index("optimizer")
    assert best.loc["SGD", "lr"] == pytest.approx(0.05) and best.loc["Adam", "lr"] == pytest.approx(1e-3)
    diverged = table[table["diverged"]]
    assert len(diverged) >= 1 and (diverged["val_acc"] == 0.1).all()      # a diverged run counts as chance


@pytest.mark.parametrize("factors", [(), (1.0, 1.0), (0.0, 1.0), (1.0, float("inf"))])
def test_lr_tuning_refuses_bad_factors_before_training(factors, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    with pytest.raises(SpecError, match="factors"):
        lr_tuning({"SGD": TINY}, factors=factors)
    with pytest.raises(SpecError, match="specs"):
        lr_tuning({})
    assert not any(tmp_path.iterdir())
