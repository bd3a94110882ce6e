"""Tabular regression data: the diabetes set that ships inside scikit-learn.

442 patients, ten raw baseline measurements each (age, sex, body-mass index, blood
pressure and six blood serum values, on scales from 1..2 to 62..301) and a target
from 25 to 346: how far the disease progressed a year later (Efron et al., "Least
Angle Regression", 2004). scikit-learn ships the file, so it loads offline with no
download. A fixed fifth (88 rows, the same for every seed) is the test set; the
spec's seed splits the other 354 into training and validation rows.

>>> data = load_tabular(Spec(dataset="diabetes", target_scale="standard"))  # doctest: +SKIP
>>> data.train_x.shape, data.task                                           # doctest: +SKIP
(torch.Size([319, 10]), 'regression')
"""
from __future__ import annotations

import functools

import pandas as pd
import torch

from .bundle import DataBundle, scaling, split_indices
from .device import resolve_device
from .spec import TRAIN_SIZES, Spec
from .storage import DataError

TEST_ROWS = 88
# scikit-learn's names: age, sex, body-mass index, mean blood pressure, six blood serum measurements.
FEATURES = {"diabetes": ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")}


@functools.lru_cache(maxsize=None)
def _diabetes() -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from sklearn.datasets import load_diabetes
    except ImportError as e:
        raise DataError("dataset 'diabetes' needs scikit-learn (pip install scikit-learn; it is in "
                        "trainlab's dependencies)") from e
    bunch = load_diabetes(scaled=False)  # the raw values: the lesson is about their scales
    return torch.as_tensor(bunch.data, dtype=torch.float64), torch.as_tensor(bunch.target, dtype=torch.float64)


def raw_tabular(name: str) -> dict[str, torch.Tensor]:
    """The whole set as float64 tensors, split into the fixed training pool and test rows."""
    if name != "diabetes":
        raise DataError(f"dataset {name!r} is not a tabular set; the tabular set is 'diabetes'")
    x, y = _diabetes()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    pool, test = order[:-TEST_ROWS], order[-TEST_ROWS:]
    assert len(pool) == TRAIN_SIZES[name]
    return {"train_x": x[pool], "train_y": y[pool], "test_x": x[test], "test_y": y[test]}


def describe(name: str) -> pd.DataFrame:
    """Min, mean, std and max of every raw feature and of the target over the training pool.

    >>> describe("diabetes").loc["target", "max"]   # doctest: +SKIP
    346.0
    """
    raw = raw_tabular(name)
    columns = {**{f: raw["train_x"][:, i] for i, f in enumerate(FEATURES[name])}, "target": raw["train_y"]}
    return pd.DataFrame([{"column": c, "min": float(v.min()), "mean": float(v.mean()), "std": float(v.std()),
                          "max": float(v.max())} for c, v in columns.items()]).set_index("column")


def standardiser(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over rows (float64): scaling statistics from the training rows only."""
    return v.mean(0), v.std(0).clamp_min(1e-12)


def load_tabular(spec: Spec, device: torch.device | str | None = None) -> DataBundle:
    """The spec's tabular set, split by its seed; inputs and targets scaled as the spec
    says, on the spec's device (or `device`)."""
    device = resolve_device(spec.device) if device is None else torch.device(device)
    raw = raw_tabular(spec.dataset)
    train_idx, val_idx = _split(spec, raw)
    x, y = raw["train_x"][train_idx], raw["train_y"][train_idx]
    mean, std = scaling(spec.scale, *standardiser(x))
    y_mean, y_std = standardiser(y) if spec.target_scale == "standard" else (torch.tensor(0.0), torch.tensor(1.0))

    def inputs(v: torch.Tensor) -> torch.Tensor:
        return ((v - mean) / std).float().to(device)

    def targets(v: torch.Tensor) -> torch.Tensor:
        return ((v - y_mean) / y_std).float().to(device)

    return DataBundle(
        train_x=inputs(x), train_y=targets(y),
        val_x=inputs(raw["train_x"][val_idx]), val_y=targets(raw["train_y"][val_idx]),
        test_x=inputs(raw["test_x"]), test_y=targets(raw["test_y"]),
        num_classes=1, mean=mean.float().to(device), std=std.float().to(device), task="regression",
        target_mean=float(y_mean), target_std=float(y_std))


def mean_predictor_rmse(spec: Spec) -> float:
    """The validation RMSE (in target units) of always predicting the training targets'
    mean: the bar a regression model has to clear to have learned anything.

    >>> round(mean_predictor_rmse(Spec(dataset="diabetes", val_fraction=0.2)))   # doctest: +SKIP
    77
    """
    raw = raw_tabular(spec.dataset)
    train_idx, val_idx = _split(spec, raw)
    guess = raw["train_y"][train_idx].mean()
    return float(((raw["train_y"][val_idx] - guess) ** 2).mean().sqrt())


def _split(spec: Spec, raw: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return split_indices(len(raw["train_x"]), spec.subset, spec.val_fraction, spec.seed)
