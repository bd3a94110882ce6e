"""Tests aimed at plausible bugs that the rest of the suite let through (issue 17).

Each test names the bug it guards against. They were checked by planting that bug
in a copy of the package: the test fails there and passes on the real code. The
doctor's thresholds are written out here as numbers on purpose: a test that read
them from the module would follow a wrong constant instead of catching it.
"""
from __future__ import annotations

import copy
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainlab import Spec, fit
from trainlab.claims import OPS, Claims
from trainlab.data import load_data
from trainlab.evaluation import evaluate
from trainlab.lessons.doctor import Measured, examine
from trainlab.optim import build_optimizer

# A tiny MNIST run: a few hundred images, one narrow hidden layer, one epoch.
TINY = Spec(subset=600, val_fraction=0.1, depth=1, width=16, batch_size=32, epochs=1)


# --- evaluate -----------------------------------------------------------------------

def random_problem(n: int = 10, features: int = 5, classes: int = 3):
    g = torch.Generator().manual_seed(0)
    model = nn.Linear(features, classes)
    with torch.no_grad():
        model.weight.copy_(torch.randn(classes, features, generator=g))
        model.bias.copy_(torch.randn(classes, generator=g))
    return model, torch.randn(n, features, generator=g), torch.randint(0, classes, (n,), generator=g)


def test_evaluate_weights_chunks_by_size_so_an_uneven_last_chunk_does_not_skew_the_loss():
    # 10 rows in chunks of 3 leave a last chunk of 1; averaging the four chunk means
    # would give that one row the weight of three.
    model, x, y = random_problem()
    chunked, _ = evaluate(model, x, y, chunk=3)
    whole, _ = evaluate(model, x, y, chunk=len(x))
    assert chunked == pytest.approx(whole, rel=1e-6)
    assert whole == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-6)


def test_evaluate_counts_accuracy_over_rows_not_chunks():
    model, x, y = random_problem(n=11)
    right = (model(x).argmax(1) == y).float().mean().item()
    assert evaluate(model, x, y, chunk=4)[1] == pytest.approx(right)


# --- the schedule's length ----------------------------------------------------------

def test_cosine_schedule_ends_at_its_floor_when_a_rare_class_cut_shortens_the_data(mnist_ready):
    # The cut leaves fewer training images than the spec's own count: a schedule sized
    # from the spec would stop before reaching lr * final_lr_fraction.
    spec = TINY.replace(rare_class=1, rare_keep=0.05, schedule="cosine", lr=1e-2, final_lr_fraction=0.01)
    data = load_data(spec)
    assert len(data.train_x) // spec.batch_size * spec.epochs < spec.total_steps  # the cut does shorten it
    run = fit(spec, data=data, progress=False)
    assert len(run.steps) == len(data.train_x) // spec.batch_size
    assert run.steps["lr"].iloc[-1] == pytest.approx(spec.lr * spec.final_lr_fraction, rel=1e-9)


# --- the batch-order seed -----------------------------------------------------------

def test_the_seed_sets_the_batch_order(mnist_ready):
    # Same data and same starting weights, so only the batch order can tell two seeds apart.
    data = load_data(TINY)
    torch.manual_seed(0)
    start = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 16), nn.ReLU(), nn.Linear(16, 10))

    def losses(seed: int) -> list[float]:
        run = fit(TINY.replace(seed=seed), data=data, model=copy.deepcopy(start), progress=False)
        return run.steps["loss"].tolist()

    first = losses(0)
    assert losses(0) == first  # the same seed repeats the run exactly
    assert losses(1) != first  # another seed draws the batches in another order


# --- RMSprop momentum ---------------------------------------------------------------

def rmsprop_path(momentum: float, steps: int = 3) -> tuple[torch.optim.Optimizer, list[list[float]]]:
    w = nn.Parameter(torch.tensor([5.0, -3.0]))
    opt = build_optimizer(Spec(optimizer="rmsprop", lr=0.1, momentum=momentum), [w])
    path = []
    for _ in range(steps):
        w.grad = torch.tensor([0.5, -0.25])
        opt.step()
        path.append(w.detach().tolist())
    return opt, path


def test_rmsprop_gets_the_specs_momentum():
    opt, _ = rmsprop_path(0.9)
    assert isinstance(opt, torch.optim.RMSprop)
    assert [g["momentum"] for g in opt.param_groups] == [0.9]


