"""Losses, the regression task, imbalanced sets, per-class recall, the gradient check
and the one-call notebook set-up."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainlab import Spec, SpecError, fit
from trainlab.data import cut_class, load_data
from trainlab.gradcheck import gradient_check
from trainlab.lesson import start
from trainlab.losses import (
    balanced_weights,
    build_loss,
    chance_value,
    cross_entropy,
    one_hot_mse,
)
from trainlab.models import build_model
from trainlab.tabular import raw_tabular

SMALL = Spec(subset=1000, val_fraction=0.2, depth=1, width=32, epochs=1, batch_size=50)
DIABETES = Spec(dataset="diabetes", val_fraction=0.2, depth=2, width=32, epochs=3, batch_size=32,
                optimizer="sgd", lr=0.01, schedule="constant", target_scale="standard")


# --- loss values -------------------------------------------------------------------

@pytest.mark.parametrize("classes", [2, 3, 10, 100])
def test_a_uniform_guess_scores_the_chance_value(classes):
    logits, y = torch.zeros(7, classes), torch.arange(7) % classes
    assert cross_entropy()(logits, y).item() == pytest.approx(math.log(classes), rel=1e-6)
    assert one_hot_mse()(logits, y).item() == pytest.approx(chance_value("mse", classes), rel=1e-6)


def test_one_hot_mse_spans_zero_to_two_and_a_fresh_network_sits_near_chance():
    y = torch.tensor([0, 1, 2])
    sure_right, sure_wrong = F.one_hot(y, 10) * 50.0, F.one_hot((y + 1) % 10, 10) * 50.0
    assert one_hot_mse()(sure_right, y).item() == pytest.approx(0.0, abs=1e-6)
    assert one_hot_mse()(sure_wrong, y).item() == pytest.approx(2.0, abs=1e-6)
    torch.manual_seed(0)
    model = build_model(Spec(depth=2, width=64), (1, 28, 28), 10)
    x, y = torch.randn(256, 1, 28, 28), torch.randint(0, 10, (256,))
    at_init = one_hot_mse()(model(x), y).item()
    assert 0.9 < at_init < 2.0, at_init  # He-initialised logits are far from uniform: above chance
    with torch.no_grad():
        model.out.weight.mul_(0.01)  # small output weights, as CS231n advises: a near-uniform softmax
    assert one_hot_mse()(model(x), y).item() == pytest.approx(0.9, abs=0.01)


def test_chance_value_rejects_an_unknown_loss_by_name():
    with pytest.raises(ValueError, match="loss: 'hinge'"):
        chance_value("hinge", 10)


def test_class_weighting_scales_the_gradient_of_the_weighted_class_only():
    torch.manual_seed(0)
    logits = torch.randn(6, 3)
    y = torch.tensor([0, 0, 1, 1, 2, 2])

    def grads(weight):
        x = logits.clone().requires_grad_(True)
        for loss in (cross_entropy(weight), one_hot_mse(weight)):
            x.grad = None
            loss(x, y).backward()
            yield x.grad.clone()

    plain = list(grads(None))
    weighted = list(grads(torch.tensor([1.0, 1.0, 4.0])))
    for p, w in zip(plain, weighted):
        rows_of_2, others = y == 2, y != 2
        # Weighted mean: class 2 counts 4x, and the normaliser grows from 6 to 12.
        assert torch.allclose(w[rows_of_2], p[rows_of_2] * 4 * 6 / 12, atol=1e-6)
        assert torch.allclose(w[others], p[others] * 6 / 12, atol=1e-6)


def test_balanced_weights_are_inverse_class_frequency():
    w = balanced_weights(torch.tensor([0] * 90 + [1] * 10), 2)
    assert w.tolist() == pytest.approx([100 / 180, 100 / 20])


def test_build_loss_follows_the_spec():
    y = torch.tensor([0, 1, 1, 1])
    logits = torch.randn(4, 10)
    assert build_loss(Spec(), y, 10)(logits, y).item() == pytest.approx(F.cross_entropy(logits, y).item())
    assert build_loss(Spec(loss="mse"), y, 10)(logits, y).item() == pytest.approx(one_hot_mse()(logits, y).item())
    weighted = build_loss(Spec(class_weights="balanced"), y, 10)(logits, y).item()
    assert weighted == pytest.approx(F.cross_entropy(logits, y, weight=balanced_weights(y, 10)).item())
    assert build_loss(DIABETES, torch.randn(4), 1)(torch.randn(4, 1), torch.randn(4)).dim() == 0


# --- gradient check ------------------------------------------------------------------

class WrongBackwardSquare(torch.autograd.Function):
    """x² with a backward that forgets the factor 2."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x


def test_gradient_check_passes_built_in_losses_and_a_module():
    torch.manual_seed(0)
    logits, y = torch.randn(5, 10), torch.randint(0, 10, (5,))
    assert gradient_check(F.cross_entropy, logits, y) < 1e-6
    assert gradient_check(one_hot_mse(), logits, y) < 1e-6
    assert gradient_check(nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 2)), torch.randn(3, 6)) < 1e-6


def test_gradient_check_fails_loudly_on_a_wrong_backward():
    x = torch.rand(4, 3) + 0.5
    assert gradient_check(lambda v: (v * v).sum(), x) < 1e-6  # the null case: the right backward
    assert gradient_check(lambda v: WrongBackwardSquare.apply(v).sum(), x) > 1e-2


