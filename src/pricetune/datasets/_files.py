"""The packaged price files: which file holds which dataset at which
frequency, checking a requested name and frequency, and reading a file
once per process (callers copy what they get)."""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

_EIA_SOURCE = (
    "U.S. Energy Information Administration (EIA), via datahub.io core datasets"
)
_EIA_LICENCE = "Public domain (U.S. government work); cite the EIA as the source"
_GOLD_SOURCE = (
    'World Bank Commodity Markets "Pink Sheet" (from 1960; earlier annual figures '
    "by T. Green), via datahub.io core datasets"
)
_GOLD_LICENCE = "World Bank open-data terms (CC BY 4.0): free reuse with attribution"

_FREQUENCIES = ("daily", "weekly", "monthly")
_INDEX_NAME = "date"


@dataclass(frozen=True)
class _FileSpec:
    filename: str
    date_column: str
    date_format: str


@dataclass(frozen=True)
class _DatasetSpec:
    name: str
    description: str
    unit: str
    source: str
    licence: str
    files: dict[str, _FileSpec]


_DATASETS: dict[str, _DatasetSpec] = {
    "brent": _DatasetSpec(
        name="brent",
        description="Europe Brent crude oil spot price FOB",
        unit="USD/barrel",
        source=_EIA_SOURCE,
        licence=_EIA_LICENCE,
        files={
            "daily": _FileSpec("eia-brent-daily.csv", "Date", "%Y-%m-%d"),
            "weekly": _FileSpec("eia-brent-weekly.csv", "Date", "%Y-%m-%d"),
            "monthly": _FileSpec("eia-brent-monthly.csv", "Date", "%Y-%m-%d"),
        },
    ),
    "wti": _DatasetSpec(
        name="wti",
        description=(
            "Cushing, OK West Texas Intermediate (WTI) crude oil spot price FOB"
        ),
        unit="USD/barrel",
        source=_EIA_SOURCE,
        licence=_EIA_LICENCE,
        files={
            "daily": _FileSpec("eia-wti-daily.csv", "Date", "%Y-%m-%d"),
            "weekly": _FileSpec("eia-wti-weekly.csv", "Date", "%Y-%m-%d"),
            "monthly": _FileSpec("eia-wti-monthly.csv", "Date", "%Y-%m-%d"),
        },
    ),
    "henry_hub": _DatasetSpec(
        name="henry_hub",
        description="Henry Hub natural gas spot price",
        unit="USD/MMBtu",
        source=_EIA_SOURCE,
        licence=_EIA_LICENCE,
        files={
            "daily": _FileSpec("eia-henryhub-daily.csv", "Date", "%Y-%m-%d"),
            "monthly": _FileSpec("eia-henryhub-monthly.csv", "Month", "%Y-%m"),
        },
    ),
    "gold": _DatasetSpec(
        name="gold",
        description="Gold price (pre-1960: annual figures repeated for each month)",
        unit="USD/troy oz",
        source=_GOLD_SOURCE,
        licence=_GOLD_LICENCE,
        files={
            "monthly": _FileSpec("worldbank-gold-monthly.csv", "Date", "%Y-%m"),
        },
    ),
}

# Accepted spellings that are not obtained by lower-casing and mapping
# "-" / " " to "_".
_NAME_ALIASES = {"henryhub": "henry_hub"}


# --------------------------------------------------------------------------- #
# validation helpers
# --------------------------------------------------------------------------- #
def _quoted(items: Any) -> str:
    return ", ".join(repr(item) for item in items)


