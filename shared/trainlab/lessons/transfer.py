"""Transfer learning: pretrain on one task, fine-tune on another with few labels.

The pieces are small and explicit: `pretrain` trains (or loads) a source model,
`new_head` swaps its output layer for a fresh one sized for the target task,
`freeze` stops gradients into the pretrained layers, and `transfer` fine-tunes the
result on the target spec, in one stage or in two (`two_stage`: the new head alone on
the frozen body, then every layer). A different LR for the pretrained body and the new head
is the spec field `body_lr_factor` (the optimizer gets two parameter groups, see
`trainlab.optim.param_groups`). `greedy_layerwise` builds a deep MLP one hidden
layer at a time (the supervised variant of Bengio et al. 2007). Every run is cached
on disk, keyed by the target spec and by how its starting weights were made.

>>> target = Spec(classes="5-9", train_labels=100, batch_size=25, epochs=20)
>>> source = source_spec(target, "same")        # the other half of the same dataset
>>> source.classes, source.train_labels
((0, 1, 2, 3, 4), None)
>>> run = transfer(target, source, mode="finetune")   # doctest: +SKIP
>>> run.final["val_acc"]                               # doctest: +SKIP
"""
from __future__ import annotations

import copy
import math
import numbers
import re
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping

import pandas as pd
import torch
from torch import nn

from ..data import load_data
from ..device import model_device
from ..models import build_model, fresh_model, init_weights  # noqa: F401  (build_model: doctests)
from ..run import Run
from ..spec import TRAIN_SIZES, Spec, SpecError
from ..sweeps import run_cached

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Mode = Literal["scratch", "finetune", "freeze", "two_stage"]
MODES: tuple[str, ...] = ("scratch", "finetune", "freeze", "two_stage")
# The dataset each offline dataset is paired with for cross-dataset transfer.
OTHER = {"mnist": "fashion_mnist", "fashion_mnist": "mnist"}
HALVES = {(0, 1, 2, 3, 4): (5, 6, 7, 8, 9), (5, 6, 7, 8, 9): (0, 1, 2, 3, 4)}


