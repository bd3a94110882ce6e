"""Hyperparameter search: grid, random and Optuna's TPE at the same budget, coarse then fine.

A search space maps spec fields to ranges, `{"lr": (1e-5, 1.0, True)}` meaning lr
between 1e-5 and 1 drawn on a log scale (`Axis(low, high, log)` says the same).
Every search returns a `SearchResult`: the points it tried in order, the value of
each (by default a run's final validation accuracy, through the disk cache
`trainlab.sweeps.run_cached`, so a rerun or a second method that tries the same
point trains nothing) and a table with the best value so far after every trial.

Bad input (an unknown field, low >= high, a log axis with low <= 0, a budget below
1) raises `SpecError` naming the field, the bad value and what is allowed, before
any training starts.

>>> space = {"lr": (1e-4, 1e-1, True), "weight_decay": (1e-6, 1e-3, True)}
>>> sorted({round(p["lr"], 5) for p in grid_points(space, 9)})   # 3 x 3: only 3 learning rates
[0.00032, 0.00316, 0.03162]
>>> len(random_points(space, 9, seed=0))
9
>>> result = random_search(base, space, budget=9, seed=0)    # doctest: +SKIP
>>> result.table[["trial", "lr", "value", "best_so_far"]]     # doctest: +SKIP
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..spec import CHECKS, Spec, SpecError
from ..sweeps import run_cached

Point = dict[str, Any]
Objective = Callable[[Point], float]


@dataclass(frozen=True)
class Axis:
    """One searched hyperparameter: values from `low` to `high`, on a log scale when
    `log`, rounded to whole numbers when `integer` (e.g. width)."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def to_unit(self, value: float) -> float:
        """Where `value` sits between low (0) and high (1), on the axis's own scale."""
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def from_unit(self, u: float) -> float | int:
        """The value at position `u` (0..1) on the axis's own scale."""
        if self.log:
            v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + u * (self.high - self.low)
        v = min(max(v, self.low), self.high)  # float rounding at the ends
        return int(round(v)) if self.integer else float(v)


SpaceLike = Mapping[str, "Axis | tuple"]


def check_space(space: SpaceLike, base: Spec | None = None) -> dict[str, Axis]:
    """The space as `{name: Axis}`, checked. With a base spec, every name must be a
    spec field and both ends of its range valid values of that field.

    >>> check_space({"lr": (1e-3, 1e-1, True)})["lr"].log
    True
    >>> check_space({"lr": (0.1, 0.01)})
    Traceback (most recent call last):
    ...
    trainlab.spec.SpecError: lr: (0.1, 0.01) is not allowed; expected a range (low, high) with low < high
    """
    if not isinstance(space, Mapping) or not space:
        raise SpecError("space", space, "a non-empty mapping of field names to (low, high) or (low, high, log)")
    axes: dict[str, Axis] = {}
    for name, r in space.items():
        if base is not None and name not in CHECKS:
            raise SpecError(name, r, "a range over a spec field; the fields are: " + ", ".join(CHECKS))
        if isinstance(r, Axis):
            axis = r
        else:
            if not isinstance(r, (tuple, list)) or len(r) not in (2, 3):
                raise SpecError(name, r, "a range (low, high) or (low, high, log)")
            low, high, *rest = r
            axis = Axis(low, high, bool(rest[0]) if rest else False)
        for end in (axis.low, axis.high):
            if isinstance(end, bool) or not isinstance(end, numbers.Real) or not math.isfinite(end):
                raise SpecError(name, r, "a range of two finite numbers (low, high)")
        if not axis.low < axis.high:
            raise SpecError(name, tuple(r) if not isinstance(r, Axis) else (axis.low, axis.high),
                            "a range (low, high) with low < high")
        if axis.log and axis.low <= 0:
            raise SpecError(name, axis.low, "a low end > 0 on a log-scale axis (log of 0 or less is undefined)")
        if base is not None:
            integer = isinstance(getattr(base, name), int) and not isinstance(getattr(base, name), bool)
            axis = Axis(float(axis.low), float(axis.high), axis.log, integer or axis.integer)
            for end in (axis.low, axis.high):
                base.replace(**{name: int(round(end)) if axis.integer else end})  # SpecError names the field
        axes[name] = axis
    return axes


