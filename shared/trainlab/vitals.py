"""The vitals every run records for the run doctor (`run.extra["vitals"]`).

What a run's histories do not hold, measured cheaply while it trains: the first
training batch as the model sees it, output statistics on a slice of validation
data after each epoch, and the size of a step relative to the weights. The doctor
(`trainlab.lessons.doctor`) reads them; the core records them so that every run,
cached ones included, can be diagnosed later.
"""
from __future__ import annotations

import math

import torch

from .callbacks import Callback
from .evaluation import outputs
from .losses import chance_value


class Vitals(Callback):
    """Records what the doctor reads: a batch of inputs, the outputs, the step sizes.

    `run.extra["vitals"]`: input_mean/input_std/input_absmax (the first training batch
    as the model sees it), the task, num_classes and chance loss, `update_ratios`
    (step, |dw| / |w| over the weight matrices, every ~1/25 of the run) and output
    statistics on up to 512 validation examples after each epoch, with
    `eval_repeat_change`: the largest change between two evaluations of them, in units
    of the outputs' spread (0 for a model that really is in eval mode).
    """

    def __init__(self, samples: int = 25):
        self.samples = samples

    def before_fit(self, learner) -> None:
        self.every = max(1, learner.total_steps // self.samples)
        self.before: list[torch.Tensor] | None = None
        self.weights = [p for p in learner.params if p.ndim >= 2]
        classes = learner.classes
        loss = learner.spec.loss_name if learner.extra.get("custom_loss") is None else "cross_entropy"
        self.vitals = learner.extra["vitals"] = {
            "task": "classification" if classes else "regression",
            "num_classes": learner.data.num_classes,
            "n_val": len(learner.data.val_y),
            "chance_loss": chance_value(loss, learner.data.num_classes) if classes else math.nan,
            "update_ratios": [],
        }

    def transform_batch(self, learner, xb: torch.Tensor) -> torch.Tensor:
        if "input_mean" not in self.vitals:
            x = xb.detach().float()
            self.vitals.update(input_mean=x.mean().item(), input_std=x.std().item(),
                               input_absmax=x.abs().max().item())
        return xb

    def before_step(self, learner) -> None:
        due = learner.step % self.every == 0
        self.before = [w.detach().clone() for w in self.weights] if due else None

    def after_step(self, learner) -> None:
        if self.before is None or learner.diverged:
            return
        moved = math.sqrt(sum(float((w.detach() - b).pow(2).sum()) for w, b in zip(self.weights, self.before)))
        size = math.sqrt(sum(float(b.pow(2).sum()) for b in self.before))
        if size > 0:
            self.vitals["update_ratios"].append([learner.step - 1, moved / size])
        self.before = None

    def after_epoch(self, learner) -> None:
        if len(learner.data.val_x) == 0:  # no validation set: nothing to measure the outputs on
            return
        out = outputs(learner.model, learner.data.val_x[:512])
        if not torch.isfinite(out).all():
            return
        # In eval mode a model is a fixed function, so a second pass must agree; one that
        # does not still has dropout (or batch statistics) switched on where it is evaluated.
        again = outputs(learner.model, learner.data.val_x[:512])
        spread = out.std().item()
        self.vitals["eval_repeat_change"] = (out - again).abs().max().item() / spread if spread > 0 else 0.0
        sums = out.sum(1)
        prob_rows = ((out >= 0) & (out <= 1)).all(1) & ((sums - 1).abs() < 1e-3)
        self.vitals.update(output_min=out.min().item(), output_max=out.max().item(),
                           output_row_sum=sums.mean().item(), probability_rows=prob_rows.float().mean().item())
