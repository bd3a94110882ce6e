"""Tables formatted for reading: counts as whole numbers, measurements to a few
significant digits, huge or tiny values in scientific notation, and a dash where a
value does not apply.

>>> pretty(sweep.table[["lr", "train_loss", "val_acc", "diverged"]])   # doctest: +SKIP
"""
from __future__ import annotations

import math
import numbers

import pandas as pd

NOT_APPLICABLE = "—"


def number_text(value: object, digits: int = 3) -> str:
    """One cell as text: 3372.0 -> '3372', 0.123456 -> '0.123', 7.2e19 -> '7.2e+19',
    True -> 'yes', NaN -> '—'.

    >>> [number_text(v) for v in (3372.0, 0.123456, 72197777372422864896.0, True, float("nan"))]
    ['3372', '0.123', '7.22e+19', 'yes', '—']
    """
    if value is None:
        return NOT_APPLICABLE
    if isinstance(value, (bool,)) or type(value).__name__ == "bool_":
        return "yes" if value else "no"
    if isinstance(value, numbers.Number):
        v = float(value)
        if math.isnan(v):
            return NOT_APPLICABLE
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        if v.is_integer() and abs(v) < 1e6:
            return f"{int(v)}"
        return f"{v:.{digits}g}"
    return str(value)


def pretty(table: pd.DataFrame, digits: int = 3, index: bool | None = None):
    """A pandas Styler of `table` with every cell through `number_text`, for display in
    a notebook (and in its HTML export).

    The row labels are shown when they say something (`index=None`, the default:
    an index with a name, or labels that are not whole numbers), so a table of
    learning rates or features keeps its row names while row numbers, filtered or
    not, stay hidden; `index` True or False forces it.

    >>> "lr" in pretty(pd.DataFrame({"acc": [0.9, 0.8]}, index=pd.Index([0.01, 0.1], name="lr"))).to_html()
    True
    """
    if index is None:
        index = any(name is not None for name in table.index.names) or not pd.api.types.is_integer_dtype(table.index)
    styler = table.style.format(lambda v: number_text(v, digits))
    return styler if index else styler.hide(axis="index")