def test_rmsprop_momentum_changes_the_steps():
    # The first step is the same with or without momentum (the buffer starts at the
    # first step itself); from the second on, momentum carries the earlier steps along.
    _, with_momentum = rmsprop_path(0.9)
    _, without = rmsprop_path(0.0)
    assert with_momentum[0] == pytest.approx(without[0])
    assert with_momentum[2] != pytest.approx(without[2])


def test_rmsprop_momentum_reaches_the_layer_groups_of_a_real_model():
    # fit builds the optimizer from param_groups (dicts with an lr_factor), not a flat list.
    from trainlab.optim import param_groups
    spec = Spec(optimizer="rmsprop", momentum=0.9, body_lr_factor=0.1)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    opt = build_optimizer(spec, param_groups(spec, model))
    assert opt.param_groups and all(g["momentum"] == 0.9 for g in opt.param_groups)


# --- claims -------------------------------------------------------------------------

@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("measured", [math.inf, -math.inf, math.nan], ids=["inf", "-inf", "nan"])
def test_a_claim_on_a_non_finite_measurement_never_holds(op, measured):
    # inf > 1 and -inf < 1 are True in Python: without the finite guard an overflowed
    # measure would pass any claim that points its way.
    claims = Claims("nb", profile="smoke", seed=0)
    assert claims.check("claim", measured, op, 1.0) is False
    assert claims.rows[-1]["held"] is False
    with pytest.raises(AssertionError, match="1 of 1 claims failed"):
        claims.report()


@pytest.mark.parametrize("op,measured", [(">", 2.0), (">=", 1.0), ("<", 0.0), ("<=", 1.0)])
def test_a_claim_on_a_finite_measurement_holds_when_the_comparison_does(op, measured):
    # The null for the test above: the guard must not reject ordinary numbers.
    assert Claims("nb").check("claim", measured, op, 1.0) is True


# --- the doctor: synthetic measurements ---------------------------------------------

CHANCE = math.log(10)


def healthy(**changes) -> dict:
    """The parts of a healthy run of 40 steps and 3 epochs, as plain data to change."""
    parts = dict(
        # grad norms that wobble by ~20% from step to step and do not grow
        grad_norms=[1.0 if i % 2 else 1.2 for i in range(40)],
        val_loss=[0.5, 0.4, 0.35], val_acc=[0.88, 0.9, 0.91], train_acc=[0.89, 0.92, 0.93],
        dead=0.1, saturated=0.1, first_layer_grad=1.0, last_layer_grad=1.0,
        vitals=dict(task="classification", num_classes=10, chance_loss=CHANCE, update_ratios=[[0, 1e-3], [5, 1e-3]],
                    input_mean=0.0, input_std=1.0, input_absmax=3.0, output_min=-5.0, output_max=5.0,
                    output_row_sum=0.0, probability_rows=0.0),
    )
    vitals = {**parts["vitals"], **changes.pop("vitals", {})}
    parts.update(changes, vitals=vitals)
    return parts


def measured(**changes) -> Measured:
    p = healthy(**changes)
    g = p["grad_norms"]
    steps = pd.DataFrame({"step": range(len(g)), "epoch": 1, "loss": 1.0, "lr": 1e-3, "grad_norm": g})
    epochs = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": p["val_loss"], "train_acc": p["train_acc"],
                           "val_loss": p["val_loss"], "val_acc": p["val_acc"]})
    # Two probed steps; layers 0 and 1 are hidden, layer 2 is the output layer.
    probes = pd.DataFrame([{"step": s, "layer": layer, "dead_frac": p["dead"], "saturated_frac": p["saturated"],
                            "grad_norm": {0: p["first_layer_grad"], 1: 1.0, 2: p["last_layer_grad"]}[layer]}
                           for s in (0, 10) for layer in (0, 1, 2)])
    return Measured(steps, epochs, probes, p["vitals"], diverged=False)


def found(m: Measured) -> list[str]:
    return [f.code for f in examine(m)]


def growing(growth: float, n: int = 100) -> list[float]:
    """Grad norms flat for the first and last tenth, rising smoothly by `growth` between."""
    ramp = [growth ** (i / 79) for i in range(80)]
    return [1.0] * 10 + ramp + [growth] * 10


def steady(change: float, n: int = 40) -> list[float]:
    """Grad norms that each grow by `change` of the new value: |g' - g| / g' = change."""
    return [(1 / (1 - change)) ** i for i in range(n)]


