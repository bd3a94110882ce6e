"""Penalties applied to the gradients from outside the loss: L1, and how sparse it makes the weights.

>>> run = fit(Spec(l1=1e-4))                  # doctest: +SKIP
>>> zero_fraction(run.model) > 0.3           # doctest: +SKIP
True
"""
from __future__ import annotations

import math

import torch

from .callbacks import Callback


class L1Penalty(Callback):
    """Adds l1 * sign(w) to the gradient of every weight matrix (not biases or norm
    scales): the subgradient of l1 * sum|w|. Steps then pull every weight toward 0 by
    the same amount, which sets small weights to (nearly) zero rather than shrinking
    them in proportion, as L2 does."""

    def __init__(self, l1: float):
        self.l1 = l1

    def after_backward(self, learner) -> None:
        with torch.no_grad():
            for p in learner.params:
                if p.grad is not None and p.dim() > 1:
                    p.grad.add_(torch.sign(p), alpha=self.l1)


def zero_fraction(model: torch.nn.Module, tolerance: float = 1e-3) -> float:
    """The fraction of weight-matrix entries with |w| below `tolerance` of the layer's
    largest |w| (how sparse L1 has made the weights)."""
    small = total = 0
    for p in model.parameters():
        if p.dim() > 1:
            small += int((p.abs() < tolerance * p.abs().max()).sum())
            total += p.numel()
    return small / total if total else math.nan
