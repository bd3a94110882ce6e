"""A finished run as a value: spec, histories, final metrics, and how it ended.

>>> run = fit(Spec(subset=2000, epochs=1))          # doctest: +SKIP
>>> run.epochs[["epoch", "train_loss", "val_acc"]]   # doctest: +SKIP
>>> Run.load(run.save("run.json")).final == run.final  # doctest: +SKIP
True
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .spec import Spec
from .storage import atomic_write

__all__ = ["CorruptRunFile", "Run"]

# The keys `Run.from_dict` cannot do without; `probes` and `extra` are optional.
REQUIRED_KEYS = ("spec", "steps", "epochs", "final", "diverged", "epochs_completed", "seconds", "device")


class CorruptRunFile(ValueError):
    """A saved run that cannot be read back: torn, truncated or not a run at all.

    `path` is the file. A cache can catch this, move the file aside and retrain.

    >>> Run.load("runs/torn.json")                          # doctest: +SKIP
    CorruptRunFile: runs/torn.json: not valid JSON (Unterminated string ... at line 1 column 4097) ...
    """

    def __init__(self, path: str | Path, problem: str):
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path}: {problem}; a saved run must be the JSON that Run.save writes "
                         f"(delete the file or move it aside to train the run again)")


def _clean(value: Any) -> Any:
    """JSON has no NaN or inf: a diverged run's losses become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _frame_to_json(df: pd.DataFrame | None) -> dict | None:
    # JSON alone would turn int and bool columns into floats on the way back, so the
    # dtypes travel with the data.
    if df is None:
        return None
    return {"columns": list(df.columns), "dtypes": [str(t) for t in df.dtypes],
            "data": _clean(df.astype(object).values.tolist())}


def _restore_column(values: pd.Series, dtype: str) -> pd.Series:
    """A column read as objects, back in its saved dtype; null is NaN, as it was in the
    fresh frame (NaN and inf were both saved as null)."""
    if dtype == "object":
        return values.where(values.notna(), math.nan)
    return values.astype(dtype)


def _frame_from_json(d: dict | None) -> pd.DataFrame | None:
    if d is None:
        return None
    if "dtypes" not in d:  # saved before dtypes were: numbers come back as floats
        return pd.DataFrame(d["data"], columns=d["columns"]).astype(float, errors="ignore").fillna(float("nan"))
    if len(d["dtypes"]) != len(d["columns"]):
        raise ValueError(f"a frame lists {len(d['columns'])} columns but {len(d['dtypes'])} dtypes")
    df = pd.DataFrame(d["data"], columns=d["columns"], dtype=object)
    for i, dtype in enumerate(d["dtypes"]):  # by position: column names need not be unique
        df.isetitem(i, _restore_column(df.iloc[:, i], dtype))
    return df


@dataclass
class Run:
    """What `fit` returns.

    `steps`: one row per optimizer step (step, epoch, loss, lr, grad_norm: the global
    gradient norm before clipping). `epochs`: one row per epoch (train/val loss and
    accuracy, lr, seconds). `final`: train_loss, val_loss, val_acc, test_loss,
    test_acc. `diverged`: a loss became NaN or inf, or passed 1000 times its start
    (`train.DIVERGENCE_FACTOR`), and the run stopped there.
    `probes`: per-layer statistics when the spec's `probe_every` > 0.
    """

    spec: Spec
    steps: pd.DataFrame
    epochs: pd.DataFrame
    final: dict[str, float]
    diverged: bool
    epochs_completed: int
    seconds: float
    device: str
    probes: pd.DataFrame | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The trained model, for a notebook to probe or fine-tune; not saved with the run.
    model: Any = field(default=None, repr=False, compare=False)

    @property
    def headline(self) -> tuple[str, ...]:
        """The final metrics that describe the run: accuracy for classification, the
        error in the target's units (RMSE) for regression, where accuracy means nothing."""
        if self.spec.task == "regression":
            return ("train_loss", "val_loss", "val_rmse", "test_rmse")
        return ("train_loss", "val_loss", "val_acc", "test_acc")

    def summary(self) -> dict[str, Any]:
        """The CLI's JSON object: spec, final metrics and how the run ended."""
        return _clean({
            "spec": self.spec.to_dict(),
            "final": {k: self.final.get(k) for k in self.headline},
            "diverged": self.diverged,
            "epochs_completed": self.epochs_completed,
            "seconds": round(self.seconds, 3),
            "device": self.device,
            "threads": self.extra.get("threads"),
        })

    def to_dict(self) -> dict[str, Any]:
        d = self.summary()
        d["final"] = _clean(dict(self.final))
        d.update(steps=_frame_to_json(self.steps), epochs=_frame_to_json(self.epochs),
                 probes=_frame_to_json(self.probes), extra=_clean(self.extra))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Run":
        return cls(
            spec=Spec.from_dict(d["spec"]),
            steps=_frame_from_json(d["steps"]), epochs=_frame_from_json(d["epochs"]),
            final={k: (math.nan if v is None else v) for k, v in d["final"].items()},
            diverged=d["diverged"], epochs_completed=d["epochs_completed"],
            seconds=d["seconds"], device=d["device"],
            probes=_frame_from_json(d.get("probes")), extra=d.get("extra") or {},
        )

    def save(self, path: str | Path) -> Path:
        """Write the run as JSON, atomically: readers see the old file or the new one,
        never half of one, even while other processes save the same run.

        >>> Run.load(run.save("runs/a.json")).final == run.final   # doctest: +SKIP
        True
        """
        path = Path(path)
        text = json.dumps(self.to_dict(), allow_nan=False)  # fails here, before any file is touched
        path.parent.mkdir(parents=True, exist_ok=True)
        # A temp name of its own: a shared name let two savers write into one file
        # and rename it from under each other.
        return atomic_write(path, lambda f: f.write(text.encode("utf-8")))

    @classmethod
    def load(cls, path: str | Path) -> "Run":
        """Read a run that `save` wrote. A file that is not one (torn, truncated, hand
        edited) raises `CorruptRunFile` naming it; a missing file, FileNotFoundError.

        >>> run = Run.load("runs/a.json")                 # doctest: +SKIP
        """
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as e:
            raise CorruptRunFile(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from e
        except json.JSONDecodeError as e:
            raise CorruptRunFile(path, f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno}, "
                                       f"of {len(e.doc)} characters: torn or truncated?)") from e
        except RecursionError:  # json's decoder recurses per level; no run nests more than a few
            raise CorruptRunFile(path, "JSON nested too deeply to be a run (RecursionError)") from None
        if not isinstance(d, dict):
            raise CorruptRunFile(path, f"holds a JSON {type(d).__name__}, not an object with the keys "
                                       f"{', '.join(REQUIRED_KEYS)}")
        missing = [k for k in REQUIRED_KEYS if k not in d]
        if missing:
            raise CorruptRunFile(path, f"missing the key(s) {', '.join(missing)}; a run needs "
                                       f"{', '.join(REQUIRED_KEYS)}")
        try:
            return cls.from_dict(d)
        except (KeyError, TypeError, ValueError, AttributeError) as e:  # SpecError is a ValueError
            raise CorruptRunFile(path, f"its contents do not make a run ({type(e).__name__}: {e})") from e

    def __repr__(self) -> str:
        f = self.final
        state = "diverged" if self.diverged else f"test_acc={f.get('test_acc', math.nan):.4f}"
        return (f"Run({state}, epochs={self.epochs_completed}, {self.seconds:.1f}s on {self.device}, "
                f"changes={self.spec.diff()})")
