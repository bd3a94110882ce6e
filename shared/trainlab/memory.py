"""Will a spec's model fit in the device's memory? Answered from the spec alone.

A spec can be valid field by field and still never train: depth 200 x width 8192 is
13 G parameters, and torch would fail deep inside the first allocation (or the
machine would swap for an hour). `check_fits` turns that into a SpecError before any
data loads. The estimate is deliberately rough (weights, gradients, optimizer state
and activations; no allocator slack, no dataset) so it only refuses what cannot work.

>>> parameter_count(Spec(depth=1, width=16))    # 784*16 + 16, then 16*10 + 10
12730
>>> check_fits(Spec(depth=200, width=8192), torch.device("cpu"))  # doctest: +SKIP
Traceback (most recent call last):
...
trainlab.spec.SpecError: width: 8192 is not allowed; expected a model that fits in memory: ...
"""
from __future__ import annotations

import math
import os

import torch

from .spec import Spec, SpecError

FLOAT_BYTES = 4
# Autograd keeps each layer's input and (for most activations) output for the
# backward pass, so a hidden layer costs about two copies of its activations.
BACKWARD_COPIES = 2


def _layout(spec: Spec) -> tuple[list[tuple[int, int]], int]:
    """The model as build_model lays it out: for each hidden block (inputs to one of its
    units, positions it is applied at), and the features the output layer reads.

    An MLP unit reads all features of the layer below at one position; a CNN unit
    reads channels x 3 x 3 values at every pixel of the feature map.
    """
    shape = spec.input_shape + (1,) * (3 - len(spec.input_shape))  # a table's row as (features, 1, 1)
    channels, size, _ = shape
    features = math.prod(shape)
    blocks = []
    for _ in range(spec.depth):
        if spec.model == "mlp":
            blocks.append((features, 1))
            features = spec.width
            continue
        blocks.append((channels * 9, size * size))
        channels = spec.width
        if size > 8:  # build_model's max-pool halves the map while it is large
            size //= 2
        features = channels * size * size
    return blocks, features


def parameter_count(spec: Spec) -> int:
    """Trainable parameters of the spec's model, counted without building it.

    >>> parameter_count(Spec(depth=2, width=256))   # (784+1)*256 + (256+1)*256 + (256+1)*10
    269322
    """
    bias = spec.norm != "batch"  # as in build_model: BatchNorm's shift replaces the bias
    # a scale and a shift per unit; weight normalisation's gain g is one number per unit
    per_unit_norm = {"batch": 2, "batch_after": 2, "layer": 2, "group": 2, "weight": 1}.get(spec.norm, 0)
    blocks, out_features = _layout(spec)
    hidden = sum((fan_in + bias + per_unit_norm) * spec.width for fan_in, _ in blocks)
    return hidden + (out_features + 1) * spec.num_classes


def _state_buffers(spec: Spec) -> int:
    """Tensors the optimizer keeps per parameter (Adam: two moments; SGD: momentum, if any)."""
    if spec.optimizer in ("adam", "adamw", "adam_uncorrected"):
        return 2
    if spec.optimizer == "rmsprop":  # the square average, plus a momentum buffer when asked
        return 1 + (spec.momentum > 0)
    if spec.optimizer == "sgd":
        return int(spec.momentum > 0)
    return 1  # nesterov's momentum, adagrad's sum of squares


def _weight_bytes(spec: Spec) -> int:
    """Weights, their gradients and the optimizer's state, all float32."""
    return parameter_count(spec) * FLOAT_BYTES * (2 + _state_buffers(spec))


def _activation_bytes(spec: Spec) -> int:
    units = sum(spec.width * positions for _, positions in _layout(spec)[0])
    return spec.batch_size * units * FLOAT_BYTES * BACKWARD_COPIES


def memory_estimate(spec: Spec) -> int:
    """Bytes one training step needs: weights, gradients, optimizer state, activations.

    >>> round(memory_estimate(Spec(depth=200, width=8192)) / 1e9)   # 13.4 G parameters with adam
    215
    """
    return _weight_bytes(spec) + _activation_bytes(spec)


def _meminfo_available() -> int | None:
    """MemAvailable from /proc/meminfo: free memory plus what the kernel can reclaim (Linux only)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file says kB and means KiB
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a run on `device`, or None where it cannot be known (mps)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu":
        found = _meminfo_available()
        if found is not None:
            return found
        try:  # not Linux: total physical memory is the best that is cheaply known
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    return None  # mps shares memory with the system and reports no budget


def _size(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _params(n: int) -> str:
    return f"{n / 1e9:.1f} G" if n >= 1e9 else f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n:,}"


def check_fits(spec: Spec, device: torch.device) -> None:
    """Raise SpecError when the spec's model cannot train in the memory `device` has.

    The error names `width` when the weights are most of the estimate and
    `batch_size` when the activations are.

    >>> check_fits(Spec(depth=1, width=16), torch.device("cpu"))   # small: returns quietly
    """
    device = torch.device(device)
    available = available_memory(device)
    needed = memory_estimate(spec)
    if available is None or needed <= available:
        return
    state = "gradients" + (f", {spec.optimizer}'s state" if _state_buffers(spec) else "")
    shape = f"depth {spec.depth} x width {spec.width}"
    if _weight_bytes(spec) >= _activation_bytes(spec):
        raise SpecError("width", spec.width,
                        f"a model that fits in memory: {shape} is {_params(parameter_count(spec))} parameters, "
                        f"about {_size(needed)} with {state} and activations, "
                        f"and {device} has {_size(available)} available")
    raise SpecError("batch_size", spec.batch_size,
                    f"a batch that fits in memory: batches of {spec.batch_size} through {shape} need about "
                    f"{_size(_activation_bytes(spec))} of activations ({_size(needed)} in all), "
                    f"and {device} has {_size(available)} available")


__all__ = ["parameter_count", "memory_estimate", "available_memory", "check_fits"]
