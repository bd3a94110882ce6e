"""Judging a model on data: loss and accuracy, raw outputs, recall per class.

Every function here runs the model in eval mode, in chunks, on the model's own
device (inputs are moved there), and puts the model's mode back afterwards.

>>> evaluate(model, data.test_x, data.test_y)   # doctest: +SKIP
(0.2931, 0.9133)
>>> score(model, data)["train_acc"]              # doctest: +SKIP
0.998
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .bundle import DataBundle
from .device import autocast, full_precision, model_device
from .losses import LossFn


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 4096,
             loss_fn: LossFn | None = None) -> tuple[float, float]:
    """(mean loss, accuracy) of `model` on (x, y), in eval mode.

    The loss is `loss_fn` (default: cross-entropy), averaged over chunks weighted by
    their size. Accuracy is NaN for float (regression) targets. Both are NaN if x is
    empty or the model outputs any NaN or inf: argmax over NaN logits picks class 0
    and would pass for chance-level accuracy.

    >>> evaluate(model, data.val_x, data.val_y)   # doctest: +SKIP
    (0.2931, 0.9133)
    """
    if len(x) == 0:
        return math.nan, math.nan
    loss_fn = loss_fn or F.cross_entropy
    classes = not y.is_floating_point()
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        loss = correct = 0.0
        for i in range(0, len(x), chunk):
            with autocast(device):
                out = full_precision(model(x[i:i + chunk].to(device)))
            if not torch.isfinite(out).all():
                return math.nan, math.nan
            yb = y[i:i + chunk].to(device)
            loss += loss_fn(out, yb).item() * len(yb)
            if classes:
                correct += (out.argmax(1) == yb).sum().item()
    finally:
        model.train(was_training)
    return loss / len(x), (correct / len(x) if classes else math.nan)


@torch.no_grad()
def outputs(model: nn.Module, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """The model's float32 outputs (logits) on x, in eval mode and in chunks, on the
    model's device (x is moved there chunk by chunk); the model's own mode is
    restored afterwards.

    >>> outputs(model, data.val_x).argmax(1)   # doctest: +SKIP
    """
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        # An empty x still goes through the model once: the answer is a (0, outputs) tensor.
        starts = range(0, len(x), chunk) if len(x) else [0]
        return torch.cat([full_precision(model(x[i:i + chunk].to(device))) for i in starts])
    finally:
        model.train(was_training)


def probabilities(model: nn.Module, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Softmax of `outputs(model, x)`: the predicted class probabilities, in eval mode
    (the model's mode is restored), on the model's device.

    >>> probabilities(model, data.val_x).sum(1)   # doctest: +SKIP
    """
    return outputs(model, x, chunk).softmax(1)


def recall_by_class(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                    chunk: int = 4096) -> list[float]:
    """The fraction of each class's examples the model labels correctly (NaN for a
    class absent from y, for every class when y is empty, or when the model outputs NaN)."""
    preds = outputs(model, x, chunk).argmax(1)
    y = y.to(preds.device)
    out = []
    for c in range(num_classes):
        members = y == c
        n = int(members.sum())
        out.append(float((preds[members] == c).sum()) / n if n else math.nan)
    return out


def score(model: nn.Module, data: DataBundle, loss_fn: LossFn | None = None) -> dict[str, float]:
    """Loss and accuracy of a finished model on the training, validation and test
    sets of `data` (eval mode: no dropout, no augmentation), and the gaps val - train
    (loss) and train - val (accuracy). A run's own `train_acc` is the running
    accuracy over its last epoch's batches, taken in training mode; this is the
    model's fit to the images it trained on.

    >>> score(run.model, load_data(run.spec))["acc_gap"]   # doctest: +SKIP
    0.0312
    """
    out: dict[str, float] = {}
    for split in ("train", "val", "test"):
        loss, acc = evaluate(model, getattr(data, f"{split}_x"), getattr(data, f"{split}_y"), loss_fn=loss_fn)
        out[f"{split}_loss"], out[f"{split}_acc"] = loss, acc
    out["loss_gap"] = out["val_loss"] - out["train_loss"]
    out["acc_gap"] = out["train_acc"] - out["val_acc"]
    return out
