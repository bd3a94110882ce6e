"""The run doctor: what went wrong in a run, read from what the run measured.

`diagnose(run)` returns findings, each with a stable `code`, the `evidence` (the
numbers it rests on) and the `fix`. It reads only the run's histories, its probes and
its vitals (a batch of inputs, its outputs, how far each step moved the weights),
never the spec: a broken pipeline looks the same whatever caused it, and a doctor
that read `spec.lr` would only be repeating the question.

`Vitals` records those vitals in every run (`run.extra["vitals"]`); it costs a copy
of the weights every few dozen steps and one small forward pass per epoch. The
`Doctor` callback runs the same checks while training and warns once per problem.

>>> run = fit(Spec(subset=5000, lr=5.0, probe_every=10))     # doctest: +SKIP
>>> [f.code for f in diagnose(run)]                            # doctest: +SKIP
['lr_too_high']
>>> diagnose(run)[0].evidence                                  # doctest: +SKIP
{'diverged_at_step': 3, 'first_loss': 2.31, ...}

Also here: notebook 14's gallery of broken runs, each breaking one thing, naming
what the doctor should find and how to mend it.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..callbacks import Callback
from ..run import Run
from ..spec import Spec

# Thresholds, each with the reason it sits where it does.
# Standardised inputs have mean 0 and std 1; raw pixels (0..255) have a mean near 33
# and a std near 78. Anything this far out makes the first layer's pre-activations
# tens of times larger than its init assumed.
INPUT_MEAN_LIMIT, INPUT_STD_RANGE = 3.0, (0.1, 10.0)
# CS231n's rule of thumb: each step should move the weights by about 1e-3 of their norm.
# Two orders of magnitude either side is a step size that is plainly wrong.
UPDATE_RATIO_HIGH, UPDATE_RATIO_LOW = 1e-1, 1e-5
# Half the units of the hidden layers dead (ReLU: never on for a batch) or saturated
# (sigmoid/tanh outputs at their rails) means half the network passes no gradient.
DEAD_LIMIT, SATURATED_LIMIT = 0.5, 0.5
# The first layer's gradient this many times smaller or larger than the output
# layer's: the signal fades or grows by that factor on its way back.
VANISHING_RATIO, EXPLODING_RATIO = 1e-3, 1e3
# A global gradient norm this large (cross-entropy at init gives about 1) is one
# no step size handles.
EXPLODING_NORM = 1e3
# "Loss at chance throughout": every epoch's validation loss at least this share of
# the chance loss, and accuracy under twice a uniform guess's.
CHANCE_LOSS_SHARE, CHANCE_ACC_FACTOR = 0.97, 2.0
# Gradients that pile up (no zero_grad): the recorded norm is that of a running sum, so
# it grows (last tenth of the run over the first) and changes little from step to step
# (healthy minibatch gradients differ by 10-30% between steps).
GROWTH_FACTOR, SMOOTH_CHANGE = 4.0, 0.1
# Two evaluations of the same batch in eval mode agree to float precision; a change of a
# millionth of the outputs' spread is already more than rounding explains.
EVAL_REPEAT_LIMIT = 1e-6
# Overfitting: train accuracy this far above validation while validation loss climbs
# this far above its best epoch.
OVERFIT_GAP, OVERFIT_RISE = 0.1, 1.1


@dataclass
class Finding:
    """One problem (or a clean bill, code `healthy`) with the numbers behind it."""

    code: str
    evidence: dict[str, Any]
    fix: str

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    def __str__(self) -> str:
        """The code, then one line per piece of evidence (words, not key=value), then
        the fix: lines short enough not to wrap mid-word on a page.

        >>> print(Finding("dead_units", {"dead_fraction": 0.984, "by_layer": {1: 0.96875, 2: 1.0}}, "a leaky ReLU"))
        dead_units
          dead fraction: 0.984
          by layer: layer 1: 0.969, layer 2: 1
          fix: a leaky ReLU
        """
        lines = [self.code] + [f"  {k.replace('_', ' ')}: {_fmt(v)}" for k, v in self.evidence.items()]
        return "\n".join(lines + [f"  fix: {self.fix}"])


def _fmt(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"layer {k}: {_fmt(x)}" if isinstance(k, int) else f"{k}: {_fmt(x)}" for k, x in v.items())
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


# --- what a run measured -----------------------------------------------------------

@dataclass
class Measured:
    """The parts of a run (or of a run in progress) the checks may read."""

    steps: pd.DataFrame
    epochs: pd.DataFrame
    probes: pd.DataFrame | None
    vitals: dict[str, Any] = field(default_factory=dict)
    diverged: bool = False

    @classmethod
    def of(cls, run: Any) -> "Measured":
        return cls(run.steps, run.epochs, run.probes, dict(run.extra.get("vitals") or {}), run.diverged)


# --- the checks ----------------------------------------------------------------------
# Each takes what was measured and returns a Finding or None. They are listed in
# CHECKS in the order a reader should act on them: a cause before its symptoms.

def _hidden_last(probes: pd.DataFrame | None, column: str) -> pd.Series | None:
    """The column per hidden layer at the last probed step (the output layer has no activation)."""
    if probes is None or probes.empty or column not in probes:
        return None
    last = probes[probes["step"] == probes["step"].max()]
    values = last[last["layer"] < last["layer"].max()].set_index("layer")[column].dropna()
    return values if len(values) else None


def check_unscaled_inputs(m: Measured) -> Finding | None:
    if "input_mean" not in m.vitals:
        return None
    mean, std = m.vitals["input_mean"], m.vitals["input_std"]
    lo, hi = INPUT_STD_RANGE
    if abs(mean) <= INPUT_MEAN_LIMIT and lo <= std <= hi:
        return None
    return Finding("unscaled_inputs", {"input_mean": mean, "input_std": std, "input_absmax": m.vitals["input_absmax"],
                                       "expected": f"|mean| <= {INPUT_MEAN_LIMIT}, std in {lo}..{hi}"},
                   "standardise the inputs with the training set's mean and std (Spec scale='standard')")


def check_softmax_before_loss(m: Measured) -> Finding | None:
    share = m.vitals.get("probability_rows")
    if share is None or m.vitals.get("task") != "classification" or share < 0.99:
        return None
    return Finding("softmax_before_loss",
                   {"probability_rows": share, "output_min": m.vitals["output_min"],
                    "output_max": m.vitals["output_max"], "output_row_sum": m.vitals["output_row_sum"],
                    "last_train_loss": float(m.epochs["train_loss"].iloc[-1]) if len(m.epochs) else math.nan},
                   "feed the loss raw logits: cross-entropy applies its own log-softmax, so a softmax "
                   "before it squeezes the logits into 0..1 and the loss cannot fall far below chance")


def check_eval_mode_forgotten(m: Measured) -> Finding | None:
    change = m.vitals.get("eval_repeat_change")
    if change is None or not change > EVAL_REPEAT_LIMIT:
        return None
    return Finding("eval_mode_forgotten", {"eval_repeat_change": change,
                                           "last_val_acc": float(m.epochs["val_acc"].iloc[-1]) if len(m.epochs) else math.nan},
                   "call model.eval() before evaluating (and model.train() before training again): two "
                   "evaluations of the same images disagree, so dropout or batch norm's batch statistics are "
                   "still in training mode and every validation number is noisy and biased")


def _grad_norms(m: Measured) -> pd.Series:
    return m.steps["grad_norm"].replace([math.inf, -math.inf], math.nan).dropna() if len(m.steps) else pd.Series()


def growth_and_change(grad_norms: Sequence[float]) -> tuple[float, float]:
    """How a run's gradient norm moves: the median of its last tenth of steps over the
    median of its first tenth, and the median relative change from one step to the
    next. Gradients that are never cleared grow and change smoothly; fresh minibatch
    gradients do neither.

    >>> growth_and_change([1.0, 1.0, 2.0, 2.0])
    (2.0, 0.0)
    """
    g = np.asarray(grad_norms, dtype=float)
    tenth = max(2, len(g) // 10)
    growth = float(np.median(g[-tenth:]) / max(np.median(g[:tenth]), 1e-12))
    change = float(np.median(np.abs(np.diff(g)) / np.maximum(g[1:], 1e-12)))
    return growth, change


def check_gradients_accumulate(m: Measured) -> Finding | None:
    g = _grad_norms(m).to_numpy()
    if len(g) < 20:
        return None
    growth, change = growth_and_change(g)
    if not (growth > GROWTH_FACTOR and change < SMOOTH_CHANGE):
        return None
    return Finding("gradients_accumulate", {"grad_norm_growth": growth, "median_step_to_step_change": change,
                                            "first_grad_norm": float(g[0]), "last_grad_norm": float(g[-1])},
                   "clear the gradients every step (optimizer.zero_grad() before backward): "
                   "torch adds each backward pass into .grad, so unzeroed gradients pile up")


def _median_update_ratio(m: Measured) -> float:
    ratios = [r for _, r in m.vitals.get("update_ratios", []) if math.isfinite(r)]
    return float(pd.Series(ratios).median()) if ratios else math.nan


def _broken_at_start(m: Measured) -> bool:
    """The first loss was already NaN or inf: the run stopped before any update."""
    return m.diverged and len(m.steps) > 0 and not math.isfinite(float(m.steps["loss"].iloc[0]))


def check_not_finite_at_start(m: Measured) -> Finding | None:
    # No step was taken, so nothing about the learning rate was measured: say so
    # instead of blaming it.
    if not _broken_at_start(m):
        return None
    return Finding("not_finite_at_start", {"first_loss": float(m.steps["loss"].iloc[0]),
                                           "input_absmax": m.vitals.get("input_absmax", math.nan)},
                   "the loss was NaN or inf before any update, so the learning rate cannot be judged from this "
                   "run: look for NaN or inf in the inputs, an init scale that overflows float32 (init_std), "
                   "or a loss that takes the log of 0")


def check_lr_too_high(m: Measured) -> Finding | None:
    ratio = _median_update_ratio(m)
    losses = m.steps["loss"] if len(m.steps) else pd.Series(dtype=float)
    if _broken_at_start(m):
        return None
    if m.diverged:
        return Finding("lr_too_high", {"diverged_at_step": int(len(losses) - 1), "first_loss": float(losses.iloc[0]),
                                       "last_loss": float(losses.iloc[-1]), "median_update_ratio": ratio},
                       "lower the learning rate (try 3-10x lower, or find it with a range test)")
    if math.isfinite(ratio) and ratio > UPDATE_RATIO_HIGH:
        return Finding("lr_too_high", {"median_update_ratio": ratio, "healthy_ratio": 1e-3,
                                       "first_loss": float(losses.iloc[0]), "last_loss": float(losses.iloc[-1])},
                       "lower the learning rate: each step moves the weights by a large share of their size "
                       "(about 1e-3 is healthy)")
    return None


def check_lr_too_low(m: Measured) -> Finding | None:
    ratio = _median_update_ratio(m)
    # A ratio of exactly 0 means nothing could move (dead units pass no gradient), not a small step.
    if not (math.isfinite(ratio) and 0 < ratio < UPDATE_RATIO_LOW) or m.diverged:
        return None
    losses = m.steps["loss"]
    return Finding("lr_too_low", {"median_update_ratio": ratio, "healthy_ratio": 1e-3,
                                  "first_loss": float(losses.iloc[0]), "last_loss": float(losses.iloc[-1])},
                   "raise the learning rate: each step moves the weights by a tiny share of their size "
                   "(about 1e-3 is healthy)")


def _unit_share(m: Measured, column: str, limit: float, code: str, share: str, fix: str) -> Finding | None:
    """A finding when the hidden layers' mean `column` (from the last probes) passes `limit`."""
    values = _hidden_last(m.probes, column)
    if values is None or values.mean() <= limit:
        return None
    return Finding(code, {share: float(values.mean()), "by_layer": {int(k): float(v) for k, v in values.items()}},
                   fix)


