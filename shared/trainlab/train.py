"""The training loop: `fit(spec)` returns a `Run`.

>>> run = fit(Spec(dataset="mnist", subset=5000, depth=2, width=128, epochs=2))  # doctest: +SKIP
>>> run.final["test_acc"] > 0.9, run.diverged                                     # doctest: +SKIP
(True, False)
"""
from __future__ import annotations

import math
import time
from typing import Iterable

import pandas as pd
import torch
from torch import nn

from .augment import Augment
from .bundle import DataBundle
from .callbacks import (
    Callback,
    Clip,
    EarlyStopping,
    Progress,
    Schedule,
    ShareCores,
    progress_enabled,
)
from .data import load_data
from .device import autocast, full_precision, resolve_device, seed_everything
from .evaluation import evaluate, recall_by_class
from .faults import fault_callbacks
from .losses import LossFn, build_loss, chance_value
from .memory import check_fits
from .models import build_model
from .optim import build_optimizer, global_grad_norm, param_groups
from .penalties import L1Penalty
from .probes import Probes
from .run import Run
from .spec import Spec
from .threads import run_threads
from .vitals import Vitals

# A run counts as diverged once a step's loss exceeds this many times its first loss
# (or 1, if that was smaller). Weights can grow until the logits are 1e19 apart while
# float32 stays finite, and such a run never recovers; waiting for NaN would report
# it as a finished run with meaningless numbers. Healthy runs, noisy ones included,
# stay within a few times their starting loss; the floor of 1 keeps a nearly perfect
# start (a pretrained model at loss 0.01) from being stopped by ordinary noise.
DIVERGENCE_FACTOR = 1000
# Whatever the first loss, a loss this many times a blind guess's is divergence: a
# start that is already absurd (N(0, 100) weights give 1e30) would otherwise set its
# own yardstick and let the run "train" to 1e34. A blind guess scores ln C (2.3) for
# cross-entropy and the targets' variance for regression; no lesson's run that still
# learns starts within a factor 1e6 of it (N(0, 1) weights in a shallow MLP: ~1e3).
ABSURD_FACTOR = 1e6


def loss_ceiling(spec: Spec, data: DataBundle) -> float:
    """The loss above which a step counts as diverged, whatever the first loss was.

    >>> loss_ceiling(Spec(), data)   # doctest: +SKIP
    2302585.09...
    """
    if data.task == "classification":
        guess = chance_value(spec.loss_name, data.num_classes)
    else:
        guess = float(data.train_y.float().var()) if len(data.train_y) > 1 else 1.0
    return ABSURD_FACTOR * max(guess, 1.0)


