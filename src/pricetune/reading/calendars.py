"""Which calendar a file's dates are on, and each date's label on it.

Monthly, quarterly and yearly data become periods (a monthly file may be
dated on any day of the month: the EIA dates its monthly averages on the
15th, others on the first or last day); weekly data become weeks ending on
the file's weekday; daily data are business days (``B``) when no date falls
on a weekend, calendar days (``D``) otherwise. On business days a weekday
absent from the whole file is a holiday, not a missing value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pricetune.reading.errors import DataFileError

#: names users write -> the canonical frequency
FREQUENCY_NAMES = {
    "monthly": "M",
    "month": "M",
    "m": "M",
    "me": "M",
    "ms": "M",
    "quarterly": "Q",
    "quarter": "Q",
    "q": "Q",
    "qe": "Q",
    "qs": "Q",
    "yearly": "Y",
    "annual": "Y",
    "year": "Y",
    "y": "Y",
    "ye": "Y",
    "a": "Y",
    "weekly": "W",
    "week": "W",
    "w": "W",
    "daily": "daily",
    "day": "daily",
    "business": "B",
    "b": "B",
    "d": "D",
    "calendar": "D",
}
_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
PERIODIC = ("M", "Q", "Y")


def canonical_frequency(freq: str | None) -> str | None:
    """``None`` (infer), or one of M, Q, Y, W, W-<DAY>, B, D, daily."""
    if freq is None:
        return None
    text = str(freq).strip()
    key = text.lower()
    if key in FREQUENCY_NAMES:
        return FREQUENCY_NAMES[key]
    if key.startswith("w-") and key[2:].upper() in _WEEKDAYS:
        return "W-" + key[2:].upper()
    raise ValueError(
        f"unknown frequency {text!r}: use monthly, quarterly, yearly, weekly, "
        "daily, business (B) or calendar days (D)"
    )


def _months(dates: pd.DatetimeIndex) -> np.ndarray:
    return dates.year.to_numpy() * 12 + dates.month.to_numpy() - 1


def infer_frequency(dates: pd.DatetimeIndex, path: Path) -> str:
    """The frequency of a file's distinct, sorted dates."""
    dates = dates.unique().sort_values()
    if len(dates) < 2:
        raise DataFileError(
            f"{path}: one date only; the frequency cannot be inferred (pass --freq)"
        )
    seconds = dates.values.astype("datetime64[s]").astype(np.int64)
    days = np.diff(seconds) / 86_400
    median = float(np.median(days))
    if median >= 20:
        months = _months(dates)
        same = np.flatnonzero(np.diff(months) == 0)
        if len(same):
            first, second = dates[same[0]], dates[same[0] + 1]
            raise DataFileError(
                f"{path}: {first.date()} and {second.date()} fall in the same "
                "month of an otherwise monthly (or slower) file: mixed "
                "frequencies; pass --freq"
            )
        step = int(np.median(np.diff(months)))
        return {1: "M", 3: "Q", 12: "Y"}.get(step) or _unknown(path, median)
    if 6 <= median <= 8:
        weekdays = set(dates.dayofweek)
        if len(weekdays) != 1:
            raise DataFileError(
                f"{path}: weekly dates on different weekdays ("
                + ", ".join(_WEEKDAYS[d] for d in sorted(weekdays))
                + "): mixed frequencies; pass --freq"
            )
        return "W-" + _WEEKDAYS[next(iter(weekdays))]
    if median <= 1.5:
        long_gaps = float(np.mean(days > 10))
        if long_gaps > 0.1:
            raise DataFileError(
                f"{path}: daily dates with {long_gaps:.0%} of the gaps longer "
                "than 10 days: mixed frequencies; pass --freq"
            )
        return "B" if (dates.dayofweek < 5).all() else "D"
    return _unknown(path, median)


def _unknown(path: Path, median: float) -> str:
    raise DataFileError(
        f"{path}: dates about {median:.0f} days apart are on no known calendar "
        "(monthly, quarterly, yearly, weekly, daily); pass --freq"
    )


def resolve_frequency(freq: str | None, dates: pd.DatetimeIndex, path: Path) -> str:
    """The file's frequency: inferred, or the user's with ``daily`` made
    business days (no weekend dates) or calendar days, and ``weekly`` made
    weeks ending on the file's last weekday."""
    freq = canonical_frequency(freq)
    if freq is None:
        return infer_frequency(dates, path)
    if freq == "daily":
        return "B" if (dates.dayofweek < 5).all() else "D"
    if freq == "W":
        return "W-" + _WEEKDAYS[dates.max().dayofweek]
    return freq


def labels(dates: pd.DatetimeIndex, freq: str, path: Path) -> pd.Index:
    """Each date's label on the calendar: a period for M, Q, Y and weeks,
    the (normalised) day for B and D."""
    if freq in PERIODIC or freq.startswith("W-"):
        return pd.PeriodIndex(dates.to_period(freq), name="date")
    if freq == "B":
        weekend = np.flatnonzero(dates.dayofweek >= 5)
        if len(weekend):
            day = dates[weekend[0]]
            raise DataFileError(
                f"{path}: {day.date()} is a {day.day_name()}, not a business day; "
                "pass --freq D for calendar days"
            )
    return pd.DatetimeIndex(dates.normalize(), name="date")


def label_text(label) -> str:
    """A label as text: a period as itself (``2020-01``), a timestamp as
    its day when it is midnight (``2024-01-05``), else in full."""
    if isinstance(label, pd.Timestamp) and label == label.normalize():
        return str(label.date())
    return str(label)


def calendar(first, last, freq: str) -> pd.Index:
    """Every label from ``first`` to ``last`` on the calendar."""
    if isinstance(first, pd.Period):
        return pd.period_range(first, last, freq=first.freq, name="date")
    return pd.date_range(first, last, freq=freq, name="date")