def test_the_synthetic_healthy_run_is_healthy():
    assert found(measured()) == ["healthy"]


# (code, the measurement just outside its threshold, just inside). The doctor's
# thresholds: |input mean| 3, input std 0.1..10, softmax rows 0.99, update ratio
# 1e-5..1e-1, dead/saturated share 0.5, layer grad ratio 1e-3..1e3, grad norm 1e3,
# loss at 0.97 x chance with accuracy under 2 x chance, accumulation growth 4 with
# step-to-step change 0.1, overfitting gap 0.1 with a val loss rise of 1.1.
BOUNDARIES = {
    "input_mean_high": ("unscaled_inputs", dict(vitals=dict(input_mean=3.1)), dict(vitals=dict(input_mean=2.9))),
    "input_mean_low": ("unscaled_inputs", dict(vitals=dict(input_mean=-3.1)), dict(vitals=dict(input_mean=-2.9))),
    "input_std_low": ("unscaled_inputs", dict(vitals=dict(input_std=0.095)), dict(vitals=dict(input_std=0.105))),
    "input_std_high": ("unscaled_inputs", dict(vitals=dict(input_std=10.5)), dict(vitals=dict(input_std=9.5))),
    "probability_rows": ("softmax_before_loss", dict(vitals=dict(probability_rows=0.995)),
                         dict(vitals=dict(probability_rows=0.985))),
    "update_ratio_high": ("lr_too_high", dict(vitals=dict(update_ratios=[[0, 0.105]])),
                          dict(vitals=dict(update_ratios=[[0, 0.095]]))),
    "update_ratio_low": ("lr_too_low", dict(vitals=dict(update_ratios=[[0, 0.95e-5]])),
                         dict(vitals=dict(update_ratios=[[0, 1.05e-5]]))),
    "dead": ("dead_units", dict(dead=0.55), dict(dead=0.45)),
    "saturated": ("saturated_units", dict(saturated=0.55), dict(saturated=0.45)),
    "vanishing_ratio": ("vanishing_gradients", dict(first_layer_grad=0.95e-3), dict(first_layer_grad=1.05e-3)),
    "exploding_ratio": ("exploding_gradients", dict(first_layer_grad=1.05e3), dict(first_layer_grad=0.95e3)),
    "exploding_norm": ("exploding_gradients", dict(grad_norms=[1050.0, 1100.0] * 20),
                       dict(grad_norms=[950.0, 900.0] * 20)),
    "chance_loss_share": ("not_learning", dict(val_loss=[0.98 * CHANCE] * 3, val_acc=[0.1] * 3),
                          dict(val_loss=[0.96 * CHANCE] * 3, val_acc=[0.1] * 3)),
    "chance_acc_factor": ("not_learning", dict(val_loss=[CHANCE] * 3, val_acc=[0.19] * 3),
                          dict(val_loss=[CHANCE] * 3, val_acc=[0.21] * 3)),
    "growth_factor": ("gradients_accumulate", dict(grad_norms=growing(4.2)), dict(grad_norms=growing(3.8))),
    "smooth_change": ("gradients_accumulate", dict(grad_norms=steady(0.095)), dict(grad_norms=steady(0.105))),
    "overfit_gap": ("overfitting", dict(val_loss=[0.3, 0.35, 0.4], train_acc=[0.9, 0.99, 0.99],
                                        val_acc=[0.9, 0.9, 0.88]),
                    dict(val_loss=[0.3, 0.35, 0.4], train_acc=[0.9, 0.96, 0.96], val_acc=[0.9, 0.9, 0.88])),
    "overfit_rise": ("overfitting", dict(val_loss=[0.3, 0.32, 0.336], train_acc=[0.9, 0.99, 0.99],
                                         val_acc=[0.9, 0.8, 0.8]),
                     dict(val_loss=[0.3, 0.32, 0.324], train_acc=[0.9, 0.99, 0.99], val_acc=[0.9, 0.8, 0.8])),
}


@pytest.mark.parametrize("name", sorted(BOUNDARIES))
def test_doctor_threshold_fires_just_past_its_boundary(name):
    code, outside, _ = BOUNDARIES[name]
    assert code in found(measured(**outside))


