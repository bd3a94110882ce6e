"""Per-layer statistics through forward hooks: activation mean and std, the
fraction of dead units (ReLU family) and of saturated units (tanh, sigmoid), and
per-layer gradient norms.

Probes cost nothing when off: no hook is registered unless a spec asks for them
(`probe_every` > 0) or `layer_stats` is called.

>>> model = build_model(Spec(depth=10, init="normal", init_std=1.0), (1, 28, 28), 10)
>>> layer_stats(model, torch.randn(256, 1, 28, 28), "relu")   # doctest: +SKIP
"""
from __future__ import annotations

import math
import re

import pandas as pd
import torch
from torch import nn

from .callbacks import Callback
from .data import probe_batch
from .models import fresh_model
from .spec import Spec

DEAD_WHEN_NONPOSITIVE = ("relu", "leaky_relu", "elu", "gelu")
SATURATION = {"tanh": 0.99, "sigmoid": 0.99}  # |tanh| > .99; sigmoid < .01 or > .99


def activation_stats(out: torch.Tensor, activation: str) -> dict[str, float]:
    """Statistics of one activation output of shape (batch, units[, H, W])."""
    x = out.detach().float()
    per_unit = x.transpose(0, 1).reshape(x.shape[1], -1)  # a conv channel counts as one unit
    dead = sat = math.nan
    if activation in DEAD_WHEN_NONPOSITIVE:
        # A unit is dead on this batch when no example switches it on.
        dead = (per_unit <= 0).all(dim=1).float().mean().item()
    if activation == "tanh":
        sat = (x.abs() > SATURATION["tanh"]).float().mean().item()
    elif activation == "sigmoid":
        sat = ((x < 1 - SATURATION["sigmoid"]) | (x > SATURATION["sigmoid"])).float().mean().item()
    return {"act_mean": x.mean().item(), "act_std": x.std().item(),
            "dead_frac": dead, "saturated_frac": sat}


def _layer_index(name: str, depth: int) -> int | None:
    if name == "out":
        return depth + 1
    m = re.fullmatch(r"(?:act|fc|conv)(\d+)", name)
    return int(m.group(1)) if m else None


def weight_layers(model: nn.Module, depth: int) -> dict[int, nn.Module]:
    return {i: m for n, m in model.named_children()
            if isinstance(m, (nn.Linear, nn.Conv2d)) and (i := _layer_index(n, depth)) is not None}


class _Hooks:
    """Forward hooks on every `act{i}` module that store stats while `active`."""

    def __init__(self, model: nn.Module, activation: str):
        self.active, self.current, self.activation = True, {}, activation
        self.handles = [m.register_forward_hook(self._hook(int(n[3:])))
                        for n, m in model.named_children() if n.startswith("act")]

    def _hook(self, layer: int):
        def hook(module, inputs, output):
            if self.active:
                self.current[layer] = activation_stats(output, self.activation)
        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _rows(stats: dict[int, dict], model: nn.Module, depth: int, **extra) -> list[dict]:
    layers = weight_layers(model, depth)
    empty = {"act_mean": math.nan, "act_std": math.nan, "dead_frac": math.nan, "saturated_frac": math.nan}
    rows = []
    for i in sorted(layers):
        w = layers[i].weight
        g = w.grad.detach().norm().item() if w.grad is not None else math.nan
        rows.append({**extra, "layer": i, **stats.get(i, empty), "grad_norm": g,
                     "weight_std": w.detach().float().std().item()})
    return rows


def layer_stats(model: nn.Module, x: torch.Tensor, activation: str, y: torch.Tensor | None = None,
                depth: int | None = None) -> pd.DataFrame:
    """One forward (and, given labels, backward) pass; a row per layer.

    Layer i <= depth is hidden layer i (its activation statistics and its weight's
    gradient norm); layer depth+1 is the output layer.
    """
    depth = depth if depth is not None else sum(n.startswith("act") for n, _ in model.named_children())
    hooks = _Hooks(model, activation)
    was_training = model.training
    try:
        model.zero_grad(set_to_none=True)
        if y is None:
            with torch.no_grad():
                model(x)
        else:
            nn.functional.cross_entropy(model(x), y).backward()
    finally:
        hooks.remove()
        model.train(was_training)
    return pd.DataFrame(_rows(hooks.current, model, depth))


class Probes(Callback):
    """Records `layer_stats`-style rows every `every` steps into `run.probes`."""

    def __init__(self, every: int):
        self.every = every

    def before_fit(self, learner) -> None:
        self.hooks, self.rows = _Hooks(learner.model, learner.spec.activation), []

    def before_step(self, learner) -> None:
        self.hooks.active = learner.step % self.every == 0
        self.hooks.current = {}

    def after_backward(self, learner) -> None:
        if self.hooks.active:
            self.rows += _rows(self.hooks.current, learner.model, learner.spec.depth, step=learner.step)

    def after_fit(self, learner) -> None:
        self.hooks.remove()
        learner.probes = pd.DataFrame(self.rows)


def fresh_probe(spec: Spec) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The spec's freshly initialised model (`fresh_model`) and a real batch with its
    labels (`probe_batch`), both on the spec's device: what a lesson measures at init.

    >>> model, x, y = fresh_probe(Spec(depth=10))   # doctest: +SKIP
    """
    x, y, _ = probe_batch(spec)
    return fresh_model(spec), x, y


def init_stats(spec: Spec) -> pd.DataFrame:
    """`layer_stats` of `fresh_probe(spec)`: forward activations and backward gradient
    norms per layer of the freshly initialised model on a real batch.

    >>> init_stats(Spec(depth=20, init="normal", init_std=0.01))["act_std"].iloc[-1]   # doctest: +SKIP
    """
    model, x, y = fresh_probe(spec)
    return layer_stats(model, x, spec.activation, y=y, depth=spec.depth)
