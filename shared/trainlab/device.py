"""Picking the device, and seeding everything a run draws from."""
from __future__ import annotations

import random
from contextlib import nullcontext

import numpy as np
import torch

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
