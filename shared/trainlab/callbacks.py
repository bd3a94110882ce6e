"""Everything optional in training, plugged into the loop from outside it.

A callback overrides any of the hooks below; each receives the Learner, whose
attributes (spec, model, optimizer, step, epoch, loss, grad_norm, lr, stop, log)
it may read, and some of which it may set: `stop = True` ends the run after this
step, and entries put in `log` become columns of the per-step history.

>>> class PrintLoss(Callback):
...     def after_epoch(self, learner):
...         print(learner.epoch, learner.epoch_rows[-1]["val_loss"])
>>> run = fit(Spec(subset=2000, epochs=2), callbacks=[PrintLoss()])  # doctest: +SKIP
"""
from __future__ import annotations

import os
from typing import Sequence

import torch

from .optim import clip_gradients, lr_at, set_lr


class Callback:
    def transform_batch(self, learner, xb):
        """Return the training batch to use (augmentation replaces it); default: unchanged."""
        return xb

    def before_fit(self, learner) -> None: ...
    def before_epoch(self, learner) -> None: ...
    def before_step(self, learner) -> None: ...
    def after_backward(self, learner) -> None: ...
    def after_step(self, learner) -> None: ...
    def after_epoch(self, learner) -> None: ...
    def after_fit(self, learner) -> None: ...


class Schedule(Callback):
    """Sets the LR of every step from the spec's schedule and warm-up."""

    def before_step(self, learner) -> None:
        learner.lr = lr_at(learner.spec, learner.step, learner.total_steps)
        set_lr(learner.optimizer, learner.lr)


# Most steps clipped means the threshold, not the data, sets every step's size: the
# run is then plain normalised-gradient descent, and the threshold is a second LR.
MOSTLY_CLIPPED = 0.5


class Clip(Callback):
    """Gradient clipping by global norm and/or by value, after the unclipped norm is logged.

    Logs `clipped` per step (whether the gradient was changed) and puts in
    `run.extra["clipping"]` the fraction of clipped steps and the 50th, 90th and 99th
    percentiles of the unclipped norm (the tuning playbook sets a threshold from
    them). Warns when more than half of the steps were clipped.
    """

    def __init__(self, max_norm: float | None = None, max_value: float | None = None):
        self.max_norm, self.max_value = max_norm, max_value

    def after_backward(self, learner) -> None:
        grads = [p.grad for p in learner.params if p.grad is not None]
        learner.log["clipped"] = clip_gradients(grads, self.max_norm, self.max_value, learner.grad_norm)

    def after_fit(self, learner) -> None:
        import math
        import warnings
        rows = [r for r in learner.step_rows if "clipped" in r]
        if not rows:
            return
        norms = torch.tensor([r["grad_norm"] for r in rows if math.isfinite(r["grad_norm"])], dtype=torch.float64)
        fraction = sum(r["clipped"] for r in rows) / len(rows)
        stats = {"clipped_fraction": fraction}
        for q in (50, 90, 99):
            stats[f"norm_p{q}"] = float(torch.quantile(norms, q / 100)) if len(norms) else math.nan
        learner.extra["clipping"] = stats
        if fraction > MOSTLY_CLIPPED:
            warnings.warn(f"{fraction:.0%} of steps were clipped (clip_norm={self.max_norm}, "
                          f"clip_value={self.max_value}): the threshold, not the gradient, sets the step size. "
                          f"The unclipped norm's 90th percentile was {stats['norm_p90']:.3g}.", stacklevel=2)


def progress_enabled() -> bool:
    return os.environ.get("TRAINLAB_PROGRESS", "1") not in ("0", "false", "no")


class Progress(Callback):
    """A tqdm bar over all steps of the run, with the latest loss."""

    def before_fit(self, learner) -> None:
        from tqdm.auto import tqdm
        self.bar = tqdm(total=learner.total_steps, desc="train", leave=False, unit="step")

    def after_step(self, learner) -> None:
        self.bar.update(1)
        if learner.step % 20 == 0:
            self.bar.set_postfix(loss=f"{learner.step_rows[-1]['loss']:.4f}", refresh=False)

    def after_fit(self, learner) -> None:
        self.bar.close()


