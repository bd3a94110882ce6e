"""Notebook 11's harness pieces: the clean train/validation gap of a trained run and the
regularisation panel (called directly with several values)."""
from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.figure import Figure
from trainlab import Spec, SpecError, fit
from trainlab.lessons.regularization import (
    clean_fit,
    epochs_before_stop,
    gap_table,
    middle_advantage,
    plot_strengths,
    regularization_view,
    strength_sweep,
)
from trainlab.sweeps import run_cached

SMALL = Spec(subset=600, val_fraction=0.5, epochs=3, depth=1, width=32, batch_size=50, optimizer="sgd", lr=0.05,
             momentum=0.9, schedule="constant")


def test_clean_fit_measures_the_model_in_eval_mode(mnist_ready):
    run = fit(SMALL.replace(dropout=0.5, epochs=8), progress=False)
    fit_ = clean_fit(run)
    assert fit_["loss_gap"] == pytest.approx(fit_["val_loss"] - fit_["train_loss"])
    assert fit_["acc_gap"] == pytest.approx(fit_["train_acc"] - fit_["val_acc"])
    assert fit_["val_loss"] == pytest.approx(run.final["val_loss"], rel=1e-5)   # the same model and the same split
    assert fit_["test_acc"] == pytest.approx(run.final["test_acc"])
    # Dropout is off in eval mode: the clean training accuracy beats the running one logged under dropout.
    assert fit_["train_acc"] > run.epochs["train_acc"].iloc[-1]
    assert clean_fit(run) == fit_                                                 # eval mode: no randomness


def test_a_run_that_memorises_has_a_gap_and_a_null_run_has_none(mnist_ready):
    memorised = clean_fit(fit(SMALL.replace(epochs=15), progress=False))
    assert memorised["train_acc"] > 0.98 and memorised["acc_gap"] > 0.05 and memorised["loss_gap"] > 0.1
    untrained = clean_fit(fit(SMALL.replace(lr=1e-6, momentum=0.0), progress=False))   # the null: nothing learned
    assert abs(untrained["acc_gap"]) < 0.1 and abs(untrained["loss_gap"]) < 0.1


def test_clean_fit_needs_the_model(mnist_ready, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    run_cached(SMALL)
    with pytest.raises(ValueError, match="run.model is None"):
        clean_fit(run_cached(SMALL))
    table = gap_table({"a": run_cached(SMALL, model=True), "b": run_cached(SMALL.replace(seed=1), model=True)})
    assert list(table["run"]) == ["a", "b"] and table["val_acc"].between(0, 1).all()


@pytest.mark.parametrize("changes", [dict(), dict(dropout=0.5), dict(weight_decay=5e-3), dict(augment=0.5),
                                     dict(l1=1e-4, dropout=0.1)])
def test_regularization_view_draws_any_setting(changes, mnist_ready, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    fig = regularization_view(SMALL.replace(**changes))
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.axes[0].get_ylim() == (0.0, 1.02) and fig.axes[1].get_yscale() == "log"
    assert [len(line.get_xdata()) for line in fig.axes[0].lines] == [3, 3]    # train and validation, per epoch
    title = fig._suptitle.get_text()
    assert ("dropout 0.5" in title) == (changes.get("dropout") == 0.5)
    assert ("no regularisation" in title) == (not changes)


def test_regularization_view_refuses_a_regression_set():
    with pytest.raises(SpecError, match="dataset: 'diabetes'"):
        regularization_view(Spec(dataset="diabetes", val_fraction=0.2))


def _sweep(name, losses, train=None):
    return pd.DataFrame({"regulariser": name, "strength": [0.0, 0.1, 0.3, 0.7][:len(losses)], "val_loss": losses,
                         "train_loss": train or sorted(losses)})


def test_middle_advantage_is_above_one_only_when_a_middle_strength_beats_both_ends():
    table = pd.concat([_sweep("dropout", [0.5, 0.45, 0.4, 0.6]), _sweep("augment", [0.4, 0.45, 0.5, 0.6]),
                       _sweep("weight_decay", [0.6, 0.5, 0.45, 0.4])])
    assert middle_advantage(table, "dropout") == pytest.approx(0.5 / 0.4)       # the smaller of the two ends
    assert middle_advantage(table, "augment") < 1 and middle_advantage(table, "weight_decay") < 1
    # Unordered rows are sorted by strength first.
    assert middle_advantage(table.iloc[::-1], "dropout") == pytest.approx(1.25)


def test_middle_advantage_names_a_regulariser_it_cannot_judge():
    table = _sweep("dropout", [0.5, 0.4, 0.6])
    with pytest.raises(ValueError, match="'l1' has 0 strengths.*known: dropout"):
        middle_advantage(table, "l1")
    with pytest.raises(ValueError, match="'dropout' has 2 strengths"):
        middle_advantage(table.iloc[:2], "dropout")


@pytest.mark.parametrize("values", [(0.0, 0.5), (0.5, 0.0, 0.7), (0.0, 0.3, 0.3)])
def test_strength_sweep_refuses_too_few_or_unordered_strengths_before_training(values, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    with pytest.raises(SpecError, match=r"strengths\['augment'\]"):
        strength_sweep(SMALL, {"dropout": (0.0, 0.1, 0.3), "augment": values})
    assert not any(tmp_path.iterdir())                                           # nothing trained, nothing cached


def test_strength_sweep_trains_each_strength_and_the_plot_marks_the_lowest(mnist_ready, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    table = strength_sweep(SMALL, {"dropout": (0.0, 0.3, 0.6), "weight_decay": (0.0, 1e-3, 1e-2)})
    assert list(table["regulariser"]) == ["dropout"] * 3 + ["weight_decay"] * 3
    assert table.loc[0, "val_loss"] == pytest.approx(clean_fit(run_cached(SMALL, model=True))["val_loss"])
    assert table["train_loss"].iloc[2] > table["train_loss"].iloc[0]             # dropout 0.6 fits less tightly
    fig = plot_strengths(table)
    assert len(fig.axes) == 2 and all(ax.get_yscale() == "log" for ax in fig.axes)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "0.3", "0.6"]


def test_epochs_before_stop_follows_the_harness_early_stopping(mnist_ready, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    overfits = SMALL.replace(epochs=15)
    full, stopped = run_cached(overfits), run_cached(overfits.replace(patience=2))
    assert len(stopped.epochs) < overfits.epochs                                 # it did stop early here
    assert epochs_before_stop(full.epochs["val_loss"].tolist(), 2) == len(stopped.epochs)
    assert epochs_before_stop(full.epochs["train_loss"].tolist(), 2) == overfits.epochs   # falls throughout
    assert epochs_before_stop([1.0, 1.0, 1.0], 1) == 2                           # equal is no improvement
    with pytest.raises(ValueError, match="patience: 0"):
        epochs_before_stop([1.0], 0)
