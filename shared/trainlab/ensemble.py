"""Ensembles of trained models: average their predicted probabilities.

Models trained from different seeds make partly different mistakes; averaging
their softmax outputs cancels some of them, so the ensemble's error is usually
below its average member's (the CS231n notes put the gain at a couple of percent).

>>> runs = [run_cached(spec.replace(seed=s), model=True) for s in range(3)]      # doctest: +SKIP
>>> ensemble_errors([r.model for r in runs], data.test_x, data.test_y)            # doctest: +SKIP
{'members': [0.081, 0.079, 0.084], 'mean_member': 0.0813, 'ensemble': 0.069}
"""
from __future__ import annotations

import torch
from torch import nn

from .train import outputs


def probabilities(model: nn.Module, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Softmax outputs of `model` on x, in eval mode (the model's mode is restored)."""
    return outputs(model, x, chunk).softmax(1)


def ensemble_errors(models: list[nn.Module], x: torch.Tensor, y: torch.Tensor) -> dict:
    """Error rate of each model, of their mean, and of the ensemble that averages
    their probabilities. Raises ValueError naming `models` when there are none."""
    if not models:
        raise ValueError("models: [] is not allowed; expected at least one trained model")
    probs = [probabilities(m, x) for m in models]
    members = [float((p.argmax(1) != y).float().mean()) for p in probs]
    together = torch.stack(probs).mean(0)
    return {"members": members, "mean_member": sum(members) / len(members),
            "ensemble": float((together.argmax(1) != y).float().mean())}