class LivePlot(Callback):
    """Redraws train and validation loss after every epoch, in place, in a notebook.
    Outside a notebook it only keeps `self.fig` up to date."""

    def before_fit(self, learner) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display
        self.fig, self.ax = plt.subplots(figsize=(6, 3.5))
        plt.close(self.fig)  # shown through the display handle only, not twice
        self.handle = display(self.fig, display_id=True)

    def after_epoch(self, learner) -> None:
        import pandas as pd
        steps, epochs = pd.DataFrame(learner.step_rows), pd.DataFrame(learner.epoch_rows)
        per_epoch = max(learner.spec.steps_per_epoch, 1)
        self.ax.clear()
        self.ax.plot(steps["step"] / per_epoch, steps["loss"], alpha=0.35, label="train (per step)")
        self.ax.plot(epochs["epoch"], epochs["val_loss"], "o-", label="validation")
        self.ax.set(xlabel="epoch", ylabel="loss", title=f"epoch {learner.epoch + 1}/{learner.spec.epochs}")
        self.ax.legend()
        if self.handle is not None:  # None outside IPython: the figure is still kept current
            self.handle.update(self.fig)


class EarlyStopping(Callback):
    """Stops when validation loss has not improved for `patience` epochs and puts
    back the weights of the best epoch (`epochs_before_stop` is the same rule on a
    logged curve)."""

    def __init__(self, patience: int = 3, min_delta: float = 0.0):
        self.patience, self.min_delta = patience, min_delta

    def before_fit(self, learner) -> None:
        if len(learner.data.val_x) == 0:  # NaN validation loss would never improve
            raise ValueError(f"EarlyStopping needs a validation set; val_fraction is {learner.spec.val_fraction}")
        self.best, self.best_state, self.bad = float("inf"), None, 0

    def after_epoch(self, learner) -> None:
        val = learner.epoch_rows[-1]["val_loss"]
        if val < self.best - self.min_delta:
            self.best, self.bad = val, 0
            self.best_state = {k: v.detach().clone() for k, v in learner.model.state_dict().items()}
            learner.extra["best_epoch"] = learner.epoch + 1
        else:
            self.bad += 1
            learner.stop = self.bad >= self.patience

    def after_fit(self, learner) -> None:
        if self.best_state is not None and learner.extra["best_epoch"] != len(learner.epoch_rows):
            learner.model.load_state_dict(self.best_state)
            learner.weights_replaced = True


def epochs_before_stop(losses: Sequence[float], patience: int, min_delta: float = 0.0) -> int:
    """How many epochs `EarlyStopping(patience, min_delta)` trains on a run whose
    per-epoch validation losses are `losses`, the same rule applied to a logged
    curve: it stops once `patience` epochs in a row bring no value below the best so
    far by more than `min_delta`. A run that early stopping did not cut short has the
    same curve up to the stop, so its logged validation loss says when the stop comes;
    the rule applied to its training loss says what would happen to a curve that does
    not rise (notebook 11).

    >>> epochs_before_stop([1.0, 0.8, 0.7, 0.75, 0.9, 1.1, 1.2], patience=3)
    6
    >>> epochs_before_stop([1.0, 0.8, 0.7, 0.6], patience=3)
    4
    """
    if patience < 1:
        raise ValueError(f"patience: {patience!r} is not allowed; expected a whole number >= 1")
    best, since = float("inf"), 0
    for epoch, loss in enumerate(losses, 1):
        if loss < best - min_delta:
            best, since = loss, 0
        else:
            since += 1
            if since >= patience:
                return epoch
    return len(losses)


class ShareCores(Callback):
    """Every `every` steps, move this run's torch threads to the share of the cores it
    may hold now (`trainlab.threads.ThreadClaim`), so runs that started together, or
    a run joined by a newcomer, stop fighting over cores within a fraction of a second."""

    def __init__(self, claim, every: int = 20) -> None:
        self.claim, self.every = claim, every

    def before_step(self, learner) -> None:
        if learner.step and learner.step % self.every == 0:
            before = self.claim.threads
            if self.claim.rebalance() != before:
                torch.set_num_threads(self.claim.threads)

    def before_epoch(self, learner) -> None:
        learner.extra.setdefault("threads_by_epoch", []).append(self.claim.threads)
