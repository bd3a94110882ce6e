"""Notebook 03's harness pieces: the diabetes description, the mean predictor, the
scaling panel (called directly with several values), the sign agreement of the
first layer's gradient and plots.metric_vs."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from matplotlib.figure import Figure
from trainlab import Spec, SpecError, plots
from trainlab.lessons.data_scaling import scaling_view, sign_agreement
from trainlab.tabular import describe, mean_predictor_rmse

REG = Spec(dataset="diabetes", val_fraction=0.2, depth=1, width=16, epochs=3, batch_size=32,
           optimizer="sgd", schedule="constant", lr=0.01, target_scale="standard")


def test_describe_shows_the_raw_scales():
    table = describe("diabetes")
    assert list(table.index) == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6", "target"]
    assert table.loc["target", "min"] >= 25 and table.loc["target", "max"] <= 346
    assert table.loc["sex", "max"] - table.loc["sex", "min"] == pytest.approx(1.0)  # coded 1 and 2


def test_the_mean_predictor_scores_the_validation_targets_spread():
    rmse = mean_predictor_rmse(REG)
    assert 60 < rmse < 95  # the diabetes target's std is about 77
    assert mean_predictor_rmse(REG.replace(seed=1)) != rmse  # another split, another number


@pytest.mark.parametrize("changes", [dict(), dict(target_scale="none"), dict(scale="none"),
                                     dict(target_scale="none", lr=1e-5)])
def test_scaling_view_draws_any_setting(changes, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    fig = scaling_view(REG.replace(**changes))
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.axes[1].get_yscale() == "log"
    assert fig.axes[0].get_ylim() == (30, 250)  # fixed, so a slider move shows as a move of the curve


def test_scaling_view_refuses_an_image_set():
    with pytest.raises(SpecError, match="dataset: 'mnist'"):
        scaling_view(Spec())


def test_metric_vs_draws_a_line_per_group_and_marks_diverged_runs():
    table = pd.DataFrame({"lr": [0.01, 0.1, 1.0, 0.01, 0.1, 1.0], "scale": ["a"] * 3 + ["b"] * 3,
                          "val_acc": [0.8, 0.9, math.nan, 0.7, math.nan, math.nan],
                          "diverged": [False, False, True, False, True, True]})
    fig = plots.metric_vs(table, "lr", "val_acc", by="scale", ylim=(0, 1))
    ax = fig.axes[0]
    lines = [line for line in ax.lines if line.get_marker() == "o"]
    crosses = [line for line in ax.lines if line.get_marker() == "x"]
    assert [len(line.get_xdata()) for line in lines] == [2, 1]
    assert [len(line.get_xdata()) for line in crosses] == [1, 2]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.01", "0.1", "1"]   # each value labelled
    with pytest.raises(ValueError, match="'accuracy' is not a column"):
        plots.metric_vs(table, "lr", "accuracy")


def test_sign_agreement_is_a_share_and_is_seeded(mnist_ready):
    spec = Spec(subset=2000, depth=1, width=32, scale="divide")
    value = sign_agreement(spec)
    assert 0 < value <= 1 and sign_agreement(spec) == value
    assert sign_agreement(spec.replace(seed=1)) != value  # another init and batch, another number
