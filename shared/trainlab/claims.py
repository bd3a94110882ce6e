"""The checked claims that close every notebook, and the standard they meet.

Each claim compares a measured number with a threshold; `report()` shows them all
as a table (with what each had to spare) and then fails, listing every claim that
did not hold. With TRAINLAB_CLAIMS_DIR set, the table is also written there as
JSON, so the margins of many seeds and both datasets can be collected
(`python -m trainlab claims`).

The standard every claim meets (notebooks/CONTRIBUTING.md says more):
1. It measures what its sentence says; its name and its number agree.
2. It can fail: it has a null case (the setting where the lesson predicts no
   effect: lr ~ 0, identical runs, the control arm) on which the same measure does
   not pass, checked in the unit tests or in the notebook itself.
3. It holds on MNIST and Fashion-MNIST, in `smoke` and `quick`, on 5+ seeds each,
   with thresholds derived from those runs; a gap in accuracy is judged against
   the validation standard error (`measures.gap_in_se`).
4. Every attribution is checked against the paper's own statement.
5. A lesson the numbers do not support is shown and said plainly, not claimed.

>>> claims = Claims("04_weight_initialization", profile="smoke", seed=0, dataset="mnist")
>>> claims.check("3. Depth 20: He beats N(0,1) (val acc gap, in standard errors)", 9.1, ">", 3)
True
>>> claims.report()                                      # doctest: +SKIP

An exercise's answer that states a number the notebook can measure is checked the
same way, with `answer`: it fails `report()` like a claim, but is kept apart from the
lesson's claims (not counted in "claims held"), since it checks the answer's text,
not the lesson.
"""
from __future__ import annotations

import json
import math
import operator
import os
from pathlib import Path

import pandas as pd

from .storage import atomic_write

OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def _json_safe(rows: list[dict]) -> list[dict]:
    """The rows with NaN and inf as None: JSON has neither, and a bare NaN in the file
    breaks strict readers (the seeds summary reads null back as NaN)."""
    return [{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in r.items()}
            for r in rows]


class Claims:
    def __init__(self, notebook: str, profile: str = "", seed: int | None = None, dataset: str = ""):
        self.notebook, self.profile, self.seed, self.dataset = notebook, profile, seed, dataset
        self.rows: list[dict] = []
        self.answers: list[dict] = []

    def check(self, claim: str, measured: float, op: str, threshold: float, *, log: bool = False) -> bool:
        """Record `measured op threshold`; NaN never holds. Returns whether it held.

        The margin is shown so a reader can judge it: relative to the threshold
        (+35% means 35% of the threshold to spare), or, with `log=True` for
        quantities that span orders of magnitude (an activation std of 7.9e-16
        against 1e-6), in orders of magnitude.
        """
        held, row = _row(claim, measured, op, threshold, log)
        self.rows.append(row)
        return held

    def answer(self, exercise: int, what: str, measured: float, op: str, threshold: float, *,
               log: bool = False) -> bool:
        """Check a number that exercise `exercise`'s written answer states, measured by
        the notebook: `report()` fails on it as on a claim and the saved record lists it
        under "answers", so `python -m trainlab claims` follows it over seeds too. It is
        not one of the lesson's claims and is not counted as one.

        >>> Claims("07_learning_rate").answer(1, "at lr 2.0, |w| after 6 steps", 1.0, "<=", 1.0)
        True
        """
        if not (isinstance(exercise, int) and exercise >= 1):
            raise ValueError(f"exercise: {exercise!r} is not allowed; expected the exercise's number, 1 or more")
        held, row = _row(f"Exercise {exercise}: {what}", measured, op, threshold, log)
        self.answers.append(row)
        return held

    def answer_that(self, exercise: int, what: str, condition: bool) -> bool:
        """Check a yes/no statement of exercise `exercise`'s answer (see `answer`)."""
        held = self.answer(exercise, what, float(bool(condition)), ">=", 1.0)
        _as_yes_no(self.answers[-1])
        return held

    def that(self, claim: str, condition: bool) -> bool:
        """Record a yes/no claim."""
        held = self.check(claim, float(bool(condition)), ">=", 1.0)
        _as_yes_no(self.rows[-1])
        return held

    @property
    def table(self) -> pd.DataFrame:
        """One row per claim: what was measured, the bound, and the margin as a reader
        judges it (`to spare`)."""
        return _frame(self.rows)

    def answer_table(self, exercise: int | None = None) -> pd.DataFrame:
        """The checked answers (of one exercise, if given), in the columns of `table`, the
        first named `answer`."""
        prefix = f"Exercise {exercise}: " if exercise is not None else "Exercise "
        return _frame([r for r in self.answers if r["claim"].startswith(prefix)]).rename(columns={"claim": "answer"})

    def report(self):
        """Save (if asked; as strict JSON, NaN and inf written as null), raise
        AssertionError naming every claim that failed, and otherwise return the table,
        formatted for reading."""
        out = os.environ.get("TRAINLAB_CLAIMS_DIR")
        if out:
            path = Path(out) / record_name(self.notebook, self.profile, self.dataset, self.seed)
            text = json.dumps({"notebook": self.notebook, "profile": self.profile,
                               "dataset": self.dataset, "seed": self.seed,
                               "claims": _json_safe(self.rows), "answers": _json_safe(self.answers)},
                              indent=1, allow_nan=False)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Atomically: a kernel killed mid-write must not leave a torn record for the summary.
            atomic_write(path, lambda f: f.write(text.encode("utf-8")))
        failed = [r for r in self.rows if not r["held"]]
        wrong = [r for r in self.answers if not r["held"]]
        if failed or wrong:
            lines = [f"  {r['claim']}: measured {r['measured']:.4g}, needed {r['op']} {r['threshold']:.4g}"
                     for r in failed + wrong]
            counts = [f"{len(failed)} of {len(self.rows)} claims"] if failed else []
            counts += [f"{len(wrong)} of {len(self.answers)} exercise answers"] if wrong else []
            raise AssertionError(" and ".join(counts) + " failed:\n" + "\n".join(lines))
        from .tables import pretty
        return pretty(self.table, digits=4).set_properties(subset=["claim"], **{"text-align": "left"})