def test_gradient_check_rejects_bad_arguments_by_name():
    x = torch.randn(3)
    with pytest.raises(ValueError, match="wrt: 'weights'"):
        gradient_check(lambda v: v.sum(), x, wrt="weights")
    with pytest.raises(ValueError, match="h: 0.1"):
        gradient_check(lambda v: v.sum(), x, h=0.1)
    with pytest.raises(ValueError, match="f: returns 3 values"):
        gradient_check(lambda v: v * 2, x)


# --- imbalanced sets and recall -------------------------------------------------------

def test_cut_class_keeps_the_asked_fraction_reproducibly():
    labels = torch.arange(2000) % 10
    idx = torch.randperm(2000, generator=torch.Generator().manual_seed(1))[:1500]
    before = int((labels[idx] == 3).sum())
    cut = cut_class(idx, labels, cls=3, keep=0.1, seed=5)
    assert int((labels[cut] == 3).sum()) == round(0.1 * before)
    assert int((labels[cut] != 3).sum()) == int((labels[idx] != 3).sum())  # other classes untouched
    assert torch.equal(cut, cut_class(idx, labels, cls=3, keep=0.1, seed=5))
    assert not torch.equal(cut, cut_class(idx, labels, cls=3, keep=0.1, seed=6))
    assert torch.equal(cut_class(idx, labels, cls=3, keep=1.0, seed=5), idx)  # keep=1: no cut


def test_an_imbalanced_spec_thins_one_training_class_and_leaves_validation_alone(mnist_ready):
    full, thin = load_data(SMALL), load_data(SMALL.replace(rare_class=4, rare_keep=0.05))
    n_full, n_thin = int((full.train_y == 4).sum()), int((thin.train_y == 4).sum())
    assert n_thin == max(1, round(0.05 * n_full))
    assert len(thin.train_y) == len(full.train_y) - (n_full - n_thin)
    assert torch.equal(full.val_y, thin.val_y)


def test_a_run_reports_recall_per_class_and_counts_steps_from_the_data(mnist_ready):
    run = fit(SMALL.replace(rare_class=2, rare_keep=0.1), progress=False)
    recalls = [run.final[f"val_recall_{c}"] for c in range(10)]
    assert all(0 <= r <= 1 for r in recalls)
    assert len(run.steps) < SMALL.total_steps  # fewer examples than the spec alone knows


# --- regression -------------------------------------------------------------------

def test_diabetes_targets_round_trip_through_scaling():
    raw = raw_tabular("diabetes")
    assert raw["train_x"].shape == (354, 10) and len(raw["test_y"]) == 88
    data = load_data(DIABETES)
    assert abs(float(data.train_y.mean())) < 1e-5 and float(data.train_y.std()) == pytest.approx(1, abs=1e-4)
    assert torch.allclose(data.unscale_targets(data.test_y).double(), raw["test_y"], atol=1e-3)
    unscaled = load_data(DIABETES.replace(target_scale="none"))
    assert float(unscaled.train_y.min()) >= 25 and float(unscaled.train_y.max()) <= 346
    assert abs(float(load_data(DIABETES).train_x.mean(0).abs().max())) < 1e-5  # inputs standardised
    raw_x = load_data(DIABETES.replace(scale="none")).train_x
    centered = load_data(DIABETES.replace(scale="center")).train_x
    assert float(centered.mean(0).abs().max()) < 1e-3 and torch.allclose(centered.std(0), raw_x.std(0), rtol=1e-4)
    divided = load_data(DIABETES.replace(scale="divide")).train_x
    assert torch.allclose(divided.std(0), torch.ones(10), atol=1e-4) and torch.allclose(
        divided.mean(0), raw_x.mean(0) / raw_x.std(0), rtol=1e-4)


def test_a_regression_run_learns_and_reports_error_in_target_units():
    run = fit(DIABETES.replace(epochs=20), progress=False)
    assert not run.diverged and math.isnan(run.final["val_acc"])
    assert run.epochs["val_rmse"].iloc[-1] < run.epochs["val_rmse"].iloc[0]
    assert 40 < run.final["val_rmse"] < 75  # the targets' own std is about 77


# --- custom losses and the set-up call -------------------------------------------------

def test_fit_trains_with_a_custom_loss_and_names_it(mnist_ready):
    def halved_cross_entropy(out, y):
        return 0.5 * F.cross_entropy(out, y)

    run = fit(SMALL, loss=halved_cross_entropy, progress=False)
    plain = fit(SMALL, progress=False)
    assert run.extra["custom_loss"] == "halved_cross_entropy"
    assert run.steps["loss"].iloc[0] == pytest.approx(0.5 * plain.steps["loss"].iloc[0], rel=1e-5)


def test_start_resolves_the_profile_and_checks_its_parameters(monkeypatch, capsys):
    monkeypatch.delenv("TRAINLAB_PROFILE", raising=False)
    lesson = start("00_sanity_checks", "smoke", 3, "fashion_mnist")
    assert "profile 'smoke', seed 3, fashion_mnist" in capsys.readouterr().out
    spec = lesson.spec(depth=1)
    assert (spec.subset, spec.seed, spec.dataset, spec.depth) == (5000, 3, "fashion_mnist", 1)
    assert lesson.pick(smoke=1, quick=2) == 1 and lesson.n_val == 2000
    assert lesson.claims.dataset == "fashion_mnist"
    with pytest.raises(SpecError, match="dataset: 'cifar10'"):
        start("x", "smoke", 0, "cifar10")
    with pytest.raises(SpecError, match="profile: 'fast'"):
        start("x", "fast", 0, "mnist")
    with pytest.raises(SpecError, match="seed: -1"):
        start("x", "smoke", -1, "mnist")
