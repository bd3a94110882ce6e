"""Loss functions built from a spec, and the values they take.

A loss is any callable `loss(outputs, targets) -> scalar tensor`, mean-reduced over
the batch; `fit(spec, loss=...)` trains with one written in a notebook.

What the values mean, for C classes:
- cross-entropy: 0 when sure and right, unbounded when sure and wrong, ln C at
  chance (a uniform guess gives every class 1/C).
- `mse` on one-hot targets: the squared distance between the softmax probabilities
  and the one-hot target, summed over the classes (the Brier score). 0 when sure and
  right, 2 when sure and wrong, 1 - 1/C at chance. Bounded, and its gradient fades
  when the network is sure of a wrong answer, which is why it learns classification
  more slowly than cross-entropy.

>>> import math, torch
>>> logits, y = torch.zeros(4, 10), torch.tensor([0, 1, 2, 3])
>>> round(cross_entropy()(logits, y).item(), 4) == round(math.log(10), 4)
True
>>> round(one_hot_mse()(logits, y).item(), 4)
0.9
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from .spec import Spec

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def chance_value(loss: str, num_classes: int) -> float:
    """The loss of a uniform guess over `num_classes`: what a fresh network should report.

    >>> round(chance_value("cross_entropy", 10), 3), chance_value("mse", 10)
    (2.303, 0.9)
    """
    if loss == "cross_entropy":
        return math.log(num_classes)
    if loss == "mse":
        return 1.0 - 1.0 / num_classes
    raise ValueError(f"loss: {loss!r} is not allowed; expected 'cross_entropy' or 'mse'")


def balanced_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """n / (C * n_c) for each class c: a class with a tenth of its share weighs 10x.

    >>> balanced_weights(torch.tensor([0, 0, 0, 1]), 2).tolist()
    [0.6666666865348816, 2.0]
    """
    counts = torch.bincount(labels.cpu(), minlength=num_classes).float()
    return (len(labels) / (num_classes * counts.clamp_min(1))).to(labels.device)


def cross_entropy(weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> LossFn:
    """Cross-entropy on logits, with optional class weights and label smoothing."""
    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, y, weight=weight, label_smoothing=label_smoothing)
    return loss


def one_hot_mse(weight: torch.Tensor | None = None) -> LossFn:
    """Squared error between softmax probabilities and one-hot targets, summed over classes
    and averaged over the batch (weighted by class like `F.cross_entropy` does)."""
    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        per_example = (out.softmax(1) - F.one_hot(y, out.shape[1]).to(out.dtype)).pow(2).sum(1)
        if weight is None:
            return per_example.mean()
        w = weight[y]
        return (w * per_example).sum() / w.sum()
    return loss


def regression_mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of a one-output network against float targets."""
    return F.mse_loss(out.squeeze(1), y)


def build_loss(spec: Spec, train_y: torch.Tensor, num_classes: int) -> LossFn:
    """The spec's loss; class weights are counted on the training labels `train_y`."""
    if spec.task == "regression":
        return regression_mse
    weight = balanced_weights(train_y, num_classes) if spec.class_weights == "balanced" else None
    if spec.loss_name == "mse":
        return one_hot_mse(weight)
    return cross_entropy(weight, spec.label_smoothing)
