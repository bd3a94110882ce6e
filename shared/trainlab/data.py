"""The spec's dataset as tensors on the spec's device: split, selected, scaled.

Files come from `trainlab.datasets` (images) and `trainlab.tabular` (the diabetes
table); a run moves its tensors to the device once and draws batches by a seeded
permutation, with no per-sample DataLoader. Where tensors live is decided here and
in `trainlab.device`, never by lesson code.

>>> data = load_data(Spec(dataset="mnist", subset=1000))   # doctest: +SKIP
>>> data.train_x.shape, data.num_classes, data.device       # doctest: +SKIP
(torch.Size([900, 1, 28, 28]), 10, device(type='cpu'))
"""
from __future__ import annotations

import torch

from .bundle import DataBundle, scaling, split_indices
from .datasets import LAYOUT, DataError, data_root, fetch, raw_tensors  # noqa: F401  (re-exported)
from .device import resolve_device
from .faults import label_fault
from .spec import Spec, SpecError
from .tabular import load_tabular

PROBE_BATCH = 512


def cut_class(train_idx: torch.Tensor, labels: torch.Tensor, cls: int, keep: float, seed: int) -> torch.Tensor:
    """`train_idx` with only the fraction `keep` of class `cls` left (at least one
    example), the survivors drawn by `seed`: an imbalanced training set.

    >>> idx = cut_class(torch.arange(6), torch.tensor([0, 1, 1, 1, 1, 0]), cls=1, keep=0.5, seed=0)
    >>> len(idx), int((torch.tensor([0, 1, 1, 1, 1, 0])[idx] == 1).sum())
    (4, 2)
    """
    members = train_idx[labels[train_idx] == cls]
    kept = max(1, round(keep * len(members))) if len(members) else 0
    g = torch.Generator().manual_seed(seed + 7919)  # not the split's own stream
    dropped = members[torch.randperm(len(members), generator=g)[kept:]]
    return train_idx[~torch.isin(train_idx, dropped)]


def keep_classes(idx: torch.Tensor, labels: torch.Tensor, classes: tuple[int, ...] | None) -> torch.Tensor:
    """The indices in `idx` whose label is one of `classes` (all of them when None)."""
    if classes is None:
        return idx
    return idx[torch.isin(labels[idx], torch.tensor(classes))]


def renumber(labels: torch.Tensor, classes: tuple[int, ...] | None) -> torch.Tensor:
    """Labels mapped to 0..k-1 in the order `classes` lists them.

    >>> renumber(torch.tensor([5, 9, 7]), (5, 6, 7, 8, 9)).tolist()
    [0, 4, 2]
    >>> renumber(torch.tensor([5, 6]), (5, 6, 7, 8, 9)).tolist()   # 9 absent from this split
    [0, 1]
    """
    if classes is None:
        return labels
    # Sized by the kept classes, not by what this split happens to hold: a small split
    # without the highest kept class must still map every class it does hold.
    size = max(max(classes), int(labels.max()) if len(labels) else 0) + 1
    table = torch.full((size,), -1, dtype=torch.long)
    table[list(classes)] = torch.arange(len(classes))
    return table[labels]


def few_labels(train_idx: torch.Tensor, n: int | None, seed: int) -> torch.Tensor:
    """`n` of the training indices, drawn by `seed` on a stream of its own (all when None)."""
    if n is None or n >= len(train_idx):
        return train_idx
    g = torch.Generator().manual_seed(seed + 104_729)
    return train_idx[torch.randperm(len(train_idx), generator=g)[:n]]


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (unbiased) std of uint8 images, as float32.

    The sums are taken over integers in float64, where they are exact, so the result
    does not depend on how many threads split the reduction: a run gives the same
    numbers in a notebook, in a sweep worker and on a cluster.
    """
    v = x.to(torch.float64).transpose(0, 1).reshape(x.shape[1], -1)
    n = v.shape[1]
    total, squares = v.sum(dim=1), (v * v).sum(dim=1)
    mean = total / n
    var = (squares - total * mean) / (n - 1)
    return mean.float(), var.clamp_min(0).sqrt().float()


def load_data(spec: Spec, device: torch.device | str | None = None) -> DataBundle:
    """The spec's dataset, split by its seed, scaled with training-set statistics, on
    the spec's device (or `device`, when given)."""
    device = resolve_device(spec.device) if device is None else torch.device(device)
    if spec.task == "regression":
        return load_tabular(spec, device)
    raw = raw_tensors(spec.dataset)
    train_idx, val_idx = split_indices(len(raw["train_x"]), spec.subset, spec.val_fraction, spec.seed)
    if spec.rare_class is not None:
        train_idx = cut_class(train_idx, raw["train_y"], spec.rare_class, spec.rare_keep, spec.seed)
    labels = raw["train_y"]
    train_idx = few_labels(keep_classes(train_idx, labels, spec.classes), spec.train_labels, spec.seed)
    val_idx = keep_classes(val_idx, labels, spec.classes)
    test_idx = keep_classes(torch.arange(len(raw["test_y"])), raw["test_y"], spec.classes)
    train_y = label_fault(spec, renumber(labels[train_idx], spec.classes))
    if len(train_idx) < spec.batch_size:
        raise SpecError("batch_size", spec.batch_size, f"at most {len(train_idx)}, the training examples "
                        f"left after classes={spec.classes} and train_labels={spec.train_labels}")
    train_x = raw["train_x"][train_idx].float()
    mean, std = scaling(spec.scale, *channel_stats(raw["train_x"][train_idx]))

    def prep(x: torch.Tensor) -> torch.Tensor:
        x = x.float() if x.dtype != torch.float32 else x
        return ((x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)).to(device)

    return DataBundle(
        train_x=prep(train_x), train_y=train_y.to(device),
        val_x=prep(raw["train_x"][val_idx]), val_y=renumber(labels[val_idx], spec.classes).to(device),
        test_x=prep(raw["test_x"][test_idx]), test_y=renumber(raw["test_y"][test_idx], spec.classes).to(device),
        num_classes=spec.num_classes, mean=mean.to(device), std=std.to(device),
    )


def probe_batch(spec: Spec, n: int = PROBE_BATCH) -> tuple[torch.Tensor, torch.Tensor, int]:
    """`n` real training images (at least 20), scaled as the spec says and on its
    device, their labels and the class count: the batch lessons measure a fresh model on.

    >>> x, y, classes = probe_batch(Spec(), 64)   # doctest: +SKIP
    """
    data = load_data(spec.replace(subset=max(n, 20), val_fraction=0.0, batch_size=1))
    return data.train_x, data.train_y, data.num_classes
