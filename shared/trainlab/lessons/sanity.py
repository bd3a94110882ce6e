"""Sanity checks to run before a long training run (notebook 00).

The checks of the Stanford CS231n notes ("Neural Networks Part 3: Learning and
Evaluation", sanity checks) and of A. Karpathy's "A Recipe for Training Neural
Networks" (2019), as small functions of a spec:

- `init_loss`: the loss of a freshly initialised network on real images, for a
  task of any number of classes C (a subset of the dataset's classes, relabelled
  0..C-1, with a C-output head). A network that spreads its bets evenly scores
  ln C; how close a fresh one comes depends on the scale of its output layer
  (`out_std` redraws that layer's weights from N(0, out_std²)).
- `overfit_spec`: a run whose whole training set is one batch, trained for many
  steps: a network that cannot drive the loss on a few dozen images to near zero
  has a bug, or too little capacity, or a bad LR.
- `with_l2` / `l2_table`: a loss that adds the L2 penalty ½·λ·Σw² (weight matrices,
  not biases), so the loss a run reports includes it, against `weight_decay` in the
  optimizer, which changes the steps but not the reported loss.
- `zero_inputs` / `input_independent_run`: Karpathy's input-independent baseline, the
  spec trained with every input set to zero and the labels kept; a model that uses
  its inputs must beat it.
- `batch_as_seen` / `batch_plot`: the first training batch exactly as the model
  receives it (after scaling, on the run's device) with the labels its loss sees,
  drawn with its value range, where a shuffled label or a wrong scaling shows.
- `overfit_view`: the Explore panel of notebook 00 (a plain function of the spec).

>>> spec = Spec(subset=5000, batch_size=32, optimizer="sgd", lr=0.1, schedule="constant")
>>> s = overfit_spec(spec)
>>> s.train_size, s.batch_size, s.steps_per_epoch, s.epochs
(32, 32, 1, 200)
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from .. import plots
from ..bundle import DataBundle
from ..callbacks import Callback
from ..data import load_data, probe_batch
from ..device import to_model
from ..losses import LossFn
from ..models import fresh_model  # noqa: F401  (notebook 00 calls sanity.fresh_model)
from ..run import Run
from ..spec import Spec, SpecError

OVERFIT_STEPS = 200          # steps on the one batch: enough for SGD at lr 0.1 to reach ~1e-3
OVERFIT_LOSS_RANGE = (1e-4, 1e1)   # fixed y range of the panel: from near zero to well above ln 10
PROBE_IMAGES = 512           # images the loss at initialisation is measured on
# What each label means, so that a label printed under an image can be checked by eye.
LABEL_NAMES = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion_mnist": ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
                      "bag", "ankle boot"),
}


def images_of_classes(x: torch.Tensor, y: torch.Tensor, classes: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Only the examples of `classes`, relabelled 0..len(classes)-1 in the order given:
    a C-class task cut from a larger one.

    >>> x, y = torch.arange(6.0)[:, None], torch.tensor([0, 1, 2, 3, 1, 3])
    >>> xs, ys = images_of_classes(x, y, [3, 1])
    >>> xs[:, 0].tolist(), ys.tolist()
    ([1.0, 3.0, 4.0, 5.0], [1, 0, 1, 0])
    """
    classes = [int(c) for c in classes]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise SpecError("classes", classes, "two or more different class labels")
    lookup = torch.full((max(max(classes), int(y.max())) + 1,), -1, dtype=torch.long, device=y.device)
    lookup[classes] = torch.arange(len(classes), device=y.device)
    new = lookup[y]
    keep = new >= 0
    if not keep.any():
        raise SpecError("classes", classes, "labels that occur in y")
    return x[keep], new[keep]


