"""Optimizers and learning-rate schedules from a spec.

A schedule is a pure function of the step: `lr_at(spec, step, total)` is the LR the
optimizer uses at that (0-based) step, so a schedule can be plotted and tested
without training anything.

>>> spec = Spec(lr=0.1, schedule="step", epochs=4, subset=1000, batch_size=100)
>>> [round(lr_at(spec, s, 100), 4) for s in (0, 49, 50, 75, 99)]
[0.1, 0.1, 0.01, 0.001, 0.001]
"""
from __future__ import annotations

import math
from collections import OrderedDict  # noqa: F401  (the doctest of param_groups)

import torch
from torch import nn

from .spec import Spec

ONE_CYCLE_PEAK = 0.3     # fraction of training spent rising to the peak (Smith & Topin 2019)
ONE_CYCLE_START = 1 / 25  # the one-cycle policy starts at lr / 25, as torch's OneCycleLR does


class AdamUncorrected(torch.optim.Optimizer):
    """Adam without its bias correction: the step is lr * m / (sqrt(v) + eps) with the
    raw moving averages m and v, both started at zero.

    Kingma & Ba (2015, section 3) correct m and v by 1 / (1 - beta^t) because, started
    at zero, they are biased toward zero early on. With beta2 = 0.999 the second moment
    is the smaller one by far (1 - beta2 = 0.001 against 1 - beta1 = 0.1), so the first
    uncorrected step is about (1 - beta1) / sqrt(1 - beta2) = 3.2 times the corrected
    step of size lr. For teaching only; `adam` is the real thing.
    """

    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p if group["weight_decay"] else p.grad
                state = self.state[p]
                if not state:
                    state["m"], state["v"] = torch.zeros_like(p), torch.zeros_like(p)
                state["m"].mul_(b1).add_(g, alpha=1 - b1)
                state["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
                p.addcdiv_(state["m"], state["v"].sqrt().add_(group["eps"]), value=-group["lr"])


def param_groups(spec: Spec, model: nn.Module) -> list[dict]:
    """The model's trainable parameters as optimizer groups, each with an `lr_factor`.

    One group at factor 1, unless `spec.body_lr_factor` < 1: then the output layer
    `out` (the head) keeps factor 1 and every other layer (the body) gets
    `body_lr_factor`. Frozen parameters (requires_grad False) are left out, and so is
    a group left empty.

    >>> model = nn.Sequential(OrderedDict(fc1=nn.Linear(4, 3), out=nn.Linear(3, 2)))
    >>> [(g["name"], g["lr_factor"]) for g in param_groups(Spec(body_lr_factor=0.1), model)]
    [('body', 0.1), ('head', 1.0)]
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if spec.body_lr_factor == 1.0:
        return [{"params": [p for _, p in named], "lr_factor": 1.0, "name": "all"}]
    head = [p for n, p in named if n.split(".")[0] == "out"]
    body = [p for n, p in named if n.split(".")[0] != "out"]
    groups = [{"params": body, "lr_factor": spec.body_lr_factor, "name": "body"},
              {"params": head, "lr_factor": 1.0, "name": "head"}]
    return [g for g in groups if g["params"]]


def build_optimizer(spec: Spec, params) -> torch.optim.Optimizer:
    """The spec's optimizer over `params`. `weight_decay` is an L2 term added to the
    gradient, except for AdamW, which decays the weights directly (decoupled).
    `params` is a list of tensors or of groups (`param_groups`); a group's `lr_factor`
    scales its LR from the first step on."""
    params = list(params)
    if params and isinstance(params[0], dict):
        params = [{**g, "lr": spec.lr * g.get("lr_factor", 1.0)} for g in params]
    o, kw = spec.optimizer, dict(lr=spec.lr, weight_decay=spec.weight_decay)
    if o == "adam_uncorrected":
        return AdamUncorrected(params, betas=spec.betas, **kw)
    if o in ("sgd", "nesterov"):
        return torch.optim.SGD(params, momentum=spec.momentum, nesterov=o == "nesterov", **kw)
    if o == "adagrad":
        return torch.optim.Adagrad(params, **kw)
    if o == "rmsprop":
        return torch.optim.RMSprop(params, momentum=spec.momentum, **kw)
    if o == "adam":
        return torch.optim.Adam(params, betas=spec.betas, **kw)
    return torch.optim.AdamW(params, betas=spec.betas, **kw)


def schedule_factor(name: str, t: float, final: float) -> float:
    """The multiplier of the base LR at progress t in [0, 1] (0: first step, 1: last)."""
    if name == "constant":
        return 1.0
    if name == "step":
        # Two drops, at half and three quarters of training, that together reach `final`.
        drop = math.sqrt(final)
        return 1.0 if t < 0.5 else drop if t < 0.75 else final
    if name == "exponential":
        return final ** t
    if name == "inverse_time":
        # lr / (1 + k t), with k chosen so the last step reaches `final`.
        return 1.0 / (1.0 + (1.0 / final - 1.0) * t)
    if name == "cosine":
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * t))
    if name == "one_cycle":
        if t < ONE_CYCLE_PEAK:
            u = t / ONE_CYCLE_PEAK
            return ONE_CYCLE_START + (1.0 - ONE_CYCLE_START) * 0.5 * (1.0 - math.cos(math.pi * u))
        u = (t - ONE_CYCLE_PEAK) / (1.0 - ONE_CYCLE_PEAK)
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * u))
    raise ValueError(f"schedule: {name!r} is not known")


def lr_at(spec: Spec, step: int, total: int) -> float:
    """The LR at 0-based `step` of a run of `total` steps, warm-up included.

    Warm-up (Goyal et al. 2017) ramps linearly from lr / warmup_steps up to the peak
    `lr` over the first `warmup_steps` steps; the schedule then runs from the peak
    over the steps that are left, so every schedule reaches its peak. (Multiplying
    the ramp into a schedule that already decays would start the decay under the
    ramp: exponential decay would peak at a fraction of `lr`.)

    >>> warm = Spec(lr=0.1, schedule="exponential", warmup_steps=10)
    >>> round(max(lr_at(warm, s, 100) for s in range(100)), 4)
    0.1
    """
    warmup = min(spec.warmup_steps, max(total - 1, 0))
    if step < warmup:
        return spec.lr * (step + 1) / warmup
    t = (step - warmup) / max(total - 1 - warmup, 1)
    return spec.lr * schedule_factor(spec.schedule, min(t, 1.0), spec.final_lr_fraction)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's LR to `lr` times the group's `lr_factor` (1 when it has none)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_factor", 1.0)


def clip_gradients(grads: list[torch.Tensor], max_norm: float | None = None, max_value: float | None = None,
                   norm: torch.Tensor | None = None) -> bool:
    """Clip gradient tensors in place, as a run's `Clip` callback does: by global norm
    first (all of them rescaled by max_norm / ||g|| when ||g|| > max_norm; `norm` is
    ||g|| when already known), then by value (each element clamped to
    [-max_value, max_value]). None leaves that kind off. True when anything changed.

    >>> g = torch.tensor([3.0, 4.0]); clip_gradients([g], max_norm=1.0), g.tolist()
    (True, [0.6000000238418579, 0.800000011920929])
    """
    clipped = False
    if max_norm is not None:
        norm = torch.nn.utils.get_total_norm(grads) \
            if norm is None else norm
        if bool(norm > max_norm):
            clipped = True
            for g in grads:
                g.mul_(max_norm / norm.to(g.device))
    if max_value is not None:
        over = any(bool((g.abs() > max_value).any()) for g in grads)
        for g in grads:
            g.clamp_(-max_value, max_value)
        clipped = clipped or over
    return clipped


def global_grad_norm(params: list[nn.Parameter]) -> torch.Tensor:
    """The L2 norm of all gradients together (0 when there are none)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads)
