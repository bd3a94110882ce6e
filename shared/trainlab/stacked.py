"""Many small runs trained as one stacked model, each as if it had trained alone.

Notebooks train hundreds of tiny models one after another; each step of each is a
few small matrix products wrapped in Python. Specs that share the architecture, the
data's size, the batch size and the number of steps, and differ only in
`STACKED_FIELDS` (the optimizer's numbers, the seed, the init's scale), can instead
train together: their weights are stacked along a new first dimension and one
`torch.func.vmap` of `functional_call` runs every model's forward pass at once,
with one backward pass and one optimizer update for all of them. Each run still
has its own data split and batch order (from its seed), its own optimizer state,
LR schedule, divergence check, callbacks (`Vitals`) and history.

Every run is driven through its own `Learner` (trainlab.train): the stacked loop
only replaces the forward pass, the backward pass and the optimizer step. The
learner's model holds views of the stacked weights, so its callbacks and its
epoch-end evaluation see the weights as they are. On the CPU in float64 the
histories match training each spec alone to 1e-6 (tests/test_stacked.py); in
float32 they agree to rounding, which is why `sweep` stacks only when asked.

>>> specs = grid(Spec(subset=2000, epochs=1), lr=[0.01, 0.03, 0.1], seed=[0, 1])   # doctest: +SKIP
>>> runs = fit_stacked(specs)                                                      # doctest: +SKIP
"""
from __future__ import annotations

import time
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .bundle import DataBundle
from .data import load_data
from .device import autocast, full_precision, resolve_device, seed_everything
from .models import build_model
from .run import Run
from .spec import Spec, SpecError
from .threads import run_threads
from .train import Learner, correct_count, default_callbacks

# The fields in which stacked specs may differ; every other field must be equal.
STACKED_FIELDS = ("lr", "momentum", "betas", "weight_decay", "seed", "init_std")
STACKED_OPTIMIZERS = ("sgd", "nesterov", "adam", "adamw")
ADAM_EPS = 1e-8  # torch.optim.Adam's and AdamW's default


def why_not_stacked(spec: Spec) -> str | None:
    """Why `spec` must train alone, or None when it can join a stack.

    >>> why_not_stacked(Spec(norm="batch"))
    "norm 'batch': batch statistics are buffers a stacked step does not update"
    >>> why_not_stacked(Spec()) is None
    True
    """
    checks = (
        (spec.optimizer not in STACKED_OPTIMIZERS, f"optimizer {spec.optimizer!r}: stacked steps are written "
                                                   f"for {', '.join(STACKED_OPTIMIZERS)}"),
        (spec.norm != "none", f"norm {spec.norm!r}: batch statistics are buffers a stacked step does not update"
         if spec.norm.startswith("batch") else f"norm {spec.norm!r}: not written for stacked steps"),
        (spec.dropout > 0, "dropout: its random masks would not be those of a run alone"),
        (spec.fault != "none", f"fault {spec.fault!r}: teaching faults change the loop itself"),
        (spec.clip_norm is not None or spec.clip_value is not None, "clipping acts on one model's gradient"),
        (spec.patience is not None, "early stopping puts back one model's earlier weights"),
        (bool(spec.probe_every), "probes hook one model's layers"),
        (bool(spec.augment), "augmentation draws from the global generator, shared by the stack"),
        (bool(spec.l1), "the L1 penalty edits one model's gradient"),
        (spec.body_lr_factor != 1.0, "a body LR factor needs two parameter groups"),
    )
    return next((why for failed, why in checks if failed), None)


def stack_key(spec: Spec) -> tuple | None:
    """The spec's fields other than `STACKED_FIELDS`, as a tuple: specs with equal keys
    can train in one stack. None when the spec cannot be stacked at all.

    >>> stack_key(Spec(lr=0.1, seed=1)) == stack_key(Spec(lr=0.01, seed=2))
    True
    """
    if why_not_stacked(spec) is not None:
        return None
    return tuple((f, getattr(spec, f)) for f in Spec.__dataclass_fields__ if f not in STACKED_FIELDS)


def stack_groups(specs: Iterable[Spec]) -> tuple[list[list[Spec]], list[Spec]]:
    """`specs` split into groups of at least two that can train as one stack, and the
    specs that train alone (one of a kind, or not stackable); order kept within each."""
    groups: dict[tuple, list[Spec]] = {}
    alone: list[Spec] = []
    for spec in specs:
        key = stack_key(spec)
        if key is None:
            alone.append(spec)
        else:
            groups.setdefault(key, []).append(spec)
    stacks = [g for g in groups.values() if len(g) > 1]
    alone += [g[0] for g in groups.values() if len(g) == 1]
    return stacks, alone


