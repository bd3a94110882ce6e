"""The tensors one run trains on (`DataBundle`), how a training pool is split, and
what its scaling subtracts and divides by.

Kept apart from the loaders so both loaders (images in `data`, tables in `tabular`)
build the same bundle without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch


@dataclass
class DataBundle:
    """Train / validation / test tensors, scaled and on one device.

    For a regression task `num_classes` is 1 (one output) and the targets are float;
    `unscale_targets` turns scaled targets or predictions back into the data's units.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: torch.Tensor
    std: torch.Tensor
    task: str = "classification"
    target_mean: float = 0.0
    target_std: float = 1.0

    def unscale_targets(self, y: torch.Tensor) -> torch.Tensor:
        """Targets (or predictions) in the data's own units."""
        return y * self.target_std + self.target_mean

    @property
    def device(self) -> torch.device:
        """Where every tensor of the bundle lives (the spec's device, see `load_data`)."""
        return self.train_x.device

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of shuffled full batches (the last partial batch is dropped).

        The permutation is drawn on the CPU from `generator`, so the batch order is
        the same on every device for a given seed.
        """
        n = len(self.train_x)
        order = torch.randperm(n, generator=generator).to(self.train_x.device)
        for i in range(n // batch_size):
            idx = order[i * batch_size:(i + 1) * batch_size]
            yield self.train_x[idx], self.train_y[idx]


def split_indices(n: int, subset: int | None, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded (train, val) index tensors into a training set of size n."""
    g = torch.Generator().manual_seed(seed)
    pool = torch.randperm(n, generator=g)[: subset or n]
    n_val = round(val_fraction * len(pool))
    return pool[n_val:], pool[:n_val]


def scaling(scale: str, mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What a spec's `scale` subtracts and divides by, given the training set's
    statistics: both, only one of them, 255 (pixels to 0..1) or neither.

    >>> scaling("center", torch.tensor([33.3]), torch.tensor([78.6]))
    (tensor([33.3000]), tensor([1.]))
    """
    zero, one = torch.zeros_like(mean), torch.ones_like(std)
    return {"standard": (mean, std), "center": (mean, one), "divide": (zero, std),
            "unit": (zero, torch.full_like(std, 255.0)), "none": (zero, one)}[scale]
