"""Teaching faults: runs broken on purpose, for the run doctor's lesson (spec field `fault`).

Each fault is one classic bug, planted from here through one plug in the core:
`load_data` passes its training labels through `label_fault`, `build_model` its
model through `model_fault`, and `fit` adds `fault_callbacks(spec)`. Nothing else in
the core knows a fault exists.

- `shuffled_labels`: training labels permuted by the seed (validation and test stay true);
- `softmax_before_loss`: a Softmax layer at the end, under a loss that applies its own;
- `no_zero_grad`: gradients pile up from step to step, as when `zero_grad` is forgotten;
- `forgotten_eval`: the model ignores `model.eval()`, so dropout (and batch norm's batch
  statistics) stay on whenever it is evaluated, as when a loop never calls `eval()`.

>>> run = fit(Spec(fault="no_zero_grad"))   # doctest: +SKIP
"""
from __future__ import annotations

import torch
from torch import nn

from .callbacks import Callback
from .spec import Spec


def shuffled(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """The same labels in a seeded random order: every class keeps its count, but a
    label no longer says anything about its example.

    >>> shuffled(torch.tensor([0, 0, 1, 1]), 0).sort().values.tolist()
    [0, 0, 1, 1]
    """
    g = torch.Generator().manual_seed(seed + 15_485_863)  # not the split's own stream
    order = torch.randperm(len(labels), generator=g).to(labels.device)
    return labels[order]


def label_fault(spec: Spec, train_y: torch.Tensor) -> torch.Tensor:
    """The training labels the spec trains on: shuffled under `shuffled_labels`."""
    return shuffled(train_y, spec.seed) if spec.fault == "shuffled_labels" else train_y


class StaysInTraining(nn.Sequential):
    """A Sequential whose `eval()` does nothing: what an evaluation loop that never calls
    `model.eval()` sees. Only the class changes, so the layers, their names and the
    saved weights are those of the model it replaces."""

    def train(self, mode: bool = True) -> "StaysInTraining":
        return super().train(True)


def model_fault(spec: Spec, model: nn.Sequential) -> nn.Sequential:
    """The model the spec trains: with a Softmax on top under `softmax_before_loss`;
    deaf to `eval()` under `forgotten_eval`."""
    if spec.fault == "softmax_before_loss":
        model.add_module("softmax", nn.Softmax(dim=1))
    elif spec.fault == "forgotten_eval":
        model.__class__ = StaysInTraining   # a subclass that adds no state: the swap is safe
    return model


class KeepOldGradients(Callback):
    """Adds every earlier step's gradient to the new one, before the loop reads it:
    what a loop that never calls `zero_grad` does. Tensor hooks on the parameters
    add the running total during backward, so the gradient norm, clipping and the
    optimizer all see the piled-up gradient, as they would in the buggy loop."""

    def before_fit(self, learner) -> None:
        self.total = {p: None for p in learner.params}
        self.handles = [p.register_hook(self._hook(p)) for p in learner.params]

    def _hook(self, p: torch.Tensor):
        def add_old(grad: torch.Tensor) -> torch.Tensor:
            old = self.total[p]
            return grad if old is None else grad + old
        return add_old

    def after_step(self, learner) -> None:
        for p in learner.params:
            if p.grad is not None:
                self.total[p] = p.grad.detach().clone()

    def after_fit(self, learner) -> None:
        for h in self.handles:
            h.remove()


def fault_callbacks(spec: Spec) -> list[Callback]:
    """The callbacks that plant the spec's fault in the loop (none for most faults)."""
    return [KeepOldGradients()] if spec.fault == "no_zero_grad" else []
