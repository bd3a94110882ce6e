"""Data augmentation on the device: random shifts and rotations of a whole batch at once.

No per-sample loader: one affine grid per batch (each image its own shift and angle),
resampled with `grid_sample` where the tensors already live. The random numbers come
from a generator seeded by the run's seed, on the CPU, so a seed gives the same
augmented batches on every device.

>>> aug = Augment(strength=0.5, seed=0)
>>> aug.transform_batch(None, torch.zeros(8, 1, 28, 28)).shape
torch.Size([8, 1, 28, 28])
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .callbacks import Callback

MAX_SHIFT_PIXELS = 4
MAX_DEGREES = 15


def shift_rotate(x: torch.Tensor, shifts: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Each image of x (N, C, H, W) shifted by shifts[i] = (dx, dy) pixels and rotated by
    degrees[i] about its centre; pixels from outside the image are filled with the
    batch's background (its minimum, which is black for standardised images too).

    >>> img = torch.zeros(1, 1, 5, 5); img[0, 0, 2, 2] = 1
    >>> shift_rotate(img, torch.tensor([[1.0, 0.0]]), torch.zeros(1))[0, 0, 2, 3].item()
    1.0
    """
    n, _, h, w = x.shape
    theta = torch.deg2rad(degrees.to(x.dtype))
    cos, sin = torch.cos(theta), torch.sin(theta)
    # affine_grid maps output to input coordinates in [-1, 1]: shift by -d pixels there.
    tx, ty = -2 * shifts[:, 0].to(x.dtype) / w, -2 * shifts[:, 1].to(x.dtype) / h
    matrix = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(x.device)
    grid = F.affine_grid(matrix, list(x.shape), align_corners=False)
    background = x.amin()
    return F.grid_sample(x - background, grid, align_corners=False, padding_mode="zeros") + background


class Augment(Callback):
    """Shifts every training batch by up to 4 * strength pixels and rotates it by up to
    15 * strength degrees (uniform, per image). Validation and test data are never
    augmented."""

    def __init__(self, strength: float, seed: int):
        if not 0 <= strength <= 1:
            raise ValueError(f"strength: {strength!r} is not allowed; expected a number from 0 to 1")
        self.strength = strength
        self.generator = torch.Generator().manual_seed(seed + 104729)  # not the batch order's stream

    def transform_batch(self, learner, xb: torch.Tensor) -> torch.Tensor:
        if self.strength == 0:
            return xb
        n = len(xb)
        u = torch.rand(n, 3, generator=self.generator) * 2 - 1
        shifts = u[:, :2] * MAX_SHIFT_PIXELS * self.strength
        degrees = u[:, 2] * MAX_DEGREES * self.strength
        return shift_rotate(xb, shifts, degrees)