# --- specs ---------------------------------------------------------------------------
def labelled_spec(spec: Spec, n: int, steps: int = 100, batch_size: int = 32, per_epoch: int = 2) -> Spec:
    """`spec` trained on `n` labelled examples for about `steps` steps.

    With 50 labels an epoch is one or two batches, so the profile's epochs would give
    a handful of steps; here the epochs are set so every label count gets about the
    same number of steps (batches of at most `batch_size`, and at most n / `per_epoch`
    so an epoch holds at least `per_epoch`). Every epoch ends with a pass over the
    validation set, which for a CNN costs more than the few steps of an epoch: a
    larger `per_epoch` means fewer, longer epochs.

    >>> s = labelled_spec(Spec(classes="5-9"), 50)
    >>> s.train_labels, s.batch_size, s.epochs
    (50, 25, 50)
    >>> s = labelled_spec(Spec(classes="5-9"), 50, per_epoch=5)
    >>> s.batch_size, s.epochs
    (10, 20)
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise SpecError("n", n, "a whole number of labelled examples >= 1 (the target's train_labels)")
    if isinstance(per_epoch, bool) or not isinstance(per_epoch, numbers.Integral) or per_epoch < 1:
        raise SpecError("per_epoch", per_epoch, "a whole number of batches per epoch >= 1")
    bs = max(1, min(batch_size, n // per_epoch))
    per_epoch = n // bs
    return spec.replace(train_labels=n, batch_size=bs, epochs=max(1, math.ceil(steps / per_epoch)))


def source_spec(target: Spec, source: Literal["same", "other", "oracle"], subset: int | None = None,
                epochs: int | None = None) -> Spec:
    """The pretraining spec for a target, with the target's model and seed:

    - `same`: the other half of the target's own dataset (digits 0-4 for a 5-9 target);
    - `other`: the same classes of the paired dataset (0-4 of Fashion-MNIST for an
      MNIST 5-9 target, and the other way round);
    - `oracle`: the target's own classes, fully labelled: the ceiling a perfectly
      matched source gives, and the positive control of the transfer claims.

    The source is large and fully labelled: `subset` images (default: the
    target's), every label used, `epochs` epochs (default: the target's). Its
    images never overlap the target's validation or test images: the classes
    (`same`) or the dataset (`other`) differ, and `oracle` holds out at least the
    target's validation images (the same seed draws the same permutation, so its
    held-out images include them) and never sees the official test set.

    >>> source_spec(Spec(dataset="fashion_mnist", classes="5-9"), "other").dataset
    'mnist'
    """
    if source not in ("same", "other", "oracle"):
        raise SpecError("source", source, "'same', 'other' or 'oracle'")
    if target.classes not in HALVES:
        raise SpecError("classes", target.classes, "one half of a dataset for a transfer target, '0-4' or '5-9'")
    n = subset or target.subset or TRAIN_SIZES[target.dataset]
    target_val = round(target.val_fraction * (target.subset or TRAIN_SIZES[target.dataset]))
    base = dict(train_labels=None, batch_size=128, epochs=epochs or target.epochs, body_lr_factor=1.0,
                subset=n, val_fraction=0.1)
    if source == "same":
        return target.replace(classes=HALVES[target.classes], **base)
    if source == "other":
        if target.dataset not in OTHER:
            raise SpecError("dataset", target.dataset, f"one with an offline partner for source='other': {list(OTHER)}")
        return target.replace(dataset=OTHER[target.dataset], classes=HALVES[target.classes], **base)
    # oracle: the target's own classes, holding out at least the target's validation images
    fraction = max(0.1, math.ceil(1000 * target_val / n) / 1000)
    if fraction > 0.5:
        raise SpecError("subset", n, f"at least {2 * target_val} images, to hold out the target's {target_val} "
                        "validation images")
    return target.replace(**{**base, "val_fraction": fraction})


def val_size(spec: Spec) -> int:
    """How many validation images the spec's run is judged on (after `classes`):
    the n of `measures.gap_in_se`."""
    return int(load_data(spec).val_y.numel())


# --- model surgery ---------------------------------------------------------------------
def new_head(model: nn.Sequential, num_classes: int, spec: Spec | None = None, seed: int = 0) -> nn.Sequential:
    """A copy of `model` whose output layer `out` is a fresh Linear with `num_classes`
    outputs, initialised like a new model's (the spec's init; default spec if None)
    from `seed`. The other layers keep their trained weights.

    >>> net = new_head(build_model(Spec(depth=2, width=16), (1, 28, 28), 5), 3)
    >>> net.out.out_features
    3
    """
    net = copy.deepcopy(model)
    head = nn.Linear(net.out.in_features, num_classes)
    with torch.random.fork_rng(devices=[]):  # drawn on the CPU: the same head on every device
        torch.manual_seed(seed)
        init_weights(nn.Sequential(head), spec or Spec())
    net.out = head.to(model_device(net))
    return net


def freeze(model: nn.Module, upto: str = "out") -> nn.Module:
    """Set requires_grad False on every layer before the child named `upto` (by
    default: everything but the head). Frozen parameters never reach the optimizer,
    so fitting leaves them bit for bit as they were. Returns the model.

    >>> net = freeze(build_model(Spec(depth=2, width=16), (1, 28, 28), 5))
    >>> [n for n, p in net.named_parameters() if p.requires_grad]
    ['out.weight', 'out.bias']
    """
    names = [n for n, _ in model.named_children()]
    if upto not in names:
        raise SpecError("upto", upto, f"one of the layers {names}")
    for name, child in model.named_children():
        if name == upto:
            break
        for p in child.parameters():
            p.requires_grad_(False)
    return model


def weight_change(before: nn.Module, after: nn.Module, layer: str = "fc1") -> float:
    """How far a layer's weights moved: ||W_after - W_before|| / ||W_before||.

    >>> weight_change(pretrain(source).model, transfer(target, source, keep_model=True).model)  # doctest: +SKIP
    0.21
    """
    weights = []
    for net in (before, after):
        params = dict(net.named_parameters())
        if f"{layer}.weight" not in params:
            have = [name[:-len(".weight")] for name in params if name.endswith(".weight")]
            raise SpecError("layer", layer, f"one of the layers with weights {have}")
        weights.append(params[f"{layer}.weight"].detach().cpu())
    w0, w1 = weights
    return float((w1 - w0).norm() / w0.norm())


# --- cached runs with given starting weights -----------------------------------------------
# The fields that decide which layers a model has and what they compute. A transfer
# trains the source's layers under the target's spec, so these must agree: otherwise
# the run would record an architecture it did not train, and its saved weights would
# not load into the target's model.
ARCHITECTURE = ("model", "depth", "width", "norm", "activation", "dropout")


def check_same_architecture(target: Spec, source: Spec) -> None:
    """Raise SpecError naming every architecture field where `source` differs from
    `target` (the input shape is named `dataset`: MNIST and Fashion-MNIST share one,
    CIFAR-10 does not)."""
    differ = [f for f in ARCHITECTURE if getattr(source, f) != getattr(target, f)]
    if source.input_shape != target.input_shape:
        differ.append("dataset")
    if differ:
        raise SpecError(", ".join(differ), {f: getattr(source, f) for f in differ},
                        "a source with the target's architecture ("
                        + ", ".join(f"{f}={getattr(target, f)!r}" for f in differ)
                        + "): transfer trains the source's layers on the target")


def _seeded_model(spec: Spec, seed_offset: int = 0) -> nn.Sequential:
    """The spec's model, initialised from the spec's seed (plus an offset) without
    touching the global random state."""
    with torch.random.fork_rng(devices=[]):
        return fresh_model(spec, seed_offset)


def pretrain(source: Spec) -> Run:
    """The source run, trained once and cached with its weights; `run.model` is the
    trained network.

    >>> run = pretrain(Spec(classes="0-4", subset=5000, epochs=2))   # doctest: +SKIP
    """
    return run_cached(source, model=True)


def transfer(target: Spec, source: Spec | None, mode: Mode = "finetune", upto: str = "out",
             pretrained: bool = True, keep_model: bool = False, head_epochs: int | None = None) -> Run:
    """Train the target spec starting from the source's trained body.

    - `scratch`: the target's own random init (the same run `fit(target)` gives).
    - `finetune`: the pretrained body with a new head, every layer trained; the
      body's LR is `target.body_lr_factor` times the head's.
    - `freeze`: the pretrained layers before `upto` frozen (default: the whole
      body, so only the new head trains; "fc2" freezes only the first layer).
    - `two_stage`: `freeze` for `head_epochs` of the target's epochs, then every
      layer unfrozen and fine-tuned for the rest, the body at
      `target.body_lr_factor` times the head's LR (see `two_stage`).

    `pretrained=False` is the null case: the source's architecture left untrained (a
    random body drawn from another seed), then the same new head and the same
    training. Without pretraining there is nothing to transfer. `keep_model` saves the
    trained weights with the run, so `run.model` is there when it is loaded again.
    The source must have the target's architecture (`check_same_architecture`):
    the run is recorded, cached and reloaded under the target's spec.

    >>> run = transfer(labelled_spec(target, 100), source, "freeze")   # doctest: +SKIP
    """
    if mode == "scratch":
        return from_scratch(target, keep_model)
    if mode not in MODES:
        raise SpecError("mode", mode, f"one of {', '.join(MODES)}")
    if source is None:
        raise SpecError("source", source, f"a source Spec for mode={mode!r}")
    check_same_architecture(target, source)
    if mode == "two_stage":
        return two_stage(target, source, head_epochs, upto, pretrained, keep_model)
    k = target.num_classes

    def start() -> nn.Module:
        body = pretrain(source).model if pretrained else _seeded_model(source, 1)
        net = new_head(body, k, target, seed=target.seed + 2)
        return freeze(net, upto) if mode == "freeze" else net

    tag = f"{mode}|{upto}" if mode == "freeze" else mode
    tag += "" if pretrained else "|random-body"
    return run_cached(target, model=keep_model, start=start, start_tag=f"{tag}|{source.to_json()}")


def two_stage(target: Spec, source: Spec, head_epochs: int | None = None, upto: str = "out",
              pretrained: bool = True, keep_model: bool = False) -> Run:
    """Fine-tuning in two stages, with as many steps in all as one-stage fine-tuning
    of `target`: first only the new head trains, on the frozen body, for `head_epochs`
    (default: half of `target.epochs`, rounded down, at least 1); then every layer
    trains for the remaining epochs, the body at `target.body_lr_factor` times the
    head's LR. A random head's first gradients are large and point nowhere in
    particular; the first stage keeps them out of the pretrained body.

    Each stage is a cached run with its own LR schedule (stage 1 is the `freeze` run
    of `target` cut to `head_epochs`). The second stage's run is returned, so its
    `spec.epochs` counts only that stage's epochs; its `final` is the fine-tuned
    net's.

    >>> two = transfer(labelled_spec(target, 100).replace(body_lr_factor=0.1), source, "two_stage")  # doctest: +SKIP
    >>> two.spec.epochs + two.extra["head_epochs"] == labelled_spec(target, 100).epochs                # doctest: +SKIP
    True
    """
    if target.epochs < 2:
        raise SpecError("epochs", target.epochs, "at least 2 for two stages (one for the head, one for every layer)")
    first = target.epochs // 2 if head_epochs is None else head_epochs
    if isinstance(first, bool) or not isinstance(first, numbers.Integral) or not 1 <= first < target.epochs:
        raise SpecError("head_epochs", head_epochs, f"a whole number from 1 to {target.epochs - 1} (the target's "
                        "epochs less at least one for the second stage)")
    head = transfer(target.replace(epochs=int(first), body_lr_factor=1.0), source, "freeze", upto=upto,
                    pretrained=pretrained, keep_model=True)

    def start() -> nn.Module:
        net = copy.deepcopy(head.model)
        for p in net.parameters():
            p.requires_grad_(True)
        return net

    tag = f"two_stage|{first}|{upto}" + ("" if pretrained else "|random-body")
    run = run_cached(target.replace(epochs=target.epochs - int(first)), model=keep_model, start=start,
                     start_tag=f"{tag}|{source.to_json()}")
    run.extra = {**run.extra, "head_epochs": int(first), "head_val_acc": head.final["val_acc"]}
    return run


def label_curve(target: Spec, labels: Iterable[int], arms: Mapping[str, Mapping[str, Any]],
                steps: int = 100, per_epoch: int = 2) -> pd.DataFrame:
    """Validation accuracy against the number of labelled target examples: one row per
    (labels, arm), the data of a "labels vs accuracy" plot. Each arm is the keyword
    arguments of `transfer` (`source`, `mode`, `upto`, `pretrained`, `head_epochs`),
    plus, optionally, `body_lr_factor` for the target spec. Every arm at a given label
    count trains on the same labelled examples for the same steps (`labelled_spec`,
    with `steps` and `per_epoch`).

    >>> label_curve(target, [50, 500], {"scratch": dict(mode="scratch"),
    ...                                 "fine-tuned": dict(source=src, mode="finetune")})   # doctest: +SKIP
    """
    rows = []
    for n in labels:
        spec = labelled_spec(target, n, steps, per_epoch=per_epoch)
        for name, arm in arms.items():
            kw = dict(arm)
            arm_spec = spec.replace(body_lr_factor=kw.pop("body_lr_factor", spec.body_lr_factor))
            run = transfer(arm_spec, kw.pop("source", None), **kw)
            rows.append({"labels": n, "arm": name, "val_acc": run.final["val_acc"], "test_acc": run.final["test_acc"],
                         "train_loss": run.final["train_loss"], "val_loss": run.final["val_loss"],
                         "diverged": run.diverged, "seconds": run.seconds})
    return pd.DataFrame(rows)


def gaps_in_se(acc: pd.DataFrame, n_val: int, base: str = "from scratch") -> pd.DataFrame:
    """Each arm's gap to `base` at every label count of a labels-by-arm accuracy table
    (the pivot of `label_curve`), in standard errors of `n_val` validation images.

    >>> acc = pd.DataFrame({"from scratch": [0.80, 0.90], "tuned": [0.82, 0.90]}, index=[50, 500])
    >>> gaps_in_se(acc, 5000).round(2)["tuned"].tolist()
    [2.55, 0.0]
    """
    from ..measures import gap_in_se
    _columns(acc, base)
    return pd.DataFrame({arm: [gap_in_se(acc.loc[n, arm], acc.loc[n, base], n_val) for n in acc.index]
                         for arm in acc.columns if arm != base}, index=acc.index)


def plot_gaps(gaps: pd.DataFrame, title: str, base: str = "scratch", noise: float = 2.0) -> "Figure":
    """Each arm's gap to `base` (a `gaps_in_se` table) against the label count, with the
    band of +-`noise` SE in grey: on one accuracy axis from 0 to 1 the arms lie on top
    of each other, while the lesson is in how far each sits from scratch.

    >>> fig = plot_gaps(gaps_in_se(acc, n_val), "mnist 5-9")   # doctest: +SKIP
    """
    from ..plots import LINESTYLES, figure
    from ..tables import number_text
    fig, (ax,) = figure(width=6.4, height=4.2)
    ax.axhspan(-noise, noise, color="0.9", zorder=0, label=f"within ±{noise:g} SE of {base}")
    ax.axhline(0, color="0.5", lw=0.8)
    for i, arm in enumerate(gaps.columns):
        ax.plot(gaps.index, gaps[arm], marker="o", ms=4, ls=LINESTYLES[i % len(LINESTYLES)], label=arm)
    ax.set_xscale("log")
    ax.set_xticks(list(gaps.index), [number_text(n, digits=2) for n in gaps.index])
    ax.minorticks_off()
    ax.set(xlabel="labelled examples", ylabel=f"val acc gap to {base} (SE)", title=title)
    # Below the axes, not beside them: the arms' names are long, and beside the axes they
    # would squeeze the plot to a strip on the gallery's card.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    return fig


def _columns(acc: pd.DataFrame, *names: str) -> None:
    for name in names:
        if name not in acc.columns:
            raise SpecError("arm", name, f"one of the table's arms {list(acc.columns)}")


def curve_view(source: Spec, steps: int = 100, per_epoch: int = 2) -> Callable[[Spec], Any]:
    """A view for the Explore panel: `view(spec)` trains (or loads) scratch, fine-tuned
    and frozen runs at `spec.train_labels` labels (the fine-tuned body at
    `spec.body_lr_factor`) and draws their validation accuracy per epoch; `steps` and
    `per_epoch` as in `label_curve`.

    >>> explore(curve_view(source), target.replace(train_labels=50, batch_size=10),
    ...         train_labels=[20, 50, 200], body_lr_factor=[0.1, 1.0])            # doctest: +SKIP
    """
    def view(spec: Spec) -> Any:
        from ..plots import curves
        n = spec.train_labels or spec.train_size
        s = labelled_spec(spec, n, steps, per_epoch=per_epoch)
        runs = {"from scratch": transfer(s, None, "scratch"),
                f"fine-tuned (body LR x{s.body_lr_factor:g})": transfer(s, source, "finetune"),
                "frozen body, new head only": transfer(s.replace(body_lr_factor=1.0), source, "freeze")}
        finals = ", ".join(f"{r.final['val_acc']:.3f}" for r in runs.values())
        return curves(runs, "val_acc", source="epochs", ylim=(0, 1),
                      title=f"{n} labels: validation accuracy per epoch (final {finals})")
    return view


# --- greedy layer-wise pre-training ----------------------------------------------------------
def _copy_hidden(src: nn.Module, dst: nn.Module, layers: int) -> None:
    """Copy the first `layers` hidden blocks (fc, norm) of an MLP from src into dst."""
    have = dict(src.named_children())
    for name, child in dst.named_children():
        block = re.fullmatch(r"(?:fc|norm)(\d+)", name)
        if block and int(block.group(1)) <= layers:
            child.load_state_dict(have[name].state_dict())


def greedy_layerwise(spec: Spec, stage_epochs: int | None = None) -> tuple[nn.Sequential, list[Run]]:
    """Greedy layer-wise supervised pre-training of the spec's MLP (Bengio et al. 2007,
    the supervised variant): train a net with one hidden layer; keep that layer, add a
    second hidden layer and a fresh output layer, and train those two with the first
    frozen; and so on up to `spec.depth`. Returns the stacked net (every layer
    trainable again, ready for fine-tuning with `fit(spec, model=...)`) and the runs of
    the stages. Each stage trains for `stage_epochs` (default: the spec's epochs).

    >>> net, stages = greedy_layerwise(Spec(depth=3, width=64, subset=2000, epochs=1))   # doctest: +SKIP
    >>> [s.spec.depth for s in stages]                                                   # doctest: +SKIP
    [1, 2, 3]
    """
    if spec.model != "mlp" or spec.depth < 1:
        raise SpecError("model", spec.model, "'mlp' with depth >= 1: greedy layer-wise pre-training stacks an MLP's hidden layers")
    stage_spec = spec.replace(epochs=stage_epochs or spec.epochs)
    runs: list[Run] = []
    previous: nn.Module | None = None
    for k in range(1, spec.depth + 1):
        s = stage_spec.replace(depth=k)

        def start(s: Spec = s, k: int = k, previous: nn.Module | None = previous) -> nn.Module:
            net = _seeded_model(s, 10 + k)
            if previous is not None:
                _copy_hidden(previous, net, k - 1)
                freeze(net, upto=f"fc{k}")
            return net

        run = run_cached(s, model=True, start=start, start_tag=f"greedy|stage{k}|{stage_spec.to_json()}")
        runs.append(run)
        previous = run.model
    for p in previous.parameters():
        p.requires_grad_(True)
    return previous, runs


def greedy_then_finetune(spec: Spec, stage_epochs: int | None = None) -> Run:
    """Greedy layer-wise pre-training (`greedy_layerwise`), then every layer of the
    stacked net trained together on the spec (cached).

    >>> greedy_then_finetune(Spec(depth=5, width=128, train_labels=1000, batch_size=50)).final["val_acc"]  # doctest: +SKIP
    """
    net, _ = greedy_layerwise(spec, stage_epochs)
    return run_cached(spec, start=lambda: copy.deepcopy(net), start_tag=f"greedy-finetune|{stage_epochs}")


def from_scratch(spec: Spec, keep_model: bool = False) -> Run:
    """The spec's run from its random init: `run_cached(spec)`, the same run (and cache
    entry) every other notebook gets for this spec.

    >>> from_scratch(labelled_spec(target, 50)).final["val_acc"]   # doctest: +SKIP
    """
    return run_cached(spec, model=keep_model)


__all__ = ["MODES", "ARCHITECTURE", "check_same_architecture", "labelled_spec", "source_spec", "val_size", "new_head",
           "freeze", "weight_change", "pretrain", "transfer", "two_stage", "label_curve", "gaps_in_se", "plot_gaps",
           "curve_view", "greedy_layerwise", "greedy_then_finetune", "from_scratch"]
