"""A gallery of broken runs for notebook 14: each breaks one thing, names what the
doctor should find, and says how to mend it.

Every case is a change to a healthy base spec. The doctor never sees that change:
it diagnoses the finished run from what it measured (`trainlab.doctor`).

>>> table = gallery(Spec(subset=5000, val_fraction=0.4, epochs=2, depth=2, width=128))   # doctest: +SKIP
>>> table[["case", "expected", "found", "hit"]]                                         # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from .doctor import Finding, diagnose
from .run import Run
from .spec import Spec


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
    from .sweeps import run_cached
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
    """Small multiples: each case's training loss, broken against fixed, on a log scale,
    titled with the doctor's first finding."""
    from . import plots
    n = len(pairs)
    rows = -(-n // ncols)
    fig = _closed_figure(rows, ncols, (3.4 * ncols, 2.5 * rows))
    axes = fig.axes
    for ax, p in zip(axes, pairs.values()):
        for run, label, style in ((p.fixed, "fixed", "-"), (p.broken, "broken", "-")):
            loss = run.steps["loss"].clip(upper=1e4)
            ax.plot(run.steps["step"], loss.rolling(5, min_periods=1).mean(), style, label=label,
                    color="tab:green" if label == "fixed" else "tab:red", lw=1.2)
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
    from .doctor import UPDATE_RATIO_HIGH, UPDATE_RATIO_LOW
    from .sweeps import run_cached
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
