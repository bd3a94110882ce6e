"""Valid specs train, impossible ones are refused up front, absurd losses are divergence
(issue 17, "Faults round 2": valid specs that crash, accepted-and-ignored fields,
divergence, small API errors)."""
from __future__ import annotations

import json
import math

import pytest
import torch

import trainlab
from trainlab import Spec, SpecError, fit, grid, run_cached
from trainlab.cli import main
from trainlab.data import load_data, renumber
from trainlab.lessons import search
from trainlab.lessons.doctor import CODES, diagnose

TINY = Spec(subset=300, depth=1, width=16, epochs=1, batch_size=50)


# --- training without a validation set ------------------------------------------------
@pytest.mark.parametrize("changes", [dict(val_fraction=0.0), dict(val_fraction=0.0001),
                                     dict(val_fraction=0.0, model="cnn", width=4, norm="batch"),
                                     dict(dataset="diabetes", val_fraction=0.0, batch_size=32)])
def test_a_run_without_validation_examples_trains_with_nan_validation_metrics(mnist_ready, changes):
    run = fit(TINY.replace(**changes), progress=False)
    assert not run.diverged and len(run.epochs) == 1
    assert math.isnan(run.final["val_loss"]) and math.isnan(run.epochs["val_loss"].iloc[-1])
    assert math.isfinite(run.final["test_loss"])
    if run.spec.task == "classification":
        assert all(math.isnan(run.final[f"val_recall_{c}"]) for c in range(10))
        assert 0 <= run.final["test_acc"] <= 1
    assert "output_min" not in run.extra["vitals"]  # nothing to measure the outputs on


