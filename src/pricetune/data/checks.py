"""Checks of the data a user hands to ``fit``, ``update`` and ``predict``:
each fails with one plain message that names the argument, and none
changes the caller's data."""

from __future__ import annotations

import numpy as np
import pandas as pd


def check_time_index(data, name: str) -> None:
    """Duplicated or unsorted time indices fail with a plain message (a
    panel's (series, time) pairs must be unique and each series' times
    increasing; series may interleave)."""
    index = getattr(data, "index", None)
    if isinstance(index, pd.MultiIndex):
        _check_panel_index(index, name)
        return
    if not isinstance(index, pd.Index):
        return  # other containers are checked by sktime
    duplicated = index.duplicated()
    if duplicated.any():
        raise ValueError(
            f"{name} has {int(duplicated.sum())} duplicated time index entries, "
            f"first {index[duplicated][0]!r}; aggregate or drop them first"
        )
    if not index.is_monotonic_increasing:
        position = int(np.flatnonzero(index[1:] < index[:-1])[0])
        raise ValueError(
            f"{name}'s time index must be sorted in increasing order; "
            f"{index[position]} comes before {index[position + 1]}. "
            f"Sort it first ({name}.sort_index())"
        )


def _check_panel_index(index: pd.MultiIndex, name: str) -> None:
    duplicated = index.duplicated()
    if duplicated.any():
        raise ValueError(
            f"{name} has {int(duplicated.sum())} duplicated (series, time) index "
            f"entries, first {index[duplicated][0]!r}; aggregate or drop them first"
        )
    codes, _ = pd.factorize(index.droplevel(-1))
    order = np.argsort(codes, kind="stable")
    times = index.get_level_values(-1).take(order)
    same = codes[order][1:] == codes[order][:-1]
    try:
        back = same & np.asarray(times[1:] <= times[:-1])
    except TypeError:  # mixed time types: sktime reports them
        return
    if back.any():
        position = int(np.flatnonzero(back)[0])
        raise ValueError(
            f"{name}'s time index must increase within each series; in series "
            f"{index.droplevel(-1)[order[position]]!r}, {times[position]} comes "
            f"before {times[position + 1]}. Sort it first ({name}.sort_index())"
        )


def finite_values(data, name: str) -> np.ndarray:
    """A float64 copy of ``data``'s values, after checking they are finite."""
    try:
        values = np.array(data.to_numpy(), dtype=np.float64, copy=True)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must hold numbers only (encode categorical columns first): {error}"
        ) from error
    bad = ~np.isfinite(values)
    if bad.any():
        rows = bad.any(axis=1) if bad.ndim == 2 else bad
        raise ValueError(
            f"{name} contains {int(bad.sum())} NaN or infinite value(s), "
            f"first at {list(data.index[rows][:5])}; fill or drop them first"
        )
    check_computable(values, name)
    return values


#: the largest magnitude the model accepts: float32 (and bfloat16, which has
#: its exponent range) overflow at 3.4e38; the model subtracts and divides
#: values, and the loss sums them, so a margin of 2**20 keeps every step finite
COMPUTE_LIMIT = float(np.finfo(np.float32).max) / 2**20


def check_computable(values: np.ndarray, name: str) -> None:
    """Finite float64 ``values`` must also be finite in the dtype the model
    computes in (float32, or bfloat16 on a GPU): 1e150 is a float64 number
    but infinite in float32, and would train to NaN."""
    if values.size == 0:
        return
    largest = float(np.max(np.abs(values)))
    if largest > COMPUTE_LIMIT:
        raise ValueError(
            f"{name} holds values as large as {largest:.3g}, beyond what the model "
            f"computes with (float32, up to about {COMPUTE_LIMIT:.1e} here); "
            "rescale it (prices in thousands, say) and scale the forecasts back"
        )


def require_panel(data, name: str) -> None:
    """``data`` must be a panel (a MultiIndex of series and time)."""
    if not isinstance(getattr(data, "index", None), pd.MultiIndex):
        raise ValueError(
            f"this forecaster was fitted on a panel: {name} must be a panel too "
            "(a MultiIndex of series and time, like y in fit)"
        )


def labels(instances: pd.Index, positions, limit: int = 10) -> str:
    """Some series names, for a message."""
    positions = list(positions)
    named = ", ".join(repr(instances[p]) for p in positions[:limit])
    more = len(positions) - limit
    return named + (f" and {more} more" if more > 0 else "")


def check_covers(y, X, name: str = "X") -> None:
    """``X`` (when given) must have a row for every time point of ``y``
    (pandas objects; sktime checks the other mtypes). sktime's own check
    says "series 0 ... series 0" for both; this names them."""
    index, rows = getattr(y, "index", None), getattr(X, "index", None)
    if X is None or not isinstance(index, pd.Index) or not isinstance(rows, pd.Index):
        return
    if _index_kind(index) != _index_kind(rows):
        return  # other kinds of index: sktime's own checks decide
    missing = index.difference(rows)
    if len(missing):
        raise ValueError(
            f"{name} must have a row for every time point of y; {len(missing)} of "
            f"y's {len(index)} time points have none, first "
            f"{[str(label) for label in missing[:3]]}"
        )


def _index_kind(index: pd.Index) -> tuple:
    """What sets two indexes apart for ``check_covers``: levels, and the
    time level's kind (dates, periods, integers, other)."""
    time = index.get_level_values(-1) if isinstance(index, pd.MultiIndex) else index
    if isinstance(time, pd.DatetimeIndex | pd.PeriodIndex):
        kind = type(time).__name__
    elif pd.api.types.is_integer_dtype(time.dtype):
        kind = "integer"
    else:
        kind = str(time.dtype)
    return index.nlevels, kind