def correct_count(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """How many rows of `out` (logits; the last dimension is the class) predict `y`,
    over the last-but-one dimension: one count per model for stacked outputs. A row
    with NaN or inf logits has no prediction (its argmax would be class 0)."""
    return ((out.argmax(-1) == y) & torch.isfinite(out).all(-1)).sum(-1)


class Learner:
    """Holds what one run is made of; `fit()` runs the loop and calls the callbacks."""

    def __init__(self, spec: Spec, model: nn.Module, data: DataBundle, callbacks: Iterable[Callback],
                 loss_fn: LossFn | None = None):
        self.spec, self.model, self.data = spec, model, data
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(spec, param_groups(spec, model))
        self.loss_fn = loss_fn or build_loss(spec, data.train_y, data.num_classes)
        self.classes = data.task == "classification"
        self.callbacks = list(callbacks)
        # From the data, not the spec: a rare_class cut leaves fewer examples than the spec knows.
        self.total_steps = len(data.train_x) // spec.batch_size * spec.epochs
        self.step, self.epoch, self.lr, self.stop, self.diverged = 0, 0, spec.lr, False, False
        self.weights_replaced = False  # set by a callback that puts back an earlier epoch's weights
        self.step_rows: list[dict] = []
        self.epoch_rows: list[dict] = []
        self.probes: pd.DataFrame | None = None
        self.extra: dict = {}
        self.log: dict = {}

    def _call(self, hook: str) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self)

    def begin(self) -> torch.Generator:
        """Before the first epoch: the generator of the batch order, and the callbacks' before_fit."""
        self.started = time.perf_counter()
        self.first_loss: float | None = None  # the yardstick for DIVERGENCE_FACTOR
        self.ceiling = loss_ceiling(self.spec, self.data)
        batches = torch.Generator().manual_seed(self.spec.seed)
        self._call("before_fit")
        return batches

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.epoch_started, self.losses, self.correct = epoch, time.perf_counter(), [], 0
        self.model.train()
        self._call("before_epoch")

    def prepare(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """The batch after every callback's transform; then before_step."""
        for cb in self.callbacks:
            xb = cb.transform_batch(self, xb)
        # The batch as the model gets it, every transform applied: for callbacks to read.
        self.log, self.xb, self.yb = {}, xb, yb
        self._call("before_step")
        return xb

    def loss_ok(self, loss: float) -> bool:
        """False once the run has diverged (see DIVERGENCE_FACTOR and ABSURD_FACTOR)."""
        if self.first_loss is None:
            self.first_loss = loss
        return math.isfinite(loss) and loss <= min(DIVERGENCE_FACTOR * max(self.first_loss, 1.0), self.ceiling)

    def diverge(self) -> None:  # divergence is a lesson, not a crash: record it and stop
        self.diverged, self.stop, self.grad_norm = True, True, torch.tensor(math.nan)

    def record_step(self, loss: float, correct: int) -> None:
        """The step's row, then after_step; the epoch's running loss and correct count."""
        self.step_rows.append({"step": self.step, "epoch": self.epoch + 1, "loss": loss, "lr": self.lr,
                               "grad_norm": float(self.grad_norm), **self.log})
        self.step += 1
        self._call("after_step")
        self.losses.append(loss)
        self.correct += correct

    def _train_step(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        with autocast(xb.device):
            out = full_precision(self.model(xb))
        self.loss = self.loss_fn(out, yb)
        loss = self.loss.item()
        if self.loss_ok(loss):
            self.optimizer.zero_grad(set_to_none=True)
            self.loss.backward()
            self.grad_norm = global_grad_norm(self.params)
            self._call("after_backward")
            self.optimizer.step()
        else:
            self.diverge()
        self.record_step(loss, int(correct_count(out, yb)) if self.classes else 0)

    def end_epoch(self) -> None:
        """The epoch's row (validation included), then after_epoch."""
        val_loss, val_acc = evaluate(self.model, self.data.val_x, self.data.val_y, loss_fn=self.loss_fn)
        n = len(self.losses)
        row = {"epoch": self.epoch + 1, "train_loss": sum(self.losses) / n,
               "train_acc": self.correct / (n * self.spec.batch_size) if self.classes else math.nan,
               "val_loss": val_loss, "val_acc": val_acc}
        if not self.classes:  # the error in the target's own units, comparable across target scalings
            row["val_rmse"] = math.sqrt(val_loss) * self.data.target_std
        self.epoch_rows.append({**row, "lr": self.lr, "seconds": time.perf_counter() - self.epoch_started})
        self._call("after_epoch")

    def fit(self) -> Run:
        batches = self.begin()
        for epoch in range(self.spec.epochs):
            self.start_epoch(epoch)
            for xb, yb in self.data.batches(self.spec.batch_size, batches):
                self._train_step(self.prepare(xb, yb), yb)
                if self.stop:
                    break
            self.end_epoch()
            if self.stop:
                break
        return self.finish()

    def finish(self) -> Run:
        """after_fit, the final metrics (test set included), and the Run."""
        self._call("after_fit")
        last = self.epoch_rows[-1]
        val_loss, val_acc = last["val_loss"], last["val_acc"]
        if self.weights_replaced:  # the last epoch's numbers no longer describe the model
            val_loss, val_acc = evaluate(self.model, self.data.val_x, self.data.val_y, loss_fn=self.loss_fn)
        test_loss, test_acc = evaluate(self.model, self.data.test_x, self.data.test_y, loss_fn=self.loss_fn)
        final = {"train_loss": last["train_loss"], "train_acc": last["train_acc"], "val_loss": val_loss,
                 "val_acc": val_acc, "test_loss": test_loss, "test_acc": test_acc}
        if self.classes:
            recalls = recall_by_class(self.model, self.data.val_x, self.data.val_y, self.data.num_classes)
            final.update({f"val_recall_{c}": r for c, r in enumerate(recalls)})
        else:
            final["val_rmse"] = math.sqrt(val_loss) * self.data.target_std
            final["test_rmse"] = math.sqrt(test_loss) * self.data.target_std
        completed = len(self.epoch_rows) - (1 if self.diverged else 0)
        return Run(self.spec, pd.DataFrame(self.step_rows), pd.DataFrame(self.epoch_rows), final,
                   self.diverged, completed, time.perf_counter() - self.started, str(self.data.train_x.device),
                   self.probes, self.extra, self.model)


def default_callbacks(spec: Spec, progress: bool | None = None) -> list[Callback]:
    """The callbacks a spec asks for: schedule, augmentation, L1, clipping, early
    stopping, probes, progress bar, a teaching fault; and the doctor's vitals, which
    every run records."""
    cbs: list[Callback] = [Schedule(), Vitals(), *fault_callbacks(spec)]
    if spec.augment:
        cbs.append(Augment(spec.augment, spec.seed))
    if spec.l1:
        cbs.append(L1Penalty(spec.l1))
    if spec.clip_norm is not None or spec.clip_value is not None:
        cbs.append(Clip(spec.clip_norm, spec.clip_value))
    if spec.patience is not None:
        cbs.append(EarlyStopping(spec.patience))
    if spec.probe_every:
        cbs.append(Probes(spec.probe_every))
    if progress if progress is not None else progress_enabled():
        cbs.append(Progress())
    return cbs


def fit(spec: Spec, callbacks: Iterable[Callback] = (), *, data: DataBundle | None = None,
        model: nn.Module | None = None, loss: LossFn | None = None, progress: bool | None = None,
        max_threads: int | None = None) -> Run:
    """Train the spec's model on the spec's data and return the finished Run.

    `callbacks` are added after the spec's own; `data` reuses tensors already loaded
    (they must match the spec); `model` trains a given model (e.g. a pretrained one)
    instead of building one; `loss` (a callable `loss(outputs, targets)`, mean over
    the batch) replaces the spec's loss, for training and for the validation and test
    loss. A NaN or inf loss, one 1000x its start, or one 1e6x a blind guess's (`loss_ceiling`)
    stops the run and sets `run.diverged`.
    The run uses as many CPU threads as there are free cores (`trainlab.threads`),
    at most `max_threads`.

    >>> run = fit(Spec(subset=2000, epochs=1, lr=3e-3))   # doctest: +SKIP
    >>> run.epochs.columns.tolist()                        # doctest: +SKIP
    ['epoch', 'train_loss', 'train_acc', 'val_loss', 'val_acc', 'lr', 'seconds']
    """
    device = resolve_device(spec.device)  # fails before any work if the device is absent
    check_fits(spec, device)  # a model too big for the device is a SpecError, before data loads
    data = data if data is not None else load_data(spec, device)
    seed_everything(spec.seed)
    if model is None:
        model = build_model(spec, data.input_shape, data.num_classes)
    model = model.to(data.device)
    learner = Learner(spec, model, data, default_callbacks(spec, progress) + list(callbacks), loss)
    if loss is not None:  # the spec cannot name it; the run should
        learner.extra["custom_loss"] = getattr(loss, "__name__", type(loss).__name__)
    with run_threads(max_threads) as claim:
        learner.extra["threads"] = claim.threads
        learner.callbacks.append(ShareCores(claim))
        return learner.fit()