def _check_stack(specs: Sequence[Spec]) -> None:
    if len(specs) < 1:
        raise SpecError("specs", list(specs), "at least one spec")
    for spec in specs:
        why = why_not_stacked(spec)
        if why is not None:
            raise SpecError("specs", spec.diff() or "the default spec", f"specs that can be stacked ({why})")
    keys = {stack_key(s) for s in specs}
    if len(keys) > 1:
        first = specs[0]
        other = next(s for s in specs if stack_key(s) != stack_key(first))
        differ = [f for f in Spec.__dataclass_fields__
                  if f not in STACKED_FIELDS and getattr(first, f) != getattr(other, f)]
        raise SpecError("specs", ", ".join(differ), "specs that differ only in " + ", ".join(STACKED_FIELDS))


class _StackedOptimizer:
    """SGD (with momentum, Nesterov and L2 weight decay), Adam (L2) and AdamW
    (decoupled decay) as torch.optim computes them, over stacked weights whose first
    dimension is the model, each model with its own lr, momentum, betas and decay."""

    def __init__(self, kind: str, params: dict[str, torch.Tensor], specs: Sequence[Spec]):
        self.kind, self.params, self.t = kind, params, 0
        like = next(iter(params.values()))

        def per_model(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=like.dtype, device=like.device)
        self.decay = per_model([s.weight_decay for s in specs])
        self.momentum = per_model([s.momentum for s in specs])
        self.beta1 = per_model([s.betas[0] for s in specs])
        self.beta2 = per_model([s.betas[1] for s in specs])
        self.state = {n: (torch.zeros_like(p), torch.zeros_like(p)) for n, p in params.items()}
        self.per_model = per_model

    @torch.no_grad()
    def step(self, lrs: list[float], active: torch.Tensor) -> None:
        self.t += 1
        lr = self.per_model(lrs)
        everyone = bool(active.all())
        for name, p in self.params.items():
            shape = (-1,) + (1,) * (p.dim() - 1)

            def each(v: torch.Tensor) -> torch.Tensor:
                return v.view(shape)
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            first, second = self.state[name]
            old = None if everyone else (p.clone(), first.clone(), second.clone())
            if self.kind in ("sgd", "nesterov"):
                g = g + each(self.decay) * p
                first.mul_(each(self.momentum)).add_(g)
                p.sub_(each(lr) * (g + each(self.momentum) * first if self.kind == "nesterov" else first))
            else:
                if self.kind == "adamw":
                    p.mul_(1 - each(lr) * each(self.decay))
                else:
                    g = g + each(self.decay) * p
                first.add_((g - first) * (1 - each(self.beta1)))
                second.mul_(each(self.beta2)).add_((1 - each(self.beta2)) * g * g)
                correction1 = 1 - self.beta1 ** self.t
                correction2 = 1 - self.beta2 ** self.t
                p.sub_(each(lr / correction1) * first / (second.sqrt() / each(correction2.sqrt()) + ADAM_EPS))
            if old is not None:  # a model that has stopped keeps its weights and its state
                for now, before in zip((p, first, second), old):
                    now.copy_(torch.where(each(active), now, before))


