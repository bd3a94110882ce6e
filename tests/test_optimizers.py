"""The optimizers a spec names, tested by what they do to the weights."""
from __future__ import annotations

import math

import pytest
import torch
from trainlab import Spec
from trainlab.optim import build_optimizer
from trainlab.spec import OPTIMIZERS

LR, WD = 0.1, 0.05


def one_step(optimizer: str, grad: float, weight_decay: float = 0.0, steps: int = 1, **fields) -> list[float]:
    w = torch.nn.Parameter(torch.tensor([2.0, -1.0]))
    spec = Spec(optimizer=optimizer, lr=LR, weight_decay=weight_decay,
                momentum=fields.pop("momentum", 0.9 if optimizer == "nesterov" else 0.0), **fields)
    opt = build_optimizer(spec, [w])
    path = []
    for _ in range(steps):
        w.grad = torch.full_like(w, grad)
        opt.step()
        path.append(w.detach().clone())
    return path


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_weight_decay_reaches_every_optimizer(optimizer):
    """With a zero gradient, only weight decay moves the weights, so an optimizer that
    dropped it would leave them where they were."""
    w0 = torch.tensor([2.0, -1.0])
    moved = one_step(optimizer, grad=0.0, weight_decay=WD)[0]
    assert torch.all(moved.abs() < w0.abs()), f"{optimizer} ignored weight_decay"
    assert torch.equal(one_step(optimizer, grad=0.0)[0], w0)  # the null: no decay, no move
    if optimizer == "adamw":  # decoupled: w <- w - lr * wd * w, whatever the gradient
        assert torch.allclose(moved, w0 * (1 - LR * WD))
    if optimizer == "sgd":  # coupled L2: the gradient wd * w, one plain step
        assert torch.allclose(moved, w0 - LR * WD * w0)


def test_momentum_matches_the_textbook_recursion():
    # v <- beta v + g; w <- w - lr v (torch's form, Sutskever et al. 2013), with g = 1 every step
    path = one_step("sgd", grad=1.0, steps=4, momentum=0.9)
    v, w, expected = 0.0, 2.0, []
    for _ in range(4):
        v = 0.9 * v + 1.0
        w -= LR * v
        expected.append(w)
    assert [p[0].item() for p in path] == pytest.approx(expected)


def test_adam_bias_correction_sets_the_first_step():
    corrected = 2.0 - one_step("adam", grad=0.3)[0][0].item()
    raw = 2.0 - one_step("adam_uncorrected", grad=0.3)[0][0].item()
    assert corrected == pytest.approx(LR, rel=1e-4)  # m_hat / sqrt(v_hat) = g / |g| = 1
    assert raw == pytest.approx(LR * 0.1 / math.sqrt(0.001), rel=1e-4)  # 3.16x too long


def test_uncorrected_adam_approaches_adam_once_the_averages_warm_up():
    a, b = one_step("adam", grad=0.3, steps=5001), one_step("adam_uncorrected", grad=0.3, steps=5001)
    # 1 - 0.999^5000 = 0.993: the bias is gone to within half a percent of the step
    assert torch.allclose(a[-1] - a[-2], b[-1] - b[-2], rtol=0.01)