def _as_yes_no(row: dict) -> None:
    """A recorded row read as yes/no: no margin to spare, only whether it held."""
    row.update(spare=math.nan, spare_unit="yes/no")


def _frame(rows: list[dict]) -> pd.DataFrame:
    t = pd.DataFrame(rows, columns=["claim", "measured", "op", "threshold", "margin", "held", "spare", "spare_unit"])
    t["to spare"] = [margin_text(r) for r in rows]
    return t[["claim", "measured", "op", "threshold", "to spare", "held"]]


def _row(claim: str, measured: float, op: str, threshold: float, log: bool) -> tuple[bool, dict]:
    """Whether `measured op threshold` holds (NaN never does), and the row that records it."""
    if op not in OPS:
        raise ValueError(f"op: {op!r} is not allowed; expected one of {', '.join(OPS)}")
    measured, threshold = float(measured), float(threshold)
    held = math.isfinite(measured) and OPS[op](measured, threshold)
    sign = 1.0 if op.startswith(">") else -1.0
    return held, {"claim": claim, "measured": measured, "op": op, "threshold": threshold,
                  "margin": sign * (measured - threshold), "held": held,
                  "spare": _spare(measured, threshold, sign, log),
                  "spare_unit": "orders of magnitude" if log else "of the threshold"}


def record_name(notebook: str, profile: str, dataset: str, seed: int | None) -> str:
    """The file name `Claims.report` saves one run's claims under, in TRAINLAB_CLAIMS_DIR.

    >>> record_name("04_weight_initialization", "smoke", "mnist", 0)
    '04_weight_initialization-smoke-mnist-seed0.json'
    """
    tag = f"-{dataset}" if dataset else ""
    return f"{notebook}-{profile}{tag}-seed{seed}.json"


def read_record(path: Path, *, quiet: bool = False) -> dict | None:
    """One saved claims record (what `Claims.report` writes), or None when it cannot be
    read or is not a claims record: with a warning naming the file, unless `quiet`.

    >>> read_record(Path("reports/claims/04_weight_initialization-smoke-mnist-seed0.json"))  # doctest: +SKIP
    """
    import warnings
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        if not (isinstance(d, dict) and isinstance(d.get("claims"), list) and "notebook" in d and "seed" in d
                and all(isinstance(r, dict) for r in d["claims"])):
            raise ValueError("not a claims record (an object with notebook, seed and a list of claims)")
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        if not quiet:
            warnings.warn(f"claims record {path} cannot be read ({type(e).__name__}: {e}); skipped", stacklevel=3)
        return None
    return d


def _spare(measured: float, threshold: float, sign: float, log: bool) -> float:
    """The margin as a reader judges it: a fraction of the threshold, or, for log-scale
    quantities, orders of magnitude; positive when the claim holds."""
    if not math.isfinite(measured):
        return math.nan
    if log:
        if measured <= 0 or threshold <= 0:
            return math.nan
        return sign * math.log10(measured / threshold)
    return sign * (measured - threshold) / abs(threshold) if threshold else math.nan


def margin_text(row: dict) -> str:
    """'+35% of the threshold', '+9.1 orders of magnitude', 'yes', or the plain margin."""
    if row.get("spare_unit") == "yes/no":
        return "yes" if row["held"] else "no"
    spare = row.get("spare", math.nan)
    if spare is None or not math.isfinite(spare):
        return f"{row['margin'] + 0.0:+.3g}" if math.isfinite(row["margin"]) else "n/a"  # + 0.0: no "-0"
    spare += 0.0  # no "-0"
    if row["spare_unit"] == "orders of magnitude":
        return f"{spare:+.1f} orders of magnitude"
    return f"{spare:+.0%} of the threshold"
