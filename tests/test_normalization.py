"""Notebook 10's harness pieces: the train/eval gap of BatchNorm, the distance of
its running statistics from the data's, the largest LR that trained, and the
normalisation panel (called directly with several values)."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn
from trainlab import Spec
from trainlab.lessons.normalization import (
    largest_trained_lr,
    norm_view,
    running_stats_error,
    train_eval_gap,
)


def _mlp(norm: nn.Module | None) -> nn.Sequential:
    torch.manual_seed(0)
    layers = [nn.Linear(5, 8)] + ([norm] if norm is not None else []) + [nn.ReLU(), nn.Linear(8, 3)]
    return nn.Sequential(*layers)


def test_batch_norm_gives_different_outputs_in_train_and_eval_mode():
    x = torch.randn(16, 5) * 3 + 2   # far from the fresh running stats (mean 0, var 1)
    model = _mlp(nn.BatchNorm1d(8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert train_eval_gap(model, x) > 0.1
    # the model is untouched: same mode, same running stats
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("norm", [None, nn.LayerNorm(8), nn.GroupNorm(2, 8)])
def test_null_layers_without_batch_statistics_have_no_train_eval_gap(norm):
    x = torch.randn(16, 5)
    assert train_eval_gap(_mlp(norm), x) == 0.0


def test_running_stats_converge_to_the_data_statistics():
    torch.manual_seed(1)
    x = torch.randn(512, 5) * 2 + 1
    model = _mlp(nn.BatchNorm1d(8))
    fresh = running_stats_error(model, x)
    assert list(fresh.columns) == ["layer", "mean_error", "var_error"] and len(fresh) == 1
    model.train()
    with torch.no_grad():
        for batch in x.split(32):   # ~16 batches at momentum 0.1: the running averages settle
            for _ in range(3):
                model(batch)
    settled = running_stats_error(model, x)
    assert settled["mean_error"].iloc[0] < 0.2 < fresh["mean_error"].iloc[0]
    assert settled["var_error"].iloc[0] < 0.2 < fresh["var_error"].iloc[0]
    # reset=True puts the fresh statistics back, on a copy
    again = running_stats_error(model, x, reset=True)
    assert again["mean_error"].iloc[0] == pytest.approx(fresh["mean_error"].iloc[0])
    assert running_stats_error(model, x)["mean_error"].iloc[0] == pytest.approx(settled["mean_error"].iloc[0])


def test_running_stats_error_of_a_model_without_batch_norm_is_empty():
    assert running_stats_error(_mlp(None), torch.randn(4, 5)).empty


def test_largest_trained_lr_skips_diverged_and_poor_runs():
    table = pd.DataFrame({
        "norm": ["none"] * 3 + ["batch"] * 3,
        "lr": [0.01, 0.1, 1.0] * 2,
        "val_acc": [0.9, 0.6, math.nan, 0.9, 0.8, 0.3],
        "diverged": [False, False, True, False, False, False],
    })
    assert largest_trained_lr(table, 0.5) == 0.1
    by = largest_trained_lr(table, 0.7, by="norm")
    assert by["none"] == 0.01 and by["batch"] == 0.1
    assert math.isnan(largest_trained_lr(table, 0.95))


SMALL = Spec(subset=600, val_fraction=0.5, depth=2, width=32, epochs=1, batch_size=32,
             optimizer="sgd", momentum=0.9, schedule="constant", lr=0.05)


@pytest.mark.parametrize("changes", [dict(norm="batch"), dict(norm="none"), dict(norm="layer", lr=1.0),
                                     dict(norm="batch", init="normal", init_std=1.0),
                                     dict(norm="group", init="xavier_normal", activation="sigmoid")])
def test_norm_view_draws_any_setting(changes, tmp_path, monkeypatch, mnist_ready):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    spec = SMALL.replace(**changes)
    fig = norm_view(spec)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.axes[0].get_yscale() == "log"
    assert fig.axes[1].get_ylim() == (0, 1)
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert len(labels) == (1 if spec.norm == "none" else 2)  # the run, and the same spec without norm beside it
    assert spec.norm in fig._suptitle.get_text()