def fit_stacked(specs: Sequence[Spec], *, datas: Sequence[DataBundle] | None = None,
                models: Sequence[nn.Module] | None = None, max_threads: int | None = None) -> list[Run]:
    """Train `specs` (which must differ only in `STACKED_FIELDS`, see `stack_key`) as
    one stacked model; one Run per spec, in order, as `fit(spec)` would return it
    (its `seconds` is its share of the stack's time, and `run.extra["stacked_with"]`
    says how many trained together).

    `datas` and `models` (one per spec) replace the spec's own data and initial
    weights, as the same arguments of `fit` do.

    >>> runs = fit_stacked([Spec(subset=2000, epochs=1, lr=lr) for lr in (0.001, 0.003)])   # doctest: +SKIP
    """
    specs = list(specs)
    _check_stack(specs)
    for name, given in (("datas", datas), ("models", models)):
        if given is not None and len(given) != len(specs):
            raise SpecError(name, f"{len(given)} given", f"one per spec ({len(specs)})")
    device = resolve_device(specs[0].device)
    if datas is None:  # of the stacked fields only the seed changes the data: one load per seed, shared
        loaded: dict[int, DataBundle] = {}
        for spec in specs:
            if spec.seed not in loaded:
                loaded[spec.seed] = load_data(spec, device)
        datas = [loaded[spec.seed] for spec in specs]
    datas = list(datas)
    sizes = {len(d.train_x) for d in datas}
    if len(sizes) > 1:
        raise SpecError("specs", sorted(sizes), "specs whose training sets have one size (these seeds' "
                        "splits differ in size)")
    if models is None:
        models = []
        for spec, data in zip(specs, datas):
            seed_everything(spec.seed)  # as fit seeds it, so each model starts from its own init
            models.append(build_model(spec, data.input_shape, data.num_classes))
    models = [m.to(datas[0].device) for m in models]
    started = time.perf_counter()
    params, _ = stack_module_state(models)
    params = {n: p.detach().requires_grad_(True) for n, p in params.items()}
    for i, model in enumerate(models):  # the learners' models become views of the stack
        for name, p in params.items():
            owner, leaf = model.get_submodule(name.rpartition(".")[0]), name.rpartition(".")[2]
            owner._parameters[leaf] = nn.Parameter(p.detach()[i])
    learners = [Learner(s, m, d, default_callbacks(s, progress=False)) for s, m, d in zip(specs, models, datas)]
    template = models[0]

    def forward(weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(template, weights, (x,))

    batched = vmap(forward)
    optimizer = _StackedOptimizer(specs[0].optimizer, params, specs)
    with run_threads(max_threads) as claim:
        orders = [learner.begin() for learner in learners]
        for learner in learners:
            learner.extra["threads"] = claim.threads
        running = list(range(len(specs)))
        for epoch in range(specs[0].epochs):
            streams = {}
            for i in running:
                learners[i].start_epoch(epoch)
                streams[i] = iter(learners[i].data.batches(specs[i].batch_size, orders[i]))
            while running:
                try:  # one size of training set and one batch size: the streams end together
                    batch = {i: next(streams[i]) for i in running}
                except StopIteration:
                    break
                _stacked_step(learners, running, batch, params, batched, optimizer, device)
                stopped = [i for i in running if learners[i].stop]
                for i in stopped:
                    learners[i].end_epoch()
                running = [i for i in running if not learners[i].stop]
            for i in running:
                learners[i].end_epoch()
            running = [i for i in running if not learners[i].stop]
            if not running:
                break
        runs = [learner.finish() for learner in learners]
    share = (time.perf_counter() - started) / len(specs)
    for run in runs:
        run.seconds = share
        run.extra["stacked_with"] = len(specs)
    return runs


def _stacked_step(learners: list[Learner], running: list[int], batch: dict, params: dict[str, torch.Tensor],
                  batched, optimizer: _StackedOptimizer, device: torch.device) -> None:
    """One training step of every running model: each learner's batch and hooks, one
    forward and one backward pass for all, each model's divergence check, one update."""
    xs, ys = [], []
    for i in running:
        xb, yb = batch[i]
        xs.append(learners[i].prepare(xb, yb))
        ys.append(yb)
    everyone = len(running) == len(learners)
    weights = params if everyone else {n: p[running] for n, p in params.items()}
    with autocast(device):
        outs = full_precision(batched(weights, torch.stack(xs)))
    losses = [learners[i].loss_fn(out, yb) for i, out, yb in zip(running, outs, ys)]
    values = torch.stack(losses).tolist()  # one read-back for every model's loss
    ok = [learners[i].loss_ok(v) for i, v in zip(running, values)]
    for p in params.values():
        p.grad = None
    kept = [loss for loss, good in zip(losses, ok) if good]
    if kept:
        torch.stack(kept).sum().backward()  # the models share no weights: one backward serves all
    norms = _grad_norms(params).tolist()
    active = torch.zeros(len(learners), dtype=torch.bool, device=device)
    for i, good in zip(running, ok):
        if good:
            learners[i].grad_norm = norms[i]
            learners[i]._call("after_backward")
            active[i] = True
        else:
            learners[i].diverge()
    optimizer.step([learner.lr for learner in learners], active)
    counts = (correct_count(outs.detach(), torch.stack(ys)).tolist() if learners[0].classes
              else [0] * len(running))  # one read-back for every model's count
    for i, value, count in zip(running, values, counts):
        learners[i].record_step(value, count)


def _grad_norms(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each model's global gradient norm (over all its weights), as `global_grad_norm` gives it alone."""
    squares = [p.grad.flatten(1).pow(2).sum(1) for p in params.values() if p.grad is not None]
    if not squares:
        return torch.zeros(len(next(iter(params.values()))))
    return torch.stack(squares).sum(0).sqrt()