def _whole(name: str, value: Any, allowed: str, low: int = 1, high: float = math.inf) -> int:
    """`value` as an int when it is a whole number in [low, high], else SpecError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise SpecError(name, value, allowed)
    return int(value)


def check_budget(budget: Any) -> int:
    return _whole("budget", budget, "a whole number of runs >= 1")


def check_seed(seed: Any) -> int:
    return _whole("seed", seed, "a whole number from 0 to 2**32 - 1", 0, 2**32 - 1)


def grid_counts(n_axes: int, budget: int) -> list[int]:
    """Points per axis for a grid of at most `budget` points: the same number on
    every axis, then one more value at a time to the axis with the fewest (the first
    among equals) while the product still fits.

    >>> grid_counts(2, 9), grid_counts(2, 12), grid_counts(3, 9), grid_counts(1, 7)
    ([3, 3], [4, 3], [2, 2, 2], [7])
    """
    k = max(int(math.floor(budget ** (1 / n_axes) + 1e-9)), 1)
    counts = [k] * n_axes
    grown = True
    while grown:  # give one more value to the axis with the fewest that still fits
        grown = False
        for i in sorted(range(n_axes), key=lambda j: (counts[j], j)):
            if math.prod(counts) // counts[i] * (counts[i] + 1) <= budget:
                counts[i] += 1
                grown = True
                break
    return counts


def grid_points(space: SpaceLike, budget: int) -> list[Point]:
    """A full grid with at most `budget` points, each axis at the centres of equal
    cells on its own scale (3 points on 1e-4..1e-1 log: 10**-3.5, 10**-2.5, 10**-1.5),
    so no run is spent on the very edge of a range. The first axis varies slowest."""
    axes, budget = check_space(space), check_budget(budget)
    values = [[ax.from_unit((i + 0.5) / n) for i in range(n)]
              for ax, n in zip(axes.values(), grid_counts(len(axes), budget))]
    names = list(axes)
    out = []
    for combo in np.ndindex(*[len(v) for v in values]):
        out.append({n: values[j][i] for j, (n, i) in enumerate(zip(names, combo))})
    return out


def random_points(space: SpaceLike, budget: int, seed: int) -> list[Point]:
    """`budget` points drawn independently and uniformly on each axis's scale, by
    `seed`. Point i is the same whatever the budget, so a longer search extends a
    shorter one with the same seed."""
    axes, budget, seed = check_space(space), check_budget(budget), check_seed(seed)
    rng = np.random.default_rng(seed)
    return [{n: ax.from_unit(float(rng.random())) for n, ax in axes.items()} for _ in range(budget)]


# --- objectives -------------------------------------------------------------------

def val_acc_objective(base: Spec, metric: str = "val_acc") -> Objective:
    """The final `metric` of `base.replace(**point)`, trained once and cached on disk
    (NaN when the run diverged)."""

    def objective(point: Point) -> float:
        run = run_cached(base.replace(**point))
        value = run.final.get(metric, math.nan)
        return math.nan if run.diverged or value is None else float(value)
    return objective


def toy_objective(space: SpaceLike, optimum: Mapping[str, float] | None = None,
                  weights: Mapping[str, float] | None = None) -> Objective:
    """A synthetic objective (no training) of the points of `space`, with maximum 1:
    1 - sum_j weights[j] * (u_j - optimum[j])**2, where u_j is the point's position
    on axis j's own scale (0 at low, 1 at high) and `optimum` is given in the same
    unit positions (default 0.5 each). Weights default to 1 for the first axis and
    0.01 for the others: one hyperparameter matters and the rest barely do.

    >>> f = toy_objective({"lr": (1e-4, 1e-1, True), "dropout": (0.0, 0.5)})
    >>> round(f({"lr": 10 ** -2.5, "dropout": 0.25}), 6)
    1.0
    """
    axes = check_space(space)
    names = list(axes)
    opt = {n: 0.5 for n in names} | dict(optimum or {})
    w = {n: (1.0 if i == 0 else 0.01) for i, n in enumerate(names)} | dict(weights or {})

    def objective(point: Point) -> float:
        return 1.0 - sum(w[n] * (axes[n].to_unit(point[n]) - opt[n]) ** 2 for n in names)
    return objective


def toy_regrets(space: SpaceLike, budget: int, *, weights: Mapping[str, float] | None = None,
                problems: int = 200, seed: int = 0) -> pd.DataFrame:
    """Grid and random search at the same budget on `problems` toy objectives
    (`toy_objective` with `weights`), each with its optimum at a random place drawn
    by `seed`: one row per problem with each method's regret, 1 - best value (0 means
    it found the optimum). Random search draws problem k's points with seed
    `seed * problems + k`.

    >>> t = toy_regrets({"x": (0.0, 1.0), "y": (0.0, 1.0)}, 9, problems=20)
    >>> list(t.columns), len(t)
    (['problem', 'grid', 'random'], 20)
    """
    axes, budget = check_space(space), check_budget(budget)
    _whole("problems", problems, "a whole number >= 1")
    rng = np.random.default_rng(check_seed(seed))
    rows = []
    for k in range(problems):
        f = toy_objective(axes, {n: float(rng.random()) for n in axes}, weights)
        rows.append({"problem": k,
                     "grid": 1 - grid_search(None, axes, budget, objective=f).best_value,
                     "random": 1 - random_search(None, axes, budget, seed * problems + k, objective=f).best_value})
    return pd.DataFrame(rows)


# --- searches -----------------------------------------------------------------------

@dataclass
class SearchResult:
    """The points a search tried, in order, with their values (higher is better).

    `table` has one row per trial: `trial` (1, 2, ...), the searched fields, `value`
    and `best_so_far`; `best` is the best point and `best_value` its value. With a
    base spec, `specs` are the specs trained, in trial order."""

    method: str
    space: dict[str, Axis]
    points: list[Point]
    values: list[float]
    specs: list[Spec] = field(default_factory=list)

    @property
    def table(self) -> pd.DataFrame:
        t = pd.DataFrame(self.points)
        t.insert(0, "trial", range(1, len(self.points) + 1))
        t["value"] = self.values
        t["best_so_far"] = best_so_far(self.values)
        return t

    @property
    def best_index(self) -> int:
        v = np.array(self.values, dtype=float)
        if np.isnan(v).all():
            raise ValueError(f"{self.method} search: every trial gave NaN (every run diverged?)")
        return int(np.nanargmax(v))

    @property
    def best(self) -> Point:
        return self.points[self.best_index]

    @property
    def best_value(self) -> float:
        return float(self.values[self.best_index])

    def distinct(self, name: str) -> int:
        """How many different values of `name` the search tried."""
        return len({p[name] for p in self.points})


def best_so_far(values: Sequence[float]) -> list[float]:
    """The running maximum of `values`, NaN (a diverged run) skipped.

    >>> best_so_far([0.2, float("nan"), 0.5, 0.4])
    [0.2, 0.2, 0.5, 0.5]
    """
    out, best = [], math.nan
    for v in values:
        if not math.isnan(v) and (math.isnan(best) or v > best):
            best = v
        out.append(best)
    return out


def _setup(base: Spec | None, space: SpaceLike, budget: int,
           objective: Objective | None) -> tuple[dict[str, Axis], int, Objective]:
    if base is not None and not isinstance(base, Spec):
        raise SpecError("base", base, "a Spec, or None with an objective")
    axes, budget = check_space(space, base), check_budget(budget)
    if objective is None:
        if base is None:
            raise SpecError("objective", objective, "a function of a point, when there is no base spec")
        if base.val_split_size == 0:  # every trial would score NaN, and the search would rank nothing
            raise SpecError("base.val_fraction", base.val_fraction,
                            "> 0 with enough images for a validation set: the default objective ranks "
                            "points by validation accuracy (or pass an objective)")
        objective = val_acc_objective(base)
    return axes, budget, objective


def _evaluate(method: str, base: Spec | None, axes: dict[str, Axis], points: list[Point],
              objective: Objective) -> SearchResult:
    specs = [base.replace(**p) for p in points] if base is not None else []  # all checked before any training
    return SearchResult(method, axes, points, [float(objective(p)) for p in points], specs)


def grid_search(base: Spec | None, space: SpaceLike, budget: int, *,
                objective: Objective | None = None) -> SearchResult:
    """Evaluate the grid of `grid_points(space, budget)` (at most `budget` runs).

    >>> grid_search(base, {"lr": (1e-4, 1e-1, True), "weight_decay": (1e-6, 1e-3, True)}, 9)  # doctest: +SKIP
    """
    axes, budget, objective = _setup(base, space, budget, objective)
    return _evaluate("grid", base, axes, grid_points(axes, budget), objective)


def random_search(base: Spec | None, space: SpaceLike, budget: int, seed: int, *,
                  objective: Objective | None = None) -> SearchResult:
    """Evaluate `budget` points drawn by `seed` (log-uniform on log axes).

    >>> random_search(None, {"x": (0.0, 1.0)}, 5, seed=0, objective=lambda p: -p["x"]).best_value < 0
    True
    """
    axes, budget, objective = _setup(base, space, budget, objective)
    return _evaluate("random", base, axes, random_points(axes, budget, check_seed(seed)), objective)


def tpe_search(base: Spec | None, space: SpaceLike, budget: int, seed: int, *,
               objective: Objective | None = None, n_startup: int | None = None) -> SearchResult:
    """Optuna's Tree-structured Parzen Estimator (Bergstra et al. 2011) for `budget`
    trials, `TPESampler(seed=seed)`, maximising the objective. Its first
    `n_startup` trials (Optuna's default: 10) are random draws; after them each
    trial is proposed from a model of the good and the bad trials so far.
    Optuna's log messages are silenced.

    >>> tpe_search(None, {"x": (0.0, 1.0)}, 12, seed=0, objective=lambda p: -p["x"]).distinct("x")
    12
    """
    import optuna
    axes, budget, objective = _setup(base, space, budget, objective)
    seed = check_seed(seed)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    kwargs = {} if n_startup is None else {"n_startup_trials": check_budget(n_startup)}
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed, **kwargs))
    points: list[Point] = []
    values: list[float] = []
    for _ in range(budget):
        trial = study.ask()
        point = {n: (trial.suggest_int(n, int(ax.low), int(ax.high), log=ax.log) if ax.integer
                     else trial.suggest_float(n, ax.low, ax.high, log=ax.log)) for n, ax in axes.items()}
        if base is not None:
            base.replace(**point)
        value = float(objective(point))
        points.append(point)
        values.append(value)
        if math.isnan(value):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)
    return SearchResult("tpe", axes, points, values,
                        [base.replace(**p) for p in points] if base is not None else [])


@dataclass
class HalvingResult(SearchResult):
    """A search whose pruner stopped some trials early. `values` holds the final
    value of the trials it let finish and NaN for the ones it stopped, so `best` is
    what the search would report; `epochs` is how many epochs each trial trained, and
    `full_values` what each would have reached had it run to the end (known here
    because every run was trained in full once, see `halving_search`)."""

    epochs: list[int] = field(default_factory=list)
    full_values: list[float] = field(default_factory=list)

    @property
    def table(self) -> pd.DataFrame:
        t = super().table
        t["epochs"] = self.epochs
        t["stopped"] = [math.isnan(v) and not math.isnan(f) for v, f in zip(self.values, self.full_values)]
        t["full_value"] = self.full_values
        return t


PRUNERS = ("halving", "hyperband")


def halving_search(base: Spec, space: SpaceLike, budget: int, seed: int, *, reduction_factor: int = 3,
                   pruner: str = "halving", metric: str = "val_acc") -> HalvingResult:
    """Random search (the points of `random_points(space, budget, seed)`) with an
    Optuna pruner deciding after every epoch whether a trial goes on: successive
    halving (Jamieson & Talwalkar 2016; Optuna's asynchronous `SuccessiveHalvingPruner`,
    rungs at 1, r, r², ... epochs for `reduction_factor` r) or Hyperband (Li et al.
    2018; `HyperbandPruner`, several such brackets). A trial stopped at a rung keeps
    only the epochs it trained; the budget spent is `sum(result.epochs)`.

    Each point's run is trained in full once, through the run cache, and the pruner
    is fed its validation history epoch by epoch. A run stopped after epoch k would
    have measured exactly those k epochs (same seed, same batches, same schedule), so
    the decisions and epoch counts are those of a real pruned search, and every
    trial's `full_values` shows what stopping it cost. `base.epochs` is the most a
    trial trains.

    >>> r = halving_search(base.replace(epochs=9), {"lr": (1e-5, 1.0, True)}, 27, seed=0)   # doctest: +SKIP
    >>> sum(r.epochs), r.best_value                                                          # doctest: +SKIP
    """
    import optuna
    if pruner not in PRUNERS:
        raise SpecError("pruner", pruner, "one of " + ", ".join(PRUNERS))
    _whole("reduction_factor", reduction_factor, "a whole number >= 2", low=2)
    axes, budget, _ = _setup(base, space, budget, None)
    if base.epochs < 2:
        raise SpecError("base.epochs", base.epochs, "at least 2: a pruner needs epochs to stop a trial between")
    points = random_points(axes, budget, check_seed(seed))
    specs = [base.replace(**p) for p in points]   # every point checked before any training
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    stopper = (optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=reduction_factor)
               if pruner == "halving" else
               optuna.pruners.HyperbandPruner(min_resource=1, max_resource=base.epochs,
                                              reduction_factor=reduction_factor))
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed),
                                pruner=stopper)
    values, epochs, full = [], [], []
    for point, spec in zip(points, specs):
        run = run_cached(spec)
        history = [float(v) for v in run.epochs[metric]]
        trial = study.ask()
        trained, value = len(history), history[-1] if history and not run.diverged else math.nan
        for epoch, v in enumerate(history, start=1):
            if math.isnan(v):
                break
            trial.report(v, epoch)
            if epoch < len(history) and trial.should_prune():
                trained, value = epoch, math.nan
                break
        if not math.isnan(value):
            study.tell(trial, value)
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED if trained < len(history)
                       else optuna.trial.TrialState.FAIL)
        values.append(value)
        epochs.append(trained)
        full.append(math.nan if run.diverged else float(run.final.get(metric, math.nan)))
    return HalvingResult(pruner, axes, points, values, specs, epochs=epochs, full_values=full)


def refine(space: SpaceLike, center: Point, fraction: float = 0.25) -> dict[str, Axis]:
    """A narrower space around `center`: each axis keeps `fraction` of its width (on
    its own scale), centred on the point's value and shifted to stay inside the
    original range.

    >>> fine = refine({"lr": (1e-5, 1.0, True)}, {"lr": 1e-3}, fraction=0.2)
    >>> round(fine["lr"].low, 6), round(fine["lr"].high, 6)
    (0.000316, 0.003162)
    """
    axes = check_space(space)
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
        raise SpecError("fraction", fraction, "a number > 0 and < 1 (the share of each range to keep)")
    out = {}
    for n, ax in axes.items():
        if n not in center:
            raise SpecError("center", center, f"a point with a value for every axis (missing {n!r})")
        value = center[n]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
                or (ax.log and value <= 0):
            raise SpecError(f"center[{n!r}]", value, "a finite number" + (" > 0 (the axis is on a log scale)"
                                                                          if ax.log else ""))
        u = ax.to_unit(center[n])
        lo = min(max(u - fraction / 2, 0.0), 1.0 - fraction)
        out[n] = Axis(float(ax.from_unit(lo)) if not ax.integer else ax.from_unit(lo),
                      float(ax.from_unit(lo + fraction)) if not ax.integer else ax.from_unit(lo + fraction),
                      ax.log, ax.integer)
        if not out[n].low < out[n].high:  # an integer axis too narrow to narrow
            out[n] = ax
    return out


def coarse_to_fine(base: Spec | None, space: SpaceLike, budget: int, seed: int, *,
                   fraction: float = 0.25, objective: Objective | None = None
                   ) -> tuple[SearchResult, SearchResult]:
    """Two random searches of `budget` runs each: a coarse one over `space`, then a
    fine one over `refine(space, coarse.best, fraction)` (drawn by another seed).

    >>> coarse, fine = coarse_to_fine(base, {"lr": (1e-5, 1.0, True)}, 9, seed=0)   # doctest: +SKIP
    >>> fine.space["lr"]                                                           # doctest: +SKIP
    """
    axes, budget, objective = _setup(base, space, budget, objective)
    coarse = random_search(base, axes, budget, seed, objective=objective)
    fine = random_search(base, refine(axes, coarse.best, fraction), budget, check_seed(seed) ^ 0x5EED,
                         objective=objective)
    coarse.method, fine.method = "coarse", "fine"
    return coarse, fine


def compare(results: Mapping[str, Sequence[SearchResult]]) -> pd.DataFrame:
    """Best value so far after each trial, as mean and standard error over the
    searches of each method (one search per search seed; a deterministic method
    such as grid has one): columns method, trial, mean, se, n.

    >>> compare({"random": [r0, r1, r2], "grid": [g]})   # doctest: +SKIP
    """
    rows = []
    for method, searches in results.items():
        _some_searches(f"results[{method!r}]", searches)
        curves = np.array([best_so_far(s.values) for s in searches], dtype=float)
        n = curves.shape[0]
        for t in range(curves.shape[1]):
            col = curves[:, t]
            rows.append({"method": method, "trial": t + 1, "mean": float(np.nanmean(col)),
                         "se": float(np.nanstd(col, ddof=1) / math.sqrt(n)) if n > 1 else 0.0, "n": n})
    return pd.DataFrame(rows)


def _some_searches(name: str, searches: Sequence[SearchResult]) -> None:
    """Refuse an empty list of searches, or a search without trials: their best is undefined."""
    if len(searches) == 0:
        raise ValueError(f"{name}: [] is not allowed; expected at least one SearchResult")
    for s in searches:
        if len(s.values) == 0:
            raise ValueError(f"{name}: a search with no trials ({s.method!r}) is not allowed; expected >= 1 trial")


def best_of(results: Sequence[SearchResult], k: int | None = None) -> tuple[float, float]:
    """The best value each search found (within its first `k` trials), as mean and
    standard error over the searches; diverged runs (NaN) are skipped.

    >>> r = [SearchResult("random", {}, [{}, {}], [0.8, 0.9]), SearchResult("random", {}, [{}, {}], [0.7, 0.6])]
    >>> [round(x, 3) for x in best_of(r)], [round(x, 3) for x in best_of(r, k=1)]
    ([0.8, 0.1], [0.75, 0.05])
    """
    if k is not None:
        _whole("k", k, "a whole number of trials >= 1, or None for all of them")
    _some_searches("results", results)
    best = np.array([np.nanmax(np.array(r.values[:k], dtype=float)) for r in results])
    se = best.std(ddof=1) / math.sqrt(len(best)) if len(best) > 1 else 0.0
    return float(best.mean()), float(se)


def stage_values(results: Sequence[SearchResult], part: slice = slice(None)) -> list[float]:
    """Every run's value in `part` of each search, pooled over the searches: the runs of
    one stage (coarse, fine, or trials 10-16 of a random search) as one sample.

    >>> stage_values([SearchResult("random", {}, [{}] * 3, [0.1, 0.2, 0.3])] * 2, slice(1, None))
    [0.2, 0.3, 0.2, 0.3]
    """
    return [v for r in results for v in r.values[part]]


def seed_values(spec: Spec, seeds: Sequence[int], metric: str = "val_acc") -> np.ndarray:
    """The final `metric` of `spec` trained once per seed (through the run cache): how
    much one setting's result moves with nothing but the seed.

    >>> seed_values(Spec(lr=3e-3), seeds=[0, 1, 2])   # doctest: +SKIP
    array([0.912, 0.905, 0.917])
    """
    if not isinstance(spec, Spec):
        raise SpecError("spec", spec, "a Spec")
    runs = [spec.replace(seed=s) for s in seeds]   # every seed checked before any training
    return np.array([run_cached(r).final[metric] for r in runs], dtype=float)


def chain(first: SearchResult, second: SearchResult, method: str | None = None) -> SearchResult:
    """Two searches as one, trials of `first` then of `second`: a two-stage search
    (coarse, then fine) seen as a single budget, so its best and its best-so-far
    curve compare with a one-stage search of the same total number of runs.

    >>> a = SearchResult("coarse", {}, [{"x": 1}], [0.5])
    >>> b = SearchResult("fine", {}, [{"x": 2}, {"x": 3}], [0.7, 0.6])
    >>> both = chain(a, b)
    >>> both.method, both.values, both.best
    ('coarse+fine', [0.5, 0.7, 0.6], {'x': 2})
    """
    return SearchResult(method or f"{first.method}+{second.method}", dict(first.space), first.points + second.points,
                        first.values + second.values, first.specs + second.specs)


def one_knob(base: Spec, name: str, values: Sequence[float], *, objective: Objective | None = None) -> SearchResult:
    """One knob alone: `base` with the field `name` set to each of `values` in turn,
    every other field as `base` has it (one run each, through the cache).

    >>> lrs = one_knob(base, "lr", [1e-4, 1e-3, 1e-2])   # doctest: +SKIP
    >>> lrs.table[["lr", "value"]]                   # doctest: +SKIP
    """
    if not isinstance(base, Spec):
        raise SpecError("base", base, "a Spec")
    values = list(values)
    if not values:
        raise SpecError("values", values, "at least one value of " + name)
    points = [{name: v} for v in values]
    for p in points:   # every value checked (SpecError names the field) before any training
        base.replace(**p)
    low, high = min(values), max(values)
    axes = {name: Axis(low, high, log=low > 0 and high >= 10 * low)}   # the scale plots draw it on
    return _evaluate("sweep", base, axes, points, objective or val_acc_objective(base))


def good_band(result: SearchResult, name: str, n_val: int, tol: float = 2.0, log: bool = True) -> float:
    """How wide a range of `name` (in decades when `log`) the runs within `tol`
    standard errors of the search's best value span: the width of the band inside
    which this knob can be set without a loss the validation set can see. A knob
    that must be set precisely has a narrow band; one that barely matters, a wide one.

    >>> r = SearchResult("sweep", {}, [{"lr": 1e-4}, {"lr": 1e-3}, {"lr": 1e-2}, {"lr": 1e-1}], [0.5, 0.9, 0.905, 0.6])
    >>> round(good_band(r, "lr", n_val=2000), 3)
    1.0
    """
    from ..measures import near_best
    values = [float(v) for v in result.values]
    xs = [p[name] for p, good in zip(result.points, near_best(values, n_val, tol)) if good]
    if log:
        xs = [math.log10(x) for x in xs]
    return float(max(xs) - min(xs))


def winner_kept(values: np.ndarray | Sequence[Sequence[float]]) -> float:
    """Given one row per setting (the search's winner first) and one column per
    training seed (the search's own seed first), the share of the other seeds on
    which the winner is still the best of the rows (a NaN, a diverged run, never is).

    >>> winner_kept([[0.90, 0.88, 0.91, 0.87, 0.90], [0.89, 0.89, 0.90, 0.86, 0.91], [0.70, 0.70, 0.71, 0.69, 0.7]])
    0.5
    """
    v = np.array(values, dtype=float)
    if v.ndim != 2 or v.shape[0] < 2 or v.shape[1] < 2:
        raise ValueError(f"values of shape {v.shape} are not allowed; expected >= 2 settings x >= 2 seeds")
    filled = np.where(np.isnan(v), -np.inf, v)
    kept = [bool(filled[0, j] > filled[1:, j].max()) for j in range(1, v.shape[1])]
    return float(np.mean(kept))


def winner_lead(values: np.ndarray | Sequence[Sequence[float]], n_val: int) -> float:
    """Given one row per setting (the search's winner first) and one column per
    training seed (the search's own seed first), the winner's lead over the best of
    the other rows on each of the other seeds, in standard errors of `n_val`
    validation images (`measures.gap_in_se`), averaged over those seeds. Near 0 or
    below when the winner only tied; many SE when it is really better.

    >>> round(winner_lead([[0.90, 0.88, 0.91], [0.89, 0.89, 0.90], [0.70, 0.70, 0.71]], n_val=2000), 2)
    0.04
    """
    from ..measures import gap_in_se
    v = np.array(values, dtype=float)
    if v.ndim != 2 or v.shape[0] < 2 or v.shape[1] < 2:
        raise ValueError(f"values of shape {v.shape} are not allowed; expected >= 2 settings x >= 2 seeds")
    return float(np.mean([gap_in_se(v[0, j], np.nanmax(v[1:, j]), n_val) for j in range(1, v.shape[1])]))


# --- figures ------------------------------------------------------------------------

def plot_projection(results: Mapping[str, SearchResult], name: str, objective: Objective | None = None,
                    curve: Mapping[str, Any] | None = None, title: str | None = None):
    """One row of ticks per search: the values of `name` each search tried, projected
    onto that axis (a grid's repeated values fall on the same tick, drawn bolder).
    With `objective` and `curve` (a full point), the objective along that axis is
    drawn above the rows, the other fields held at `curve`'s values.

    >>> plot_projection({"grid": g, "random": r}, "lr")   # doctest: +SKIP
    """
    from collections import Counter

    from ..plots import figure
    fig, (ax,) = figure(width=7.2, height=3.2 if objective is None else 4.2)
    first = next(iter(results.values())).space[name]
    rows = list(results.items())
    for i, (label, res) in enumerate(rows):
        counts = Counter(p[name] for p in res.points)
        for v, c in counts.items():
            ax.plot([v, v], [i - 0.3, i + 0.3], color=f"C{i}", lw=1 + 1.5 * (c - 1))
        ax.text(1.01, i, f"{len(counts)} distinct of {len(res.points)}", transform=ax.get_yaxis_transform(),
                va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows])
    ax.set_ylim(-0.6, len(rows) - 0.4 + (1.6 if objective is not None else 0))
    if first.log:
        ax.set_xscale("log")
    ax.set_xlim(first.low, first.high)
    ax.set_xlabel(name + (" (log scale)" if first.log else ""))
    if objective is not None and curve is not None:
        xs = [first.from_unit(u) for u in np.linspace(0, 1, 200)]
        ys = np.array([objective({**curve, name: x}) for x in xs])
        lo, hi = np.nanmin(ys), np.nanmax(ys)
        top = len(rows) - 0.3
        ax.plot(xs, top + 1.4 * (ys - lo) / ((hi - lo) or 1), color="k", lw=1.2)
        ax.text(0.01, 0.97, "objective along this axis (higher is better)", transform=ax.transAxes,
                va="top", fontsize=8)
    ax.set_title(title or f"the values of {name} each search tried")
    return fig


def plot_best_so_far(table: pd.DataFrame, grids: Mapping[int, float] | None = None, ylabel: str = "best val acc so far",
                     title: str | None = None, ylim: tuple[float, float] | None = None):
    """Best value so far against the number of trials, one line per method with
    error bars of one standard error over its search seeds (`compare`'s table);
    `grids` adds the best value of a full grid of each size as squares.

    >>> plot_best_so_far(compare({"random": rs, "tpe": ts}), grids={9: g9.best_value})   # doctest: +SKIP
    """
    from ..plots import figure, legend_outside
    fig, (ax,) = figure(width=7.2)
    for i, (method, t) in enumerate(table.groupby("method", sort=False)):
        n = int(t["n"].iloc[0])
        ax.errorbar(t["trial"] + 0.08 * i, t["mean"], yerr=t["se"], marker="o", ms=3, capsize=2,
                    color=f"C{i}", label=f"{method} (mean ± SE over {n} search seeds)" if n > 1 else method)
    if grids:
        ax.plot(list(grids), list(grids.values()), "s", color="k", ms=7, label="full grid of that many runs")
    ax.set(xlabel="trials (runs)", ylabel=ylabel, title=title or "")
    if ylim is not None:
        ax.set_ylim(*ylim)
    legend_outside(ax)
    return fig


def search_view(spec: Spec, lrs: Sequence[float] = (1e-5, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 1.0)):
    """The Explore panel's figure: validation accuracy against the learning rate
    (log axis) at the spec's other fields, with the spec's own point marked, and
    that run's training loss per step. Every run is cached."""
    from ..plots import figure
    lrs = sorted(set(lrs) | {spec.lr})
    accs = []
    for lr in lrs:
        run = run_cached(spec.replace(lr=lr))
        accs.append(math.nan if run.diverged else run.final["val_acc"])
    fig, axes = figure(ncols=2, width=4.6)
    axes[0].plot(lrs, accs, "o-", color="C0", ms=4)
    failed = [lr for lr, a in zip(lrs, accs) if math.isnan(a)]
    if failed:
        axes[0].plot(failed, [0.0] * len(failed), "x", color="C0", ms=8, clip_on=False, label="diverged")
    here = accs[lrs.index(spec.lr)]
    axes[0].plot([spec.lr], [0.0 if math.isnan(here) else here], "*", color="C3", ms=14,
                 label="this spec" + (" (diverged)" if math.isnan(here) else ""))
    axes[0].set(xscale="log", ylim=(0, 1), xlabel="learning rate (log scale)", ylabel="final val acc",
                title=f"weight decay {spec.weight_decay:g}, dropout {spec.dropout:g}")
    axes[0].legend(fontsize=8, loc="lower center")
    run = run_cached(spec)
    axes[1].plot(run.steps["step"], run.steps["loss"], color="C3", lw=1)
    axes[1].set(yscale="log", ylim=(0.05, 100), xlabel="step", ylabel="training loss",
                title=f"lr {spec.lr:g}: training loss" + (" (diverged)" if run.diverged else ""))
    fig.tight_layout()
    return fig


def plot_values(results: Mapping[str, SearchResult], name: str, ylabel: str = "final val acc",
                title: str | None = None, ylim: tuple[float, float] | None = (0, 1)):
    """Each trial's value against the field `name` it tried, one colour per search
    (diverged runs as x on the bottom edge).

    >>> plot_values({"coarse": coarse, "fine": fine}, "lr")   # doctest: +SKIP
    """
    from ..plots import figure, legend_outside
    fig, (ax,) = figure(width=7.2)
    for i, (label, res) in enumerate(results.items()):
        xs = np.array([p[name] for p in res.points], dtype=float)
        ys = np.array(res.values, dtype=float)
        ok = ~np.isnan(ys)
        ax.plot(xs[ok], ys[ok], "o", ms=5, color=f"C{i}", alpha=0.8, label=f"{label} ({len(xs)} runs)")
        for x in xs[~ok]:
            ax.plot([x], [ylim[0] if ylim else np.nanmin(ys)], "x", color=f"C{i}", ms=8, clip_on=False)
    first = next(iter(results.values())).space[name]
    if first.log:
        ax.set_xscale("log")
    ax.set(xlabel=name + (" (log scale)" if first.log else ""), ylabel=ylabel, title=title or "")
    if ylim is not None:
        ax.set_ylim(*ylim)
    legend_outside(ax)
    return fig


def plot_seeds(values: Mapping[str, Sequence[float]], seeds: Sequence[int], ylabel: str = "final val acc",
               title: str | None = None):
    """The same configs trained with several seeds: one line per config across the
    seeds, and each config's mean with an error bar of one standard error on the
    right.

    >>> plot_seeds({"lr 5e-3": [0.85, 0.84], "lr 1e-2": [0.84, 0.86]}, seeds=[0, 1])   # doctest: +SKIP
    """
    from ..plots import figure, legend_outside
    fig, (ax,) = figure(width=7.2)
    seeds = list(seeds)
    for i, (label, vals) in enumerate(values.items()):
        v = np.array(vals, dtype=float)
        ax.plot(range(len(seeds)), v, "o-", color=f"C{i}", label=label)
        se = v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0
        ax.errorbar([len(seeds) + 0.3 + 0.15 * i], [v.mean()], yerr=[se], fmt="s", color=f"C{i}", capsize=3)
    ax.set_xticks(list(range(len(seeds))) + [len(seeds) + 0.4], [str(s) for s in seeds] + ["mean ± SE"])
    ax.set(xlabel="training seed", ylabel=ylabel, title=title or "")
    legend_outside(ax)
    return fig


def welch_t(better: Sequence[float], worse: Sequence[float]) -> float:
    """How far apart two sets of run values are on average, in standard errors of the
    difference of their means (Welch's t; NaN values, diverged runs, are dropped).
    Two batches of draws from the same distribution give |t| of about 1 or less;
    |t| > 3 rarely happens by chance.

    >>> round(welch_t([0.8, 0.9, 0.85, 0.88], [0.2, 0.5, 0.3, 0.6]), 1)
    4.9
    """
    a = np.array(better, dtype=float)
    b = np.array(worse, dtype=float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) < 2 or len(b) < 2:
        raise ValueError("welch_t needs at least two values on each side")
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    diff = float(a.mean() - b.mean())
    return diff / se if se > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