def test_run_cached_and_the_doctor_take_a_run_without_validation(mnist_ready, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    run = run_cached(TINY.replace(val_fraction=0.0), model=True)
    (finding,) = diagnose(run)
    assert finding.code == "healthy" and "no validation set" in finding.fix


def test_the_cli_runs_without_validation(mnist_ready, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    flags = ["--subset", "300", "--depth", "1", "--width", "16", "--epochs", "1", "--val-fraction", "0"]
    assert main(["run", *flags, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["final"]["val_loss"] is None
    assert main(["sweep", *flags, "--lr", "0.01,0.1"]) == 0
    assert main(["doctor", *flags]) == 0


def test_patience_without_validation_examples_is_refused_up_front(capsys):
    with pytest.raises(SpecError, match="patience.*no validation examples"):
        Spec(patience=1, val_fraction=0.0)
    with pytest.raises(SpecError, match="patience"):
        Spec(patience=1, subset=100, val_fraction=0.001, batch_size=10)  # 0.1 of an image rounds to none
    assert main(["run", "--patience", "1", "--val-fraction", "0"]) == 2
    assert "patience" in capsys.readouterr().err
    Spec(patience=1, subset=100, val_fraction=0.01, batch_size=10)  # one validation image is enough to watch


# --- classes on small splits -------------------------------------------------------------
def test_renumber_maps_from_the_kept_classes_not_from_the_split():
    assert renumber(torch.tensor([5, 6, 5]), (5, 6, 7, 8, 9)).tolist() == [0, 1, 0]
    assert renumber(torch.tensor([8]), (8, 9)).tolist() == [0]
    assert renumber(torch.tensor([], dtype=torch.long), (8, 9)).tolist() == []


@pytest.mark.parametrize("changes", [dict(classes="5-9", subset=100, seed=s) for s in range(6)]
                         + [dict(classes="8,9", subset=1000, val_fraction=0.02),
                            dict(classes="5-9", train_labels=5, batch_size=5, subset=2000, seed=3)])
def test_kept_classes_train_on_small_splits(mnist_ready, changes):
    spec = TINY.replace(batch_size=min(16, TINY.batch_size)).replace(**changes)
    data = load_data(spec)
    for y in (data.train_y, data.val_y, data.test_y):
        assert y.numel() == 0 or (0 <= int(y.min()) and int(y.max()) < data.num_classes)
    assert not fit(spec, data=data, progress=False).diverged


# --- accepted and ignored: refused ---------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adam", "adamw", "adam_uncorrected", "adagrad"])
def test_momentum_with_an_optimizer_without_it_is_refused(optimizer):
    with pytest.raises(SpecError, match=f"momentum: 0.9 .* optimizer is '{optimizer}'"):
        Spec(optimizer=optimizer, momentum=0.9)
    Spec(optimizer=optimizer)  # the default, 0, is fine
    for keeps_it in ("sgd", "nesterov", "rmsprop"):
        assert Spec(optimizer=keeps_it, momentum=0.9).momentum == 0.9


def test_a_rare_class_outside_the_kept_classes_is_refused():
    with pytest.raises(SpecError, match=r"rare_class: 7 .* kept classes \(0, 1, 2, 3, 4\)"):
        Spec(classes="0-4", rare_class=7, rare_keep=0.1)
    assert Spec(classes="0-4", rare_class=3, rare_keep=0.1).rare_class == 3


# --- divergence whatever the first loss -------------------------------------------------------
def test_an_absurd_start_is_divergence_not_a_yardstick(mnist_ready):
    run = fit(TINY.replace(init="normal", init_std=100, depth=10, width=32, subset=600), progress=False)
    assert run.diverged and run.steps["loss"].iloc[0] > 1e20


def test_a_large_but_trainable_start_still_trains(mnist_ready):
    # N(0, 1) weights in a shallow MLP start in the thousands: a lesson, not a divergence.
    run = fit(TINY.replace(init="normal", init_std=1.0, width=128, optimizer="sgd", lr=1e-3), progress=False)
    assert 100 < run.steps["loss"].iloc[0] and not run.diverged


def test_the_doctor_says_it_cannot_judge_a_run_that_was_nan_from_the_start(mnist_ready):
    run = fit(TINY.replace(init="normal", init_std=100, depth=20, width=32, scale="none"), progress=False)
    assert run.diverged and math.isnan(run.steps["loss"].iloc[0])
    codes = [f.code for f in diagnose(run)]
    assert "not_finite_at_start" in codes and "lr_too_high" not in codes
    assert "not_finite_at_start" in CODES


# --- small API errors ----------------------------------------------------------------------
def test_grid_refuses_a_string_instead_of_a_list():
    with pytest.raises(SpecError, match=r"lr: '0.1' is not allowed; expected a list of values.*lr=\['0.1'\]"):
        grid(Spec(), lr="0.1")
    assert [s.lr for s in grid(Spec(), lr=(0.1, 0.2))] == [0.1, 0.2]


def test_search_summaries_refuse_empty_input():
    with pytest.raises(ValueError, match=r"results: \[\] is not allowed"):
        search.best_of([])
    with pytest.raises(ValueError, match=r"results\['grid'\]: \[\] is not allowed"):
        search.compare({"grid": []})


@pytest.mark.parametrize("centre", [0.0, -1e-3, math.nan])
def test_refine_refuses_a_centre_off_a_log_axis(centre):
    with pytest.raises(SpecError, match="center"):
        search.refine({"lr": (1e-5, 1.0, True)}, {"lr": centre})


def test_the_names_the_readme_documents_resolve_after_import_trainlab():
    for name in ("diagnose", "Doctor", "search", "transfer", "doctor", "lr_find", "to_model", "score"):
        assert getattr(trainlab, name) is not None
    assert callable(trainlab.search.grid_search) and callable(trainlab.transfer.pretrain)


def test_a_slider_position_that_clashes_with_another_control_says_why():
    from trainlab.widgets import explore
    panel = explore(lambda s: f"drawn {s.optimizer}", Spec(optimizer="sgd", momentum=0.9), optimizer=None)
    (optimizer,) = panel.children[0].children  # built although adam clashes with momentum 0.9
    optimizer.value = "adam"
    shown = str(panel.children[1].outputs)
    assert "not a valid combination" in shown and "momentum: 0.9" in shown
    optimizer.value = "rmsprop"
    assert "drawn rmsprop" in str(panel.children[1].outputs)


def test_a_regression_run_reports_its_error_not_an_accuracy(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    flags = ["--dataset", "diabetes", "--target-scale", "standard", "--epochs", "2", "--batch-size", "32"]
    assert main(["run", *flags, "--json"]) == 0
    final = json.loads(capsys.readouterr().out)["final"]
    assert set(final) == {"train_loss", "val_loss", "val_rmse", "test_rmse"} and final["test_rmse"] > 0
    assert main(["run", *flags]) == 0
    printed = capsys.readouterr().out
    assert "test_rmse" in printed and "acc" not in printed


def test_a_search_ranked_by_validation_accuracy_needs_a_validation_set():
    with pytest.raises(SpecError, match="base.val_fraction: 0.0 .* validation accuracy"):
        search.random_search(TINY.replace(val_fraction=0.0), {"lr": (1e-4, 1e-1, True)}, 4, seed=0)
