"""Models built from a spec: an MLP and a small CNN, with the spec's initialisation.

Layers are named so probes can find them: `fc{i}`/`conv{i}` (weights), `norm{i}`,
`act{i}` (the activation of hidden layer i), `drop{i}` and `out`.

>>> model = build_model(Spec(depth=3, width=64), input_shape=(1, 28, 28), num_classes=10)
>>> [name for name, _ in model.named_children()][:4]
['flatten', 'fc1', 'act1', 'fc2']
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from .device import resolve_device, seed_everything
from .faults import model_fault
from .spec import Spec

ACTIVATION_MODULES = {
    "relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.01), "elu": nn.ELU, "gelu": nn.GELU,
    "selu": nn.SELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "linear": nn.Identity,
}
# Gains that keep the activation variance steady through a layer (Glorot & Bengio
# 2010; He et al. 2015). ELU and GELU behave close enough to ReLU to share its gain.
GAINS = {
    "relu": math.sqrt(2.0), "leaky_relu": math.sqrt(2.0 / (1 + 0.01**2)), "elu": math.sqrt(2.0),
    "gelu": math.sqrt(2.0), "selu": 3.0 / 4, "tanh": 5.0 / 3, "sigmoid": 1.0, "linear": 1.0,
}


def init_std(init: str, fan_in: int, fan_out: int, activation: str, std: float) -> float:
    """The standard deviation a weight init gives (used by `init_weights` and the tests)."""
    gain = GAINS[activation]
    return {
        "zeros": 0.0,
        "normal": std,
        "uniform": std,
        "xavier_uniform": math.sqrt(2.0 / (fan_in + fan_out)),
        "xavier_normal": math.sqrt(2.0 / (fan_in + fan_out)),
        "kaiming_uniform": gain / math.sqrt(fan_in),
        "kaiming_normal": gain / math.sqrt(fan_in),
        "orthogonal": gain / math.sqrt(max(fan_in, fan_out)),
        "lecun_normal": 1.0 / math.sqrt(fan_in),
    }[init]


@torch.no_grad()
def init_weights(model: nn.Module, spec: Spec) -> None:
    """Apply the spec's weight init and constant bias to every Linear and Conv layer."""
    for module in model.modules():
        if not isinstance(module, (nn.Linear, nn.Conv2d)):
            continue
        w = module.weight
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(w)
        s = init_std(spec.init, fan_in, fan_out, spec.activation, spec.init_std)
        if spec.init == "zeros":
            w.zero_()
        elif spec.init == "orthogonal":
            nn.init.orthogonal_(w, gain=GAINS[spec.activation])
        elif spec.init.endswith("uniform"):
            bound = math.sqrt(3.0) * s  # U(-a, a) has std a / sqrt(3)
            w.uniform_(-bound, bound)
        else:
            w.normal_(0.0, s)
        if module.bias is not None:
            module.bias.fill_(spec.bias_init)


GROUPS = 32  # Wu & He's default number of groups


def _norm(kind: str, features: int, conv: bool) -> nn.Module | None:
    if kind in ("batch", "batch_after"):
        return nn.BatchNorm2d(features) if conv else nn.BatchNorm1d(features)
    if kind == "layer":
        # GroupNorm with one group normalises each example over all its channels,
        # which is LayerNorm for feature maps.
        return nn.GroupNorm(1, features) if conv else nn.LayerNorm(features)
    if kind == "group":  # on an MLP's units, groups of neighbouring units
        return nn.GroupNorm(math.gcd(features, GROUPS), features)
    return None  # none, and weight normalisation, which lives in the weights (build_model)


def _block(layers: "OrderedDict[str, nn.Module]", i: int, weight: nn.Module, spec: Spec, conv: bool) -> None:
    layers[f"{'conv' if conv else 'fc'}{i}"] = weight
    norm = _norm(spec.norm, spec.width, conv)
    if norm is not None and spec.norm != "batch_after":  # before the activation, as Ioffe & Szegedy place it
        layers[f"norm{i}"] = norm
    layers[f"act{i}"] = ACTIVATION_MODULES[spec.activation]()
    if norm is not None and spec.norm == "batch_after":
        layers[f"norm{i}"] = norm
    if spec.dropout > 0:
        # Whole-channel dropout in conv layers: neighbouring pixels are too correlated
        # for dropping single activations to regularise much.
        layers[f"drop{i}"] = nn.Dropout2d(spec.dropout) if conv else nn.Dropout(spec.dropout)


def build_model(spec: Spec, input_shape: tuple[int, ...] | None = None,
                num_classes: int | None = None) -> nn.Sequential:
    """The spec's model, initialised by the spec and on the spec's device.

    `input_shape` (C, H, W) and `num_classes` default to the spec's dataset and
    classes. The weights are drawn on the CPU and then moved, so a seed gives the
    same initial weights on every device.

    >>> model = build_model(Spec(depth=2, width=64))   # doctest: +SKIP
    """
    input_shape = spec.input_shape if input_shape is None else tuple(input_shape)
    num_classes = spec.num_classes if num_classes is None else num_classes
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    bias = spec.norm != "batch"  # BatchNorm's shift makes a bias before it redundant
    if spec.model == "mlp":
        layers["flatten"] = nn.Flatten()
        features = math.prod(input_shape)
        for i in range(1, spec.depth + 1):
            _block(layers, i, nn.Linear(features, spec.width, bias=bias), spec, conv=False)
            features = spec.width
    else:
        channels, size = input_shape[0], input_shape[1]
        for i in range(1, spec.depth + 1):
            _block(layers, i, nn.Conv2d(channels, spec.width, 3, padding=1, bias=bias), spec, conv=True)
            channels = spec.width
            if size > 8:  # halve the map while it is large: 28->14->7, 32->16->8
                layers[f"pool{i}"] = nn.MaxPool2d(2)
                size //= 2
        layers["flatten"] = nn.Flatten()
        features = channels * size * size
    layers["out"] = nn.Linear(features, num_classes)
    model = model_fault(spec, nn.Sequential(layers))
    init_weights(model, spec)
    if spec.norm == "weight":
        # w = g v / |v| per unit, from the initialised weights (g = |v|), so the
        # network starts as the same function; only how steps move it changes.
        for name, module in model.named_children():
            if name.startswith(("fc", "conv")):
                nn.utils.parametrizations.weight_norm(module)
    return model.to(resolve_device(spec.device))


def fresh_model(spec: Spec, seed_offset: int = 0, num_classes: int | None = None) -> nn.Sequential:
    """The model `fit(spec)` starts from: the global generators seeded as `fit` seeds
    them (plus `seed_offset`), then `build_model`, on the spec's device; with
    `num_classes` outputs when given.

    >>> x, y, _ = probe_batch(spec); model = fresh_model(spec)   # doctest: +SKIP
    """
    seed_everything(spec.seed + seed_offset)
    return build_model(spec, num_classes=num_classes)