@torch.no_grad()
def redraw_output(model: nn.Sequential, std: float) -> nn.Sequential:
    """Redraw the output layer's weights from N(0, std²) and zero its bias, in place:
    CS231n's "small parameters" for the last layer only."""
    if not (isinstance(std, (int, float)) and std >= 0):
        raise SpecError("out_std", std, "a number >= 0")
    model.out.weight.normal_(0.0, float(std))
    if model.out.bias is not None:
        model.out.bias.zero_()
    return model


def probe_images(spec: Spec, n: int = PROBE_IMAGES) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` real training images of the spec's dataset, scaled as the spec says, with labels."""
    x, y, _ = probe_batch(spec, n)
    return x, y


@torch.no_grad()
def init_loss(spec: Spec, classes: Sequence[int] | None = None, out_std: float | None = None,
              n: int = PROBE_IMAGES, images: tuple[torch.Tensor, torch.Tensor] | None = None) -> float:
    """Mean cross-entropy of the spec's freshly initialised model on `n` real images.

    `classes` (default: all) keeps only those classes' images and gives the model one
    output per kept class; `out_std` (default: the spec's init) redraws the output
    layer from N(0, out_std²). A network whose outputs are all equal scores ln C.
    `images` (x, y) reuses images already loaded by `probe_images`.
    """
    x, y = images if images is not None else probe_images(spec, n)
    if classes is not None:
        x, y = images_of_classes(x, y, classes)
    model = fresh_model(spec, num_classes=len(classes) if classes is not None else None)
    if out_std is not None:
        redraw_output(model, out_std)
    model.eval()
    x, y = to_model(model, x, y)
    return F.cross_entropy(model(x), y).item()


def init_loss_table(spec: Spec, class_counts: Sequence[int] = (2, 3, 5, 10),
                    out_stds: Sequence[float] = (1e-3, 1e-2, 1e-1, 1.0), n: int = PROBE_IMAGES,
                    images: tuple[torch.Tensor, torch.Tensor] | None = None) -> pd.DataFrame:
    """`init_loss` for tasks of C = the first `c` classes and output layers N(0, std²),
    and for the spec's own init (out_std NaN); with ln C and the ratio loss / ln C.
    `images` (x, y) reuses images already loaded by `probe_images`."""
    rows = []
    images = images if images is not None else probe_images(spec, n)
    for c in class_counts:
        classes = list(range(c))
        for std in [None, *out_stds]:
            loss = init_loss(spec, classes, std, images=images)
            rows.append({"classes": c, "out_std": math.nan if std is None else std, "loss at init": loss,
                         "ln C": math.log(c), "loss / ln C": loss / math.log(c)})
    return pd.DataFrame(rows)


def init_loss_plot(table: pd.DataFrame, title: str = "loss at initialisation / ln C") -> Figure:
    """`init_loss_table` drawn: loss / ln C against the output layer's std, one line per C,
    with the spec's own init as a marker on the right-hand edge."""
    fig, (ax,) = plots.figure(width=6.4)
    redrawn = table[table["out_std"].notna()]
    own = table[table["out_std"].isna()]
    for i, (c, part) in enumerate(redrawn.groupby("classes", sort=True)):
        line, = ax.plot(part["out_std"], part["loss / ln C"], marker="o", ms=4,
                        ls=plots.LINESTYLES[i % len(plots.LINESTYLES)], label=f"C = {c}")
        mine = own[own["classes"] == c]["loss / ln C"]
        if len(mine):
            ax.plot([1.0], [mine.iloc[0]], marker="*", ms=11, color=line.get_color(), ls="none",
                    transform=ax.get_yaxis_transform(), clip_on=False)
    ax.axhline(1.0, color="black", lw=0.8, ls=":")
    ax.set(xscale="log", yscale="log", xlabel="std of the output layer's weights",
           ylabel="loss at init / ln C", title=title)
    ax.annotate("★ on the right edge: the spec's own init", (0.01, 0.97), xycoords="axes fraction",
                va="top", fontsize=8)
    plots.legend_outside(ax)
    return fig


def overfit_spec(spec: Spec, steps: int = OVERFIT_STEPS) -> Spec:
    """A run on one batch: the training set is `spec.batch_size` images, so every step
    sees the same batch; as many other images are held out for validation. `steps`
    becomes the number of epochs (one step each). Everything else is the spec's."""
    n = spec.batch_size
    if n < 10:
        raise SpecError("batch_size", n, "at least 10 for the one-batch run (its subset, 2 x batch, must be >= 20)")
    return spec.replace(subset=2 * n, val_fraction=0.5, epochs=steps, rare_class=None, rare_keep=1.0)


def l2_penalty(model: nn.Module, lam: float) -> torch.Tensor:
    """½·λ·Σw² over the weight matrices and kernels of `model` (biases and norm gains
    are left out, as is usual)."""
    weights = [p for p in model.parameters() if p.ndim > 1]
    return 0.5 * lam * sum((w * w).sum() for w in weights)


def with_l2(loss: LossFn, model: nn.Module, lam: float) -> LossFn:
    """`loss` plus the L2 penalty of `model`'s weights: what a run reports when the
    penalty is part of the loss (CS231n's data loss + regularisation loss)."""
    def penalised(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss(out, y) + l2_penalty(model, lam)
    penalised.__name__ = f"loss + L2 (lambda {lam:g})"
    return penalised


def l2_table(spec: Spec, lams: Sequence[float]) -> pd.DataFrame:
    """The loss each run reports at its first step, for every λ: with the penalty
    in the loss (`with_l2`) and with `weight_decay=λ` in the optimizer instead.

    Each run is one step of `spec` from the same initial weights, so the first
    reported loss is the loss at initialisation. Columns: lambda, the penalty
    ½λΣw² computed directly, and the two reported losses.
    """
    from ..train import fit
    one_step = spec.replace(epochs=1, subset=2 * spec.batch_size, val_fraction=0.5)
    rows = []
    for lam in lams:
        model = fresh_model(one_step)
        with torch.no_grad():
            penalty = l2_penalty(model, lam).item()
        in_loss = fit(one_step, model=model, loss=with_l2(F.cross_entropy, model, lam), progress=False)
        in_optimizer = fit(one_step.replace(weight_decay=lam), progress=False)
        rows.append({"lambda": lam, "½λΣw²": penalty,
                     "reported loss (penalty in the loss)": in_loss.steps["loss"].iloc[0],
                     "reported loss (weight_decay in the optimizer)": in_optimizer.steps["loss"].iloc[0]})
    return pd.DataFrame(rows)


def worst_element(f, *inputs: torch.Tensor, h: float = 1e-5) -> dict[str, float]:
    """Where `gradient_check(f, *inputs)` finds its worst relative error, and how large
    the gradient is there: `relative error`, `|gradient| there` and `largest |gradient|`.

    The centred difference in float64 has an absolute error of roughly 1e-11 (for a loss
    of order 1 and h = 1e-5), so an element whose true gradient is itself tiny shows a
    large relative error while a correct gradient is computed. Only float inputs are
    checked; integer inputs (labels) are passed through.

    >>> out = worst_element(lambda v: (v ** 3).sum(), torch.tensor([1.0, 2.0]))
    >>> out["relative error"] < 1e-7, out["largest |gradient|"]
    (True, 12.0)
    """
    from ..gradcheck import numerical_gradient, relative_error
    xs = [x.detach().double().clone().requires_grad_(True) if x.is_floating_point() else x for x in inputs]
    checked = [x for x in xs if x.is_floating_point()]
    if not checked:
        raise SpecError("inputs", [x.dtype for x in inputs], "at least one float tensor to check")
    analytic = torch.autograd.grad(f(*xs), checked, allow_unused=True)
    best = {"relative error": -1.0, "|gradient| there": math.nan, "largest |gradient|": 0.0}
    for x, a in zip(checked, analytic):
        a = torch.zeros_like(x) if a is None else a
        err = relative_error(a, numerical_gradient(lambda: f(*xs), x, h))
        i = int(err.argmax())
        if float(err.view(-1)[i]) > best["relative error"]:
            best.update({"relative error": float(err.view(-1)[i]), "|gradient| there": float(a.view(-1)[i].abs())})
        best["largest |gradient|"] = max(best["largest |gradient|"], float(a.abs().max()))
    return best


def first_last(run, k: int = 10) -> tuple[float, float]:
    """Mean training loss over the first and over the last `k` steps of a run."""
    loss = run.steps["loss"]
    k = max(1, min(k, len(loss) // 2))
    return float(loss.iloc[:k].mean()), float(loss.iloc[-k:].mean())


def overfit_view(spec: Spec) -> Figure:
    """The one-batch run of `overfit_spec(spec)` (cached): the training loss on the
    batch per step (log scale), and the accuracy on the batch against as many
    held-out images."""
    from ..sweeps import run_cached
    one = overfit_spec(spec)
    run = run_cached(one)
    fig, axes = plots.figure(ncols=2, width=4.6)
    plots.curves({f"batch of {one.batch_size}": run}, "loss", ax=axes[0], logy=True, ylim=OVERFIT_LOSS_RANGE,
                 title="training loss on the one batch")
    ep = run.epochs
    axes[1].plot(ep["epoch"], ep["train_acc"], label="the batch (training)")
    axes[1].plot(ep["epoch"], ep["val_acc"], ls="--", label=f"{one.batch_size} held-out images")
    axes[1].set(ylim=(0.0, 1.02), xlabel="step", ylabel="accuracy", title="accuracy")
    plots.legend_outside(axes[1])
    for ax in axes:
        ax.set_xlim(0, one.epochs)
    loss = run.steps["loss"]
    state = "diverged" if run.diverged else f"loss {loss.iloc[0]:.2g} at the first step, {loss.iloc[-1]:.2g} at the last"
    fig.suptitle(f"one batch of {one.batch_size}, {one.optimizer} lr {one.lr:g}: {state}")
    fig.tight_layout()
    return fig


def zero_inputs(data: DataBundle) -> DataBundle:
    """A copy of `data` whose inputs (training, validation and test) are all zero and
    whose labels are kept: nothing a model sees then says anything about the label.

    >>> bundle = DataBundle(*(torch.ones(2, 1, 2, 2), torch.tensor([0, 1])) * 3, num_classes=2,
    ...                     mean=torch.zeros(1), std=torch.ones(1))
    >>> zeroed = zero_inputs(bundle)
    >>> zeroed.train_x.abs().sum().item(), zeroed.val_y.tolist(), bundle.train_x.sum().item()
    (0.0, [0, 1], 8.0)
    """
    return dataclasses.replace(data, train_x=torch.zeros_like(data.train_x), val_x=torch.zeros_like(data.val_x),
                               test_x=torch.zeros_like(data.test_x))


def input_independent_run(spec: Spec) -> Run:
    """`spec` trained on all-zero inputs with its own labels, split and seed (so the
    same initial weights and batch order as `fit(spec)`): the input-independent
    baseline of Karpathy's recipe. Every image looks the same to this model, so it can
    only learn how often each class occurs. Not cached: the spec does not say the
    inputs were zeroed.

    >>> baseline = input_independent_run(Spec(subset=2000, epochs=1))   # doctest: +SKIP
    >>> baseline.final["val_acc"]                                       # doctest: +SKIP
    0.11
    """
    from ..train import fit
    return fit(spec, data=zero_inputs(load_data(spec)), progress=False)


def constant_guess(spec: Spec) -> dict[str, float]:
    """What a model that ignores its inputs can learn from the spec's training labels,
    scored on its validation labels: always naming the most frequent training class
    (`accuracy`, that class's share of the validation set) and giving every image the
    training set's class frequencies (`loss`, their cross-entropy).

    >>> constant_guess(Spec(subset=2000))   # doctest: +SKIP
    {'most frequent class': 1, 'accuracy': 0.11, 'loss': 2.30}
    """
    data = load_data(spec)
    counts = torch.bincount(data.train_y.cpu(), minlength=data.num_classes).double()
    prior = counts / counts.sum()
    top = int(prior.argmax())
    val_y = data.val_y.cpu()
    return {"most frequent class": top, "accuracy": float((val_y == top).double().mean()),
            "loss": float(-prior[val_y].clamp_min(1e-12).log().mean())}


class _FirstBatch(Callback):
    """Keeps the first batch the loop passes to the model (`learner.xb`, after every
    transform) and its labels, then ends the run after that step."""

    def after_step(self, learner) -> None:
        self.x, self.y = learner.xb.detach().clone(), learner.yb.detach().clone()
        learner.stop = True


def batch_as_seen(spec: Spec) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The first training batch of `fit(spec)` exactly as the model receives it (after
    the harness's scaling and any augmentation, before the model's own flattening),
    the labels the loss is given for it, and the device it was on. The tensors come
    back with `.cpu()` so they can be drawn. One step of the spec is run to get them.

    >>> x, y, device = batch_as_seen(Spec(subset=2000, batch_size=16))   # doctest: +SKIP
    >>> x.shape, y.shape                                                  # doctest: +SKIP
    (torch.Size([16, 1, 28, 28]), torch.Size([16]))
    """
    from ..train import fit
    first = _FirstBatch()
    fit(spec.replace(epochs=1), callbacks=[first], progress=False)
    return first.x.cpu(), first.y.cpu(), str(first.x.device)


def batch_plot(x: torch.Tensor, y: torch.Tensor, names: Sequence[str] | None = None, n: int = 8,
               title: str = "") -> Figure:
    """The first `n` images of a batch (N, C, H, W, or flat N x H*W for square
    one-channel images) with the label each is trained on, all on one colour scale
    whose bar shows the values the network receives.

    >>> fig = batch_plot(torch.randn(4, 1, 28, 28), torch.tensor([3, 1, 4, 1]), n=4)
    >>> len(fig.axes)   # four images and the colour bar
    5
    """
    x = x.detach().cpu()[:n]
    if x.ndim == 2:
        side = math.isqrt(x.shape[1])
        x = x.reshape(-1, 1, side, side)
    x = x.float().mean(1)   # one grey image per example: the mean over channels
    lo, hi = float(x.min()), float(x.max())
    fig, axes = plots.figure(ncols=len(x), width=1.5, height=2.0)
    for ax, img, label in zip(axes, x, y[:n].tolist()):
        shown = ax.imshow(img.cpu().numpy(), cmap="gray", vmin=lo, vmax=hi)
        ax.set_title(names[label] if names is not None else str(label), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=axes, fraction=0.02, pad=0.01, label="value the network receives")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def centred_difference_error(h: float, dtype: torch.dtype = torch.float64, w: float = 1.3) -> float:
    """The relative error of the centred difference (f(w + h) − f(w − h)) / 2h against
    the exact derivative of f(w) = sin(w)·w², as the gradient check computes it
    (|a − n| / max(|a|, |n|)). Too large an h is limited by truncation (about h²), too
    small a one by rounding (about the dtype's precision / h).

    >>> f"{centred_difference_error(1e-5):.0e}"
    '3e-11'
    """
    f = lambda v: torch.sin(v) * v ** 2   # noqa: E731  (the function under test, in one line)
    at = torch.tensor(w, dtype=dtype, device="cpu")   # one number: the CPU on purpose
    numeric = (f(at + h) - f(at - h)) / (2 * h)
    exact = torch.cos(at) * at ** 2 + 2 * at * torch.sin(at)
    return (abs(numeric - exact) / max(abs(numeric), abs(exact))).item()