@pytest.mark.parametrize("name", sorted(BOUNDARIES))
def test_doctor_threshold_stays_quiet_just_short_of_its_boundary(name):
    code, _, inside = BOUNDARIES[name]
    assert code not in found(measured(**inside))


def test_doctor_lists_a_cause_before_the_symptom_it_produces():
    # Raw pixels keep the network at chance: the reader should fix the inputs first.
    m = measured(vitals=dict(input_mean=33.0, input_std=78.0), val_loss=[CHANCE] * 3, val_acc=[0.1] * 3)
    codes = found(m)
    assert {"unscaled_inputs", "not_learning"} <= set(codes)
    assert codes.index("unscaled_inputs") < codes.index("not_learning")


CAUSES = ("unscaled_inputs", "softmax_before_loss", "gradients_accumulate", "lr_too_high")
SYMPTOMS = ("exploding_gradients", "vanishing_gradients", "dead_units", "saturated_units", "not_learning",
            "overfitting")


def test_doctor_lists_every_cause_before_every_symptom_when_all_show_at_once():
    m = measured(
        vitals=dict(input_mean=33.0, input_std=78.0, probability_rows=1.0, update_ratios=[[0, 0.5]]),
        grad_norms=[100 * 1.05 ** i for i in range(100)],  # smooth growth whose median passes 1e3
        first_layer_grad=1e-4, dead=0.9, saturated=0.9,
        val_loss=[CHANCE, CHANCE, 1.2 * CHANCE], val_acc=[0.1] * 3, train_acc=[0.3, 0.4, 0.5],
    )
    codes = found(m)
    assert set(CAUSES + SYMPTOMS) <= set(codes), codes  # the run does show them all
    last_cause = max(codes.index(c) for c in CAUSES)
    first_symptom = min(codes.index(s) for s in SYMPTOMS)
    assert last_cause < first_symptom, codes


# --- found by mutation testing (mutmut over evaluation, losses, optim) -----------------

def test_recall_by_class_counts_each_class_own_examples_and_gives_nan_for_an_absent_one():
    # A "model" that predicts the first feature as the class: rows are built so that
    # class 0 is right 2 of 2, class 1 right 1 of 3, and class 2 never occurs.
    class Echo(nn.Module):
        def forward(self, x):
            return F.one_hot(x[:, 0].long(), 3).float()
    x = torch.tensor([[0.0], [0.0], [1.0], [0.0], [2.0]])
    y = torch.tensor([0, 0, 1, 1, 1])
    from trainlab.evaluation import recall_by_class
    recalls = recall_by_class(Echo(), x, y, num_classes=4, chunk=2)
    assert recalls[:2] == [1.0, pytest.approx(1 / 3)]
    assert math.isnan(recalls[2]) and math.isnan(recalls[3])


@pytest.mark.parametrize("name,cls", [("sgd", torch.optim.SGD), ("nesterov", torch.optim.SGD),
                                      ("adagrad", torch.optim.Adagrad), ("rmsprop", torch.optim.RMSprop),
                                      ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_each_optimizer_name_builds_its_own_optimizer(name, cls):
    # An unrecognised name falls through to AdamW, so a misspelt branch would train
    # silently with the wrong optimizer.
    spec = Spec(optimizer=name, momentum=0.9 if name == "nesterov" else 0.0)
    opt = build_optimizer(spec, [nn.Parameter(torch.ones(2))])
    assert type(opt) is cls


def test_nesterov_is_on_for_nesterov_and_off_for_plain_sgd():
    w = [nn.Parameter(torch.ones(2))]
    assert build_optimizer(Spec(optimizer="nesterov", momentum=0.9), w).param_groups[0]["nesterov"] is True
    assert build_optimizer(Spec(optimizer="sgd", momentum=0.9), w).param_groups[0]["nesterov"] is False


@pytest.mark.parametrize("name", ["adam", "adamw", "adam_uncorrected"])
def test_adam_family_gets_the_specs_betas(name):
    # The spec's default betas equal torch's, so only other betas show a dropped argument.
    opt = build_optimizer(Spec(optimizer=name, betas=(0.5, 0.9)), [nn.Parameter(torch.ones(2))])
    assert tuple(opt.param_groups[0]["betas"]) == (0.5, 0.9)


def test_uncorrected_adam_has_no_weight_decay_by_default():
    from trainlab.optim import AdamUncorrected
    w = [nn.Parameter(torch.ones(2))]
    assert AdamUncorrected(w, lr=0.1).defaults["weight_decay"] == 0.0  # used directly in notebooks


def test_a_group_without_lr_factor_is_built_at_the_full_lr():
    # build_optimizer accepts any torch-style groups, not only those param_groups makes.
    opt = build_optimizer(Spec(lr=0.01), [{"params": [nn.Parameter(torch.ones(2))]}])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)


def two_layer_net() -> nn.Module:
    from collections import OrderedDict
    return nn.Sequential(OrderedDict(fc1=nn.Linear(4, 3), act=nn.ReLU(), out=nn.Linear(3, 2)))


def test_param_groups_put_only_the_output_layer_in_the_head():
    from trainlab.optim import param_groups
    net = two_layer_net()
    groups = param_groups(Spec(body_lr_factor=0.1), net)
    assert [(g["name"], g["lr_factor"]) for g in groups] == [("body", 0.1), ("head", 1.0)]
    assert groups[0]["params"] == list(net.fc1.parameters())
    assert groups[1]["params"] == list(net.out.parameters())
    one = param_groups(Spec(), net)  # factor 1: a single group, everything at the full LR
    assert [(g["name"], g["lr_factor"]) for g in one] == [("all", 1.0)] and len(one[0]["params"]) == 4


def test_body_lr_factor_scales_the_body_lr_when_built_and_at_every_scheduled_step():
    from trainlab.optim import param_groups, set_lr
    spec = Spec(lr=0.01, body_lr_factor=0.1)
    opt = build_optimizer(spec, param_groups(spec, two_layer_net()))
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(0.001), pytest.approx(0.01)]
    set_lr(opt, 0.5)  # what the Schedule callback does each step
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(0.05), pytest.approx(0.5)]


