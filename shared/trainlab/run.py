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
    if df is None:
        return None
    return {"columns": list(df.columns), "data": _clean(df.astype(object).values.tolist())}


def _frame_from_json(d: dict | None) -> pd.DataFrame | None:
    if d is None:
        return None
    return pd.DataFrame(d["data"], columns=d["columns"]).astype(float, errors="ignore").fillna(float("nan"))


@dataclass
class Run:
    """What `fit` returns.

    `steps`: one row per optimizer step (step, epoch, loss, lr, grad_norm: the global
    gradient norm before clipping). `epochs`: one row per epoch (train/val loss and
    accuracy, lr, seconds). `final`: train_loss, val_loss, val_acc, test_loss,
    test_acc. `diverged`: a loss became NaN or inf and the run stopped there.
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

    def summary(self) -> dict[str, Any]:
        """The CLI's JSON object: spec, final metrics and how the run ended."""
        return _clean({
            "spec": self.spec.to_dict(),
            "final": {k: self.final.get(k) for k in ("train_loss", "val_loss", "val_acc", "test_acc")},
            "diverged": self.diverged,
            "epochs_completed": self.epochs_completed,
            "seconds": round(self.seconds, 3),
            "device": self.device,
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
        """Write the run as JSON (atomically: a crash never leaves half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_text(json.dumps(self.to_dict()))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Run":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def __repr__(self) -> str:
        f = self.final
        state = "diverged" if self.diverged else f"test_acc={f.get('test_acc', math.nan):.4f}"
        return (f"Run({state}, epochs={self.epochs_completed}, {self.seconds:.1f}s on {self.device}, "
                f"changes={self.spec.diff()})")