def check_dead_units(m: Measured) -> Finding | None:
    return _unit_share(m, "dead_frac", DEAD_LIMIT, "dead_units", "dead_fraction",
                       "bring the units back: a lower learning rate, He (kaiming) init, biases at or above 0, "
                       "or a leaky ReLU, whose negative side still passes gradient")


def check_saturated_units(m: Measured) -> Finding | None:
    return _unit_share(m, "saturated_frac", SATURATED_LIMIT, "saturated_units", "saturated_fraction",
                       "keep pre-activations small: Xavier (Glorot) init for sigmoid/tanh, normalisation "
                       "layers, or a ReLU-family activation, which has no rail on its positive side")


def _layer_grad_ratio(m: Measured) -> float:
    """Median over the first half of the probed steps of (first layer's gradient norm /
    output layer's): the problem as the run met it, before an adaptive optimizer
    (Adam rescales each weight's step) works around part of it."""
    p = m.probes
    if p is None or p.empty or "grad_norm" not in p:
        return math.nan
    first, last = p["layer"].min(), p["layer"].max()
    if first == last:
        return math.nan
    wide = p.pivot_table(index="step", columns="layer", values="grad_norm")
    ratio = (wide[first] / wide[last]).replace([math.inf, -math.inf], math.nan).dropna()
    ratio = ratio.iloc[: max(1, (len(ratio) + 1) // 2)]
    return float(ratio.median()) if len(ratio) else math.nan


def check_vanishing_gradients(m: Measured) -> Finding | None:
    ratio = _layer_grad_ratio(m)
    if not (math.isfinite(ratio) and ratio < VANISHING_RATIO):
        return None
    return Finding("vanishing_gradients", {"first_to_last_layer_grad_ratio": ratio, "limit": VANISHING_RATIO},
                   "give the gradient a path back: He/Xavier init matched to the activation, ReLU instead "
                   "of sigmoid, batch or layer normalisation, or a shallower net")


def check_exploding_gradients(m: Measured) -> Finding | None:
    ratio, g = _layer_grad_ratio(m), _grad_norms(m)
    norm = float(g.median()) if len(g) else math.nan
    if not ((math.isfinite(ratio) and ratio > EXPLODING_RATIO) or (math.isfinite(norm) and norm > EXPLODING_NORM)):
        return None
    return Finding("exploding_gradients", {"first_to_last_layer_grad_ratio": ratio, "median_grad_norm": norm,
                                           "limits": f"ratio {EXPLODING_RATIO:g}, norm {EXPLODING_NORM:g}"},
                   "shrink the init (He/Xavier scale), add normalisation layers, or clip the gradient norm")


def check_not_learning(m: Measured) -> Finding | None:
    if m.vitals.get("task") != "classification" or m.epochs.empty:
        return None
    chance_loss = m.vitals.get("chance_loss", math.nan)
    chance_acc = 1 / (m.vitals.get("num_classes") or 10)
    loss, acc = m.epochs["val_loss"], m.epochs["val_acc"]
    if loss.isna().any() or float(loss.min()) < CHANCE_LOSS_SHARE * chance_loss \
            or float(acc.max()) >= CHANCE_ACC_FACTOR * chance_acc:
        return None
    return Finding("not_learning", {"lowest_val_loss": float(loss.min()), "chance_loss": chance_loss,
                                    "best_val_acc": float(acc.max()), "chance_acc": chance_acc,
                                    "last_train_loss": float(m.epochs["train_loss"].iloc[-1])},
                   "the validation loss never left chance: check that labels match their inputs (a shuffled "
                   "or misaligned label pipeline looks exactly like this), then the learning rate and init")


def check_overfitting(m: Measured) -> Finding | None:
    e = m.epochs
    if len(e) < 3 or m.vitals.get("task") != "classification":
        return None
    gap = float(e["train_acc"].iloc[-1] - e["val_acc"].iloc[-1])
    best, last = float(e["val_loss"].min()), float(e["val_loss"].iloc[-1])
    if not (gap > OVERFIT_GAP and last > OVERFIT_RISE * best):
        return None
    return Finding("overfitting", {"train_minus_val_acc": gap, "best_val_loss": best, "last_val_loss": last,
                                   "best_epoch": int(e["val_loss"].idxmin()) + 1},
                   "regularise: more data or augmentation, weight decay, dropout, or early stopping at the "
                   "best epoch (Spec patience)")


CHECKS: list[Callable[[Measured], Finding | None]] = [
    check_unscaled_inputs, check_softmax_before_loss, check_eval_mode_forgotten, check_gradients_accumulate,
    check_not_finite_at_start,
    check_lr_too_high,
    check_lr_too_low, check_exploding_gradients, check_vanishing_gradients, check_dead_units,
    check_saturated_units, check_not_learning, check_overfitting,
]
CODES = ("unscaled_inputs", "softmax_before_loss", "eval_mode_forgotten", "gradients_accumulate",
         "not_finite_at_start", "lr_too_high", "lr_too_low", "exploding_gradients", "vanishing_gradients",
         "dead_units", "saturated_units", "not_learning", "overfitting", "healthy")


def examine(m: Measured) -> list[Finding]:
    """The findings for what was measured; `healthy` alone when nothing is wrong."""
    found = [f for check in CHECKS if (f := check(m)) is not None]
    if found:
        return found
    e = m.epochs
    fix = "nothing to fix; tune for more (learning rate, width, epochs) if you need it"
    if not len(e) or e["val_loss"].isna().all():  # what a run without a validation set cannot show
        fix += ("; this run had no validation set, so overfitting and learning nothing beyond chance "
                "were not judged (give it val_fraction > 0)")
    return [Finding("healthy", {"last_train_loss": float(e["train_loss"].iloc[-1]) if len(e) else math.nan,
                                "last_val_acc": float(e["val_acc"].iloc[-1]) if len(e) else math.nan,
                                "median_update_ratio": _median_update_ratio(m)}, fix)]


def diagnose(run: Any) -> list[Finding]:
    """What went wrong in `run`, most basic cause first, or one `healthy` finding.

    Reads the run's steps, epochs, probes (`probe_every` > 0 for dead, saturated,
    vanishing and exploding units) and `run.extra["vitals"]`; never `run.spec`.

    >>> [f.code for f in diagnose(fit(Spec(subset=5000, probe_every=10)))]   # doctest: +SKIP
    ['healthy']
    """
    return examine(Measured.of(run))


class Doctor(Callback):
    """Warns while training, once per problem, as soon as the checks see it.

    Runs the checks after the first epoch and every epoch after it (and at the end),
    on what has been measured so far. Add it to `fit(spec, callbacks=[Doctor()])`;
    it needs `Vitals`, which every run has.
    """

    def __init__(self) -> None:
        self.warned: set[str] = set()

    def after_epoch(self, learner) -> None:
        self._check(learner)

    def _check(self, learner) -> None:
        m = Measured(pd.DataFrame(learner.step_rows), pd.DataFrame(learner.epoch_rows), _probes_so_far(learner),
                     learner.extra.get("vitals", {}), learner.diverged)
        for f in examine(m):
            if f.code != "healthy" and f.code not in self.warned:
                self.warned.add(f.code)
                warnings.warn(f"run doctor, epoch {learner.epoch + 1}: {f}", stacklevel=2)


def _probes_so_far(learner) -> pd.DataFrame | None:
    from ..probes import Probes
    for cb in learner.callbacks:
        if isinstance(cb, Probes) and getattr(cb, "rows", None):
            return pd.DataFrame(cb.rows)
    return learner.probes


# --- A gallery of broken runs ------------------------------------------------------------

@dataclass(frozen=True)
class BrokenRun:
    """One way to break a run: `breaks` the healthy spec, `fixes` the broken one."""

    name: str
    title: str
    breaks: dict[str, Any]
    expected: str
    fixes: dict[str, Any] = field(default_factory=dict)

    def broken(self, base: Spec) -> Spec:
        return base.replace(**self.breaks)

    def fixed(self, base: Spec) -> Spec:
        """The broken spec with the fix applied (for most cases: the healthy base again)."""
        undo = {k: getattr(base, k) for k in self.breaks}
        return self.broken(base).replace(**{**undo, **self.fixes})


CASES: tuple[BrokenRun, ...] = (
    BrokenRun("healthy", "a healthy run", {}, "healthy"),
    BrokenRun("lr_too_high", "learning rate far too high (Adam, lr 0.5)", {"lr": 0.5}, "lr_too_high"),
    BrokenRun("lr_too_low", "learning rate far too low (Adam, lr 1e-6)", {"lr": 1e-6}, "lr_too_low"),
    BrokenRun("unscaled_inputs", "raw pixels 0..255 as inputs", {"scale": "none"}, "unscaled_inputs"),
    BrokenRun("dead_relus", "dead ReLUs (every bias starts at -5)", {"bias_init": -5.0}, "dead_units"),
    # Mended by the init that suits a sigmoid, not by dropping the sigmoid: the lesson is the scale.
    BrokenRun("saturated_sigmoids", "saturated sigmoids (weights drawn with std 1)",
              {"activation": "sigmoid", "init": "normal", "init_std": 1.0}, "saturated_units",
              {"activation": "sigmoid", "init": "xavier_normal"}),
    BrokenRun("softmax_before_loss", "a softmax fed to cross-entropy", {"fault": "softmax_before_loss"},
              "softmax_before_loss"),
    BrokenRun("shuffled_labels", "training labels shuffled", {"fault": "shuffled_labels"}, "not_learning"),
    BrokenRun("no_zero_grad", "zero_grad missing from the loop", {"fault": "no_zero_grad"}, "gradients_accumulate"),
    # The fault only shows where eval mode changes something, so both arms keep dropout 0.5.
    BrokenRun("forgotten_eval", "model.eval() forgotten, with dropout 0.5", {"fault": "forgotten_eval", "dropout": 0.5},
              "eval_mode_forgotten", {"dropout": 0.5}),
)


def case(name: str) -> BrokenRun:
    """The gallery case called `name` (ValueError naming the known ones otherwise)."""
    for c in CASES:
        if c.name == name:
            return c
    raise ValueError(f"case: {name!r} is not allowed; expected one of {', '.join(c.name for c in CASES)}")


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


@dataclass
class Pair:
    """One case trained broken and fixed, with the doctor's findings on both."""

    case: BrokenRun
    broken: Run
    fixed: Run
    found: list[Finding]
    after_fix: list[Finding]

    @property
    def hit(self) -> bool:
        """The doctor's first finding is the problem the case planted."""
        return self.found[0].code == self.case.expected


def train(base: Spec, cases: tuple[BrokenRun, ...] = CASES) -> dict[str, Pair]:
    """Every case trained broken and fixed (through the run cache) and diagnosed.

    >>> pairs = train(lesson.spec(depth=2, width=128, probe_every=10))   # doctest: +SKIP
    >>> pairs["dead_relus"].found[0].code                                 # doctest: +SKIP
    'dead_units'
    """
    from ..sweeps import run_cached
    out = {}
    for c in cases:
        broken, fixed = run_cached(c.broken(base)), run_cached(c.fixed(base))
        out[c.name] = Pair(c, broken, fixed, diagnose(broken), diagnose(fixed))
    return out


def table(pairs: dict[str, Pair]) -> pd.DataFrame:
    """One row per case: what the doctor should find (`expected`), what it found first
    and in all, whether the first finding is the expected one (`hit`), what it found
    after the fix, and the validation accuracy before and after."""
    return pd.DataFrame([{
        "case": p.case.name, "expected": p.case.expected, "found": p.found[0].code,
        "all_found": ", ".join(codes(p.found)), "hit": p.hit, "after_fix": ", ".join(codes(p.after_fix)),
        "val_acc_broken": p.broken.final["val_acc"], "val_acc_fixed": p.fixed.final["val_acc"],
    } for p in pairs.values()])


def gallery(base: Spec, cases: tuple[BrokenRun, ...] = CASES) -> pd.DataFrame:
    """`table(train(base, cases))`."""
    return table(train(base, cases))


def update_ratios(run: Run) -> pd.Series:
    """|dw| / |w| per sampled step (the doctor's step-size evidence), indexed by step."""
    rows = run.extra.get("vitals", {}).get("update_ratios", [])
    return pd.Series([r for _, r in rows], index=[s for s, _ in rows], dtype=float)


def plot(pairs: dict[str, Pair], ncols: int = 3) -> Figure:
    """Small multiples: each case's training loss, broken (solid) against fixed (dashed,
    drawn on top, so the healthy case's two identical runs both show), on a log scale,
    titled with the doctor's first finding; told apart by line style as well as colour."""
    from .. import plots
    n = len(pairs)
    rows = -(-n // ncols)
    fig = _closed_figure(rows, ncols, (3.4 * ncols, 2.5 * rows))
    axes = fig.axes
    for ax, p in zip(axes, pairs.values()):
        for run, label, style, width in ((p.broken, "broken", "-", 1.8), (p.fixed, "fixed", "--", 1.2)):
            loss = run.steps["loss"].clip(upper=1e4)
            ax.plot(run.steps["step"], loss.rolling(5, min_periods=1).mean(), style, label=label,
                    color="tab:blue" if label == "fixed" else "tab:red", lw=width)
            if run.diverged:
                plots.mark_diverged(ax, float(run.steps["step"].iloc[-1]))
        ax.set_yscale("log")
        ax.set_title(f"{p.case.name}\ndoctor: {p.found[0].code}", fontsize=9,
                     color="black" if p.hit else "red")
        ax.tick_params(labelsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.supxlabel("step", fontsize=9)
    fig.supylabel("training loss (log)", fontsize=9)
    fig.tight_layout()
    return fig


def _closed_figure(rows: int, ncols: int, size: tuple[float, float]) -> Figure:
    """A pyplot figure (so Jupyter renders it) already closed in pyplot (so it shows once)."""
    import matplotlib.pyplot as plt
    fig, _ = plt.subplots(rows, ncols, figsize=size, squeeze=False)
    plt.close(fig)
    return fig


def doctor_view(spec: Spec) -> Figure:
    """The run of `spec` (cached): training loss, the step-size ratio against the
    healthy 1e-3, and the doctor's findings as the title (the Explore panel's view)."""
    from ..sweeps import run_cached
    run = run_cached(spec)
    found = codes(diagnose(run))
    fig = _closed_figure(1, 2, (9, 3.2))
    left, right = fig.axes
    left.plot(run.steps["step"], run.steps["loss"].clip(upper=1e4))
    left.set(yscale="log", xlabel="step", title="training loss (log)")
    ratios = update_ratios(run)
    right.plot(ratios.index, ratios.values, "o-", ms=3)
    right.axhspan(UPDATE_RATIO_LOW, UPDATE_RATIO_HIGH, color="tab:green", alpha=0.08)
    right.axhline(1e-3, color="tab:green", ls="--", lw=1, label="1e-3, the rule of thumb")
    right.set(yscale="log", ylim=(1e-8, 1e2), xlabel="step", title="|dw| / |w| per step")
    right.legend(fontsize=8, loc="upper right")
    fig.suptitle("doctor: " + ", ".join(found), fontsize=10)
    fig.tight_layout()
    return fig
