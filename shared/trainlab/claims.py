"""The checked claims that close every notebook.

Each claim compares a measured number with a threshold; `report()` shows them all
as a table (with the margin by which each held) and then fails, listing every claim
that did not hold. With TRAINLAB_CLAIMS_DIR set, the table is also written there as
JSON, so the margins of many seeds can be collected.

>>> claims = Claims("04_weight_initialization", profile="smoke", seed=0)
>>> claims.check("He beats N(0,1) at depth 20", 0.91, ">", 0.11)
True
>>> claims.report()                                      # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
import operator
import os
from pathlib import Path

import pandas as pd

OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def _json_safe(rows: list[dict]) -> list[dict]:
    """The rows with NaN and inf as None: JSON has neither, and a bare NaN in the file
    breaks strict readers (the seeds summary reads null back as NaN)."""
    return [{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in r.items()}
            for r in rows]


class Claims:
    def __init__(self, notebook: str, profile: str = "", seed: int | None = None):
        self.notebook, self.profile, self.seed = notebook, profile, seed
        self.rows: list[dict] = []

    def check(self, claim: str, measured: float, op: str, threshold: float) -> bool:
        """Record `measured op threshold`; NaN never holds. Returns whether it held."""
        if op not in OPS:
            raise ValueError(f"op: {op!r} is not allowed; expected one of {', '.join(OPS)}")
        measured, threshold = float(measured), float(threshold)
        held = math.isfinite(measured) and OPS[op](measured, threshold)
        margin = measured - threshold if op.startswith(">") else threshold - measured
        self.rows.append({"claim": claim, "measured": measured, "op": op, "threshold": threshold,
                          "margin": margin, "held": held})
        return held

    def that(self, claim: str, condition: bool) -> bool:
        """Record a yes/no claim."""
        return self.check(claim, float(bool(condition)), ">=", 1.0)

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["claim", "measured", "op", "threshold", "margin", "held"])

    def report(self):
        """Save (if asked; as strict JSON, NaN and inf written as null), raise
        AssertionError naming every claim that failed, and otherwise return the table,
        formatted for reading."""
        out = os.environ.get("TRAINLAB_CLAIMS_DIR")
        if out:
            path = Path(out) / f"{self.notebook}-{self.profile}-seed{self.seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"notebook": self.notebook, "profile": self.profile,
                                        "seed": self.seed, "claims": _json_safe(self.rows)},
                                       indent=1, allow_nan=False))
        failed = [r for r in self.rows if not r["held"]]
        if failed:
            lines = [f"  {r['claim']}: measured {r['measured']:.4g}, needed {r['op']} {r['threshold']:.4g}"
                     for r in failed]
            raise AssertionError(f"{len(failed)} of {len(self.rows)} claims failed:\n" + "\n".join(lines))
        return self.table.style.format("{:.4g}", subset=["measured", "threshold", "margin"]).hide(axis="index")
