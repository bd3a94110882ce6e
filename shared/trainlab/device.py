"""Picking the device, and seeding everything a run draws from.

The core owns where tensors live: `load_data` puts a spec's data on the spec's
device, `build_model` puts its model there, and evaluation moves inputs to the
model. Code that calls `model(x)` itself asks `to_model(model, x)` instead of
choosing a device.

>>> x, y = to_model(model, x, y)      # doctest: +SKIP
"""
from __future__ import annotations

import random
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from .spec import SpecError


def available_devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found.insert(0, "cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.insert(0 if "cuda" not in found else 1, "mps")
    return found


def resolve_device(name: str) -> torch.device:
    """`auto` picks cuda, then mps, then cpu; a named device that is absent is a SpecError."""
    found = available_devices()
    if name == "auto":
        return torch.device(found[0])
    if name not in found:
        raise SpecError("device", name, "one available here: auto, " + ", ".join(found))
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too


def autocast(device: torch.device):
    """bfloat16 autocast on GPUs that support it (it speeds up conv and large matmuls
    and needs no loss scaling); full precision elsewhere, so CPU runs stay exact."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def full_precision(out: torch.Tensor) -> torch.Tensor:
    """Outputs of an autocast region in float32; float32 and float64 as they are, so a
    model run in float64 keeps its precision in the loss."""
    return out if out.dtype in (torch.float32, torch.float64) else out.float()


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's parameters (or buffers); the CPU for a model with neither."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def to_model(model: nn.Module, *tensors: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """The tensors moved to the model's device (no copy when they are there already):
    one tensor for one argument, a tuple for several.

    >>> logits = model(to_model(model, x))   # doctest: +SKIP
    """
    device = model_device(model)
    moved = tuple(t.to(device) for t in tensors)
    return moved[0] if len(moved) == 1 else moved
