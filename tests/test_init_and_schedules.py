import math

import pytest
import torch
from trainlab import Spec, build_model
from trainlab.models import GAINS
from trainlab.optim import lr_at, schedule_factor

FAN_IN, FAN_OUT = 784, 512


def first_weight(spec: Spec) -> torch.Tensor:
    torch.manual_seed(0)
    return build_model(spec, (1, 28, 28), 10).fc1.weight.detach()


@pytest.mark.parametrize("init,expected_std", [
    ("kaiming_normal", math.sqrt(2 / FAN_IN)),
    ("kaiming_uniform", math.sqrt(2 / FAN_IN)),
    ("xavier_normal", math.sqrt(2 / (FAN_IN + FAN_OUT))),
    ("xavier_uniform", math.sqrt(2 / (FAN_IN + FAN_OUT))),
    ("lecun_normal", math.sqrt(1 / FAN_IN)),
    ("orthogonal", math.sqrt(2) / math.sqrt(FAN_IN)),
    ("normal", 0.05),
    ("uniform", 0.05),
])
def test_init_std_matches_theory(init, expected_std):
    w = first_weight(Spec(init=init, init_std=0.05, width=FAN_OUT, activation="relu"))
    assert abs(w.mean().item()) < 0.05 * expected_std
    assert w.std().item() == pytest.approx(expected_std, rel=0.02)


def test_uniform_inits_stay_inside_their_bound():
    w = first_weight(Spec(init="kaiming_uniform", width=FAN_OUT))
    bound = math.sqrt(3) * math.sqrt(2 / FAN_IN)
    assert w.abs().max().item() <= bound and w.abs().max().item() > 0.99 * bound


def test_kaiming_gain_follows_activation():
    w = first_weight(Spec(init="kaiming_normal", width=FAN_OUT, activation="tanh"))
    assert w.std().item() == pytest.approx(GAINS["tanh"] / math.sqrt(FAN_IN), rel=0.02)


def test_orthogonal_rows_are_orthogonal():
    w = first_weight(Spec(init="orthogonal", width=256, activation="linear"))
    assert torch.allclose(w @ w.T, torch.eye(256), atol=1e-4)


def test_zeros_and_bias_init():
    model = build_model(Spec(init="zeros", bias_init=0.1, depth=2), (1, 28, 28), 10)
    assert model.fc1.weight.abs().sum() == 0 and model.out.weight.abs().sum() == 0
    assert torch.all(model.fc1.bias == 0.1) and torch.all(model.out.bias == 0.1)


def test_batchnorm_layers_drop_the_redundant_bias_and_norm_sits_before_activation():
    model = build_model(Spec(norm="batch", depth=2), (1, 28, 28), 10)
    names = [n for n, _ in model.named_children()]
    assert model.fc1.bias is None
    assert names.index("norm1") == names.index("fc1") + 1 and names.index("act1") == names.index("norm1") + 1


def test_cnn_shapes_for_mnist_and_cifar():
    for shape in [(1, 28, 28), (3, 32, 32)]:
        model = build_model(Spec(model="cnn", depth=3, width=8, dropout=0.2, norm="layer"), shape, 10)
        assert model(torch.randn(4, *shape)).shape == (4, 10)
        assert isinstance(model.drop1, torch.nn.Dropout2d)


TOTAL = 101  # t = step / 100


@pytest.mark.parametrize("schedule,step,factor", [
    ("constant", 0, 1.0), ("constant", 100, 1.0),
    ("step", 49, 1.0), ("step", 50, 0.1), ("step", 75, 0.01), ("step", 100, 0.01),
    ("exponential", 0, 1.0), ("exponential", 50, 0.1), ("exponential", 100, 0.01),
    ("inverse_time", 0, 1.0), ("inverse_time", 50, 1 / (1 + 99 * 0.5)), ("inverse_time", 100, 0.01),
    ("cosine", 0, 1.0), ("cosine", 50, 0.505), ("cosine", 100, 0.01),
    ("one_cycle", 0, 1 / 25), ("one_cycle", 30, 1.0), ("one_cycle", 15, (1 / 25 + 1) / 2), ("one_cycle", 100, 0.01),
])
def test_schedule_lr_at_chosen_steps(schedule, step, factor):
    spec = Spec(lr=0.4, schedule=schedule, final_lr_fraction=0.01)
    assert lr_at(spec, step, TOTAL) == pytest.approx(0.4 * factor, rel=1e-9)


def test_schedules_never_increase_after_warmup_except_one_cycle():
    for name in ["step", "exponential", "inverse_time", "cosine"]:
        values = [schedule_factor(name, t / 200, 0.01) for t in range(201)]
        assert all(a >= b for a, b in zip(values[:-1], values[1:], strict=True)), name


def test_warmup_ramps_linearly_then_follows_schedule():
    spec = Spec(lr=1.0, schedule="constant", warmup_steps=10)
    assert [lr_at(spec, s, 100) for s in (0, 4, 9, 10, 50)] == pytest.approx([0.1, 0.5, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("schedule", ["step", "exponential", "inverse_time", "cosine", "one_cycle"])
def test_warmup_reaches_the_peak_then_the_schedule_runs_over_the_rest(schedule):
    spec = Spec(lr=0.064, schedule=schedule, warmup_steps=20)
    lrs = [lr_at(spec, s, 200) for s in range(200)]
    assert lrs[19] == pytest.approx(0.064)  # the ramp ends at the peak
    assert max(lrs) == pytest.approx(0.064)
    if schedule != "one_cycle":  # one-cycle rises again on its own
        assert lrs[20] == pytest.approx(0.064)
    assert lrs[-1] == pytest.approx(0.064 * spec.final_lr_fraction)  # and ends where it would without warm-up
