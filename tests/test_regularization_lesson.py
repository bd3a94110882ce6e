"""Notebook 11's harness pieces: the clean train/validation gap of a trained run and the
regularisation panel (called directly with several values)."""
from __future__ import annotations

import pytest
from matplotlib.figure import Figure
from trainlab import Spec, SpecError, fit
from trainlab.lessons.regularization import clean_fit, gap_table, regularization_view
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