def _resolve_name(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = _NAME_ALIASES.get(key, key)
    if key in _DATASETS:
        return key
    available = sorted(_DATASETS)
    close = difflib.get_close_matches(key, available + list(_NAME_ALIASES), n=1)
    hint = f" Did you mean {_NAME_ALIASES.get(close[0], close[0])!r}?" if close else ""
    raise ValueError(
        f"Unknown dataset {name!r}.{hint} Available datasets: {_quoted(available)}."
    )


def _resolve_frequency(name: str, frequency: Any) -> str:
    available = list(_DATASETS[name].files)
    if not isinstance(frequency, str):
        raise TypeError(
            f"frequency must be a str (one of {_quoted(available)}), "
            f"got {type(frequency).__name__}"
        )
    key = frequency.strip().lower()
    if key in available:
        return key
    if key in _FREQUENCIES:
        raise ValueError(
            f"Dataset {name!r} is not available at {key!r} frequency. "
            f"Available frequencies for {name!r}: {_quoted(available)}."
        )
    close = [f for f in available if key and f.startswith(key)]
    close = close or difflib.get_close_matches(key, available, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"Unknown frequency {frequency!r} for dataset {name!r}.{hint} "
        f"Available frequencies for {name!r}: {_quoted(available)}."
    )


# --------------------------------------------------------------------------- #
# reading and caching
# --------------------------------------------------------------------------- #
@functools.cache
def _read_file(filename: str, date_column: str, date_format: str) -> pd.Series:
    """Parse one packaged CSV into a float64 Series on a DatetimeIndex.

    Cached: callers must never mutate the result (the public loaders copy).
    """
    path = resources.files("pricetune.datasets").joinpath("data", filename)
    with path.open("rb") as fh:
        frame = pd.read_csv(fh, dtype={date_column: str, "Price": "float64"})
    # Rows with an empty Price are dropped: the EIA files occasionally have a
    # date without a reported price (Henry Hub daily, 2018-01-05). For daily
    # series with fill_holidays=True such a day is forward-filled like a
    # holiday.
    frame = frame.dropna(subset=["Price"])
    index = pd.DatetimeIndex(
        pd.to_datetime(frame[date_column], format=date_format), name=_INDEX_NAME
    )
    series = pd.Series(frame["Price"].to_numpy(dtype=np.float64), index=index)
    return series.sort_index()


@functools.cache
def _load_cached(
    name: str, frequency: str, fill_holidays: bool
) -> tuple[pd.Series, int]:
    """Build the (cached, never to be mutated) series and its filled-day count."""
    spec = _DATASETS[name].files[frequency]
    raw = _read_file(spec.filename, spec.date_column, spec.date_format)
    n_filled = 0
    if frequency == "monthly":
        # EIA monthly files are dated the 15th; the value is the month's average.
        series = raw.set_axis(raw.index.to_period("M"))
    elif frequency == "weekly":
        # Weekly EIA files are dated on the Friday that ends the week.
        series = raw.set_axis(raw.index.to_period("W-FRI"))
    elif fill_holidays:
        business_days = pd.bdate_range(raw.index[0], raw.index[-1], name=_INDEX_NAME)
        off_calendar = raw.index.difference(business_days)
        if len(off_calendar):  # pragma: no cover - guards the packaged data
            raise RuntimeError(
                f"{spec.filename}: {len(off_calendar)} dates are not business days"
            )
        series = raw.reindex(business_days)
        n_filled = int(series.isna().sum())
        series = series.ffill()
    else:
        series = raw.copy()

    series = series.rename(name).rename_axis(_INDEX_NAME)
    # Guards on the packaged files (cheap, run once per cache entry).
    if not series.index.is_unique:  # pragma: no cover
        raise RuntimeError(f"{spec.filename}: duplicate dates in packaged data")
    if series.isna().any():  # pragma: no cover
        raise RuntimeError(f"{spec.filename}: missing values after loading")
    return series, n_filled


def _finish(
    series: pd.Series, name: str, frequency: str, n_filled: int | None
) -> pd.Series:
    """Return a fresh copy of a cached series with fresh metadata attached."""
    out = series.copy(deep=True)
    spec = _DATASETS[name]
    attrs: dict[str, Any] = {
        "source": spec.source,
        "unit": spec.unit,
        "licence": spec.licence,
        "frequency": frequency,
        "description": spec.description,
    }
    if n_filled is not None:
        attrs["n_filled"] = n_filled
    out.attrs = attrs
    return out


def _load(name: str, frequency: Any, fill_holidays: bool) -> pd.Series:
    frequency = _resolve_frequency(name, frequency)
    series, n_filled = _load_cached(name, frequency, bool(fill_holidays))
    return _finish(series, name, frequency, n_filled if frequency == "daily" else None)