def test_set_lr_reaches_groups_without_an_lr_factor():
    # A plain list of tensors gives groups with no lr_factor: the factor is then 1.
    from trainlab.optim import set_lr
    opt = build_optimizer(Spec(lr=0.01), [nn.Parameter(torch.ones(2))])
    set_lr(opt, 0.3)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.3)


def test_global_grad_norm_covers_every_gradient_and_skips_missing_ones():
    from trainlab.optim import global_grad_norm
    a, b, c = (nn.Parameter(torch.zeros(2)) for _ in range(3))
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])  # c has no gradient
    assert float(global_grad_norm([a, b, c])) == pytest.approx(5.0)
    assert float(global_grad_norm([c])) == 0.0


def test_warmup_longer_than_the_run_still_reaches_the_peak_on_the_last_step():
    from trainlab.optim import lr_at
    spec = Spec(lr=0.1, schedule="cosine", warmup_steps=10)
    # The warm-up is cut to total - 1 steps, so the ramp tops out and the last step is the peak.
    assert [lr_at(spec, s, 5) for s in range(5)] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1])


def test_a_two_step_schedule_ends_at_its_floor():
    from trainlab.optim import lr_at
    spec = Spec(lr=0.1, schedule="cosine", final_lr_fraction=0.01)
    assert [lr_at(spec, s, 2) for s in (0, 1)] == [pytest.approx(0.1), pytest.approx(0.001)]


def test_an_unknown_schedule_is_named_in_the_error():
    from trainlab.optim import schedule_factor
    with pytest.raises(ValueError, match="'bogus'"):
        schedule_factor("bogus", 0.5, 0.01)


def test_balanced_weights_for_a_class_seen_once():
    from trainlab.losses import balanced_weights
    # n / (C * n_c): 4 / (2 * 3) and 4 / (2 * 1); the clamp only guards an absent class.
    assert balanced_weights(torch.tensor([0, 0, 0, 1]), 2).tolist() == [pytest.approx(2 / 3), pytest.approx(2.0)]


def test_build_loss_passes_label_smoothing_and_class_weights_on():
    from trainlab.losses import build_loss
    logits, y = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1, 1])
    train_y = torch.tensor([0, 0, 0, 1])
    smooth = build_loss(Spec(label_smoothing=0.2), train_y, 2)
    assert smooth(logits, y).item() == pytest.approx(F.cross_entropy(logits, y, label_smoothing=0.2).item())
    plain = build_loss(Spec(loss="mse"), train_y, 2)
    weighted = build_loss(Spec(loss="mse", class_weights="balanced"), train_y, 2)
    assert weighted(logits, y).item() != pytest.approx(plain(logits, y).item())
