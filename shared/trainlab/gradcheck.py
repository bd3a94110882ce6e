"""A numerical gradient check in float64: does backward() agree with the loss itself?

For every input element x_i, the centred difference (f(x + h e_i) - f(x - h e_i)) / 2h
estimates df/dx_i with an error of order h²; it is compared with the gradient that
autograd returns. The relative error |a - n| / max(|a|, |n|) is the yardstick of the
Stanford CS231n notes ("Neural Networks Part 3", gradient checks): below 1e-7 is
right, around 1e-4 is suspicious (unless the function has kinks, like ReLU), and
above 1e-2 the gradient is wrong. float64 matters: in float32 the rounding error of
f alone, divided by 2h, swamps the comparison. The step h = 1e-5 balances the two
errors of a centred difference in float64: truncation (of order h²) and rounding
(of order 1e-16 / h).

>>> import torch
>>> x = torch.randn(3, 4, dtype=torch.float64)
>>> gradient_check(lambda v: (v ** 3).sum(), x) < 1e-7
True
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

# Pairs whose gradients both vanish (|a| and |n| under this) agree, whatever their ratio.
TINY = 1e-12


def relative_error(analytic: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
    """Elementwise |a - n| / max(|a|, |n|), 0 where both are (nearly) zero."""
    scale = torch.maximum(analytic.abs(), numeric.abs())
    err = (analytic - numeric).abs() / scale.clamp_min(TINY)
    return torch.where(scale < TINY, torch.zeros_like(err), err)


def numerical_gradient(f: Callable[[], torch.Tensor], x: torch.Tensor, h: float = 1e-5) -> torch.Tensor:
    """Centred differences of the scalar f() with respect to every element of x (changed in place, restored)."""
    grad = torch.zeros_like(x)
    flat, g = x.data.view(-1), grad.view(-1)
    with torch.no_grad():
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + h
            up = f().item()
            flat[i] = old - h
            down = f().item()
            flat[i] = old
            g[i] = (up - down) / (2 * h)
    return grad


def gradient_check(f: Callable[..., torch.Tensor] | nn.Module, *inputs: torch.Tensor,
                   h: float = 1e-5, wrt: str = "all") -> float:
    """The worst relative error between autograd's gradient and centred differences.

    `f(*inputs)` must return a scalar (a loss), or `f` is a module whose outputs are
    summed into one. Inputs and, for a module, its parameters are checked in float64
    (a module is copied to float64; the inputs are cast). `wrt` picks what to check:
    "inputs", "params" or "all". Integer inputs (class labels) are passed through
    unchecked. Raises ValueError, naming the field, for a bad `wrt` or `h`.

    >>> import torch.nn.functional as F
    >>> logits, y = torch.randn(4, 10), torch.randint(0, 10, (4,))
    >>> gradient_check(F.cross_entropy, logits, y) < 1e-6
    True
    """
    if wrt not in ("inputs", "params", "all"):
        raise ValueError(f"wrt: {wrt!r} is not allowed; expected 'inputs', 'params' or 'all'")
    if not (isinstance(h, float) and 0 < h < 1e-2):
        raise ValueError(f"h: {h!r} is not allowed; expected a float > 0 and < 0.01 (1e-5 suits float64)")
    module = f if isinstance(f, nn.Module) else None
    if module is not None:
        module = copy.deepcopy(module).double()
    xs = [x.detach().double().clone().requires_grad_(True) if x.is_floating_point() else x for x in inputs]

    def value() -> torch.Tensor:
        out = module(*xs) if module is not None else f(*xs)
        return out.sum() if module is not None else out

    checked = [x for x in xs if x.is_floating_point()] if wrt in ("inputs", "all") else []
    if module is not None and wrt in ("params", "all"):
        checked += [p for p in module.parameters() if p.requires_grad]
    if not checked:
        raise ValueError(f"wrt: {wrt!r} leaves nothing to check (no float inputs or parameters)")
    out = value()
    if out.numel() != 1:
        raise ValueError(f"f: returns {out.numel()} values; expected a scalar (a loss)")
    analytic = torch.autograd.grad(out, checked, allow_unused=True)
    worst = 0.0
    for x, a in zip(checked, analytic):
        a = torch.zeros_like(x) if a is None else a
        worst = max(worst, float(relative_error(a, numerical_gradient(value, x, h)).max()))
    return worst
