"""Built-in real commodity price datasets.

Real, public price series shipped with ``pricetune`` for examples, tests,
tutorials and benchmarks:

=============  ======================  ============================  ===========
name           frequencies             span                          unit
=============  ======================  ============================  ===========
``brent``      daily, weekly, monthly  1987-05 to 2026-08            USD/barrel
``wti``        daily, weekly, monthly  1986-01 to 2026-08            USD/barrel
``henry_hub``  daily, monthly          1997-01 to 2026-08            USD/MMBtu
``gold``       monthly                 1960-01 (1833-01) to 2026-06  USD/troy oz
=============  ======================  ============================  ===========

Every loader returns a fresh float64 :class:`pandas.Series` named after the
dataset, with a sorted, duplicate-free index:

* monthly -> :class:`pandas.PeriodIndex` with freq ``"M"``. Monthly values are
  monthly *averages* (the EIA files date them on the 15th);
* weekly -> :class:`pandas.PeriodIndex` with freq ``"W-FRI"`` (weeks ending on
  Friday);
* daily -> :class:`pandas.DatetimeIndex` with freq ``"B"`` (holidays and other
  missing trading days forward-filled, see ``fill_holidays``), or the raw
  trading days without a freq when ``fill_holidays=False``.

``series.attrs`` carries the metadata: ``"source"``, ``"unit"``,
``"licence"``, ``"frequency"`` and ``"description"`` (plus ``"n_filled"`` for
daily series). Please keep :data:`CREDITS` with anything you publish using
these data.

This module only depends on pandas, numpy and the standard library; the
files are read with :mod:`importlib.resources`, so it works from an
installed wheel.

Examples
--------
>>> from pricetune.datasets import list_datasets, load_dataset
>>> y = load_dataset("brent")  # monthly by default
>>> y.index.freqstr, str(y.index[0])
('M', '1987-05')
>>> list(list_datasets().columns)
['name', 'frequency', 'start', 'end', 'n_obs', 'unit', 'source']
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CREDITS",
    "list_datasets",
    "load_brent",
    "load_dataset",
    "load_gold",
    "load_henry_hub",
    "load_wti",
]

CREDITS = """\
pricetune built-in datasets -- sources and licences

* Brent, WTI and Henry Hub spot prices:
  U.S. Energy Information Administration (EIA), 2026.
  U.S. federal government works, public domain; please cite the EIA.
* Gold: World Bank Commodity Markets "Pink Sheet" (1960 onward), reusable
  with attribution under the World Bank open-data terms (CC BY 4.0); values
  before 1960 are annual figures compiled by T. Green, repeated for each
  month.
* All series compiled by the datahub.io core datasets
  (https://datahub.io/core: oil-prices, natural-gas, gold-prices).
"""

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
    path = resources.files(__name__).joinpath("data", filename)
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


# --------------------------------------------------------------------------- #
# public loaders
# --------------------------------------------------------------------------- #
_LOADER_NOTES = """
    Daily series list trading days only. With ``fill_holidays=True`` (the
    default) the series is reindexed onto the business-day calendar from the
    first to the last trading day (a ``DatetimeIndex`` with freq ``"B"``)
    and every missing business day (market holidays, days without a
    reported price) takes the previous trading day's price (forward fill).
    The number of filled days is stored in ``series.attrs["n_filled"]``.
    With ``fill_holidays=False`` the raw trading days are returned on a
    ``DatetimeIndex`` without a freq (``attrs["n_filled"]`` is 0).
"""


def load_brent(frequency: str = "monthly", *, fill_holidays: bool = True) -> pd.Series:
    """Load the Europe Brent crude oil spot price (USD per barrel).

    Parameters
    ----------
    frequency : {"monthly", "weekly", "daily"}, default "monthly"
        Monthly averages (1987-05 onward, ``PeriodIndex`` freq ``"M"``),
        weekly prices for weeks ending on Friday (``PeriodIndex`` freq
        ``"W-FRI"``) or daily trading-day prices (``DatetimeIndex``).
    fill_holidays : bool, default True
        Daily only (ignored otherwise): reindex onto business days and
        forward-fill holidays, see Notes.

    Returns
    -------
    pandas.Series
        Fresh float64 series named ``"brent"`` with metadata in ``attrs``
        (``source``, ``unit``, ``licence``, ``frequency``, ``description``
        and, for daily data, ``n_filled``).

    Raises
    ------
    ValueError
        If ``frequency`` is not available for Brent.

    Notes
    -----%s
    Source: U.S. EIA (public domain), compiled by datahub.io core datasets.

    Examples
    --------
    >>> from pricetune.datasets import load_brent
    >>> y = load_brent()
    >>> str(y.index[0]), y.index.freqstr, y.attrs["unit"]
    ('1987-05', 'M', 'USD/barrel')
    >>> load_brent("daily").index.freqstr
    'B'
    """
    return _load("brent", frequency, fill_holidays)


def load_wti(frequency: str = "monthly", *, fill_holidays: bool = True) -> pd.Series:
    """Load the Cushing, OK WTI crude oil spot price (USD per barrel).

    Parameters
    ----------
    frequency : {"monthly", "weekly", "daily"}, default "monthly"
        Monthly averages (1986-01 onward, ``PeriodIndex`` freq ``"M"``),
        weekly prices for weeks ending on Friday (``PeriodIndex`` freq
        ``"W-FRI"``) or daily trading-day prices (``DatetimeIndex``).
    fill_holidays : bool, default True
        Daily only (ignored otherwise): reindex onto business days and
        forward-fill holidays, see Notes.

    Returns
    -------
    pandas.Series
        Fresh float64 series named ``"wti"`` with metadata in ``attrs``.

    Raises
    ------
    ValueError
        If ``frequency`` is not available for WTI.

    Notes
    -----%s
    The daily series contains a real negative price (-36.98 USD on
    2020-04-20, expiry of the May 2020 contract); it is kept, so log
    transforms of daily WTI are undefined there.

    Source: U.S. EIA (public domain), compiled by datahub.io core datasets.

    Examples
    --------
    >>> from pricetune.datasets import load_wti
    >>> y = load_wti("weekly")
    >>> y.index.freqstr, y.name
    ('W-FRI', 'wti')
    >>> float(load_wti("daily").min()) < 0
    True
    """
    return _load("wti", frequency, fill_holidays)


def load_henry_hub(
    frequency: str = "monthly", *, fill_holidays: bool = True
) -> pd.Series:
    """Load the Henry Hub natural gas spot price (USD per MMBtu).

    Parameters
    ----------
    frequency : {"monthly", "daily"}, default "monthly"
        Monthly averages (1997-01 onward, ``PeriodIndex`` freq ``"M"``) or
        daily trading-day prices (``DatetimeIndex``). There is no weekly
        Henry Hub series.
    fill_holidays : bool, default True
        Daily only (ignored otherwise): reindex onto business days and
        forward-fill holidays, see Notes.

    Returns
    -------
    pandas.Series
        Fresh float64 series named ``"henry_hub"`` with metadata in ``attrs``.

    Raises
    ------
    ValueError
        If ``frequency`` is not available for Henry Hub (e.g. ``"weekly"``).

    Notes
    -----%s
    The raw daily file has one date without a price (2018-01-05); it is
    dropped, and forward-filled like a holiday when ``fill_holidays=True``.

    Source: U.S. EIA (public domain), compiled by datahub.io core datasets.

    Examples
    --------
    >>> from pricetune.datasets import load_henry_hub
    >>> y = load_henry_hub()
    >>> str(y.index[0]), y.attrs["unit"]
    ('1997-01', 'USD/MMBtu')
    """
    return _load("henry_hub", frequency, fill_holidays)


for _loader in (load_brent, load_wti, load_henry_hub):
    if _loader.__doc__:  # docstrings are stripped under python -OO
        _loader.__doc__ = _loader.__doc__ % _LOADER_NOTES
del _loader


def load_gold(start: Any = "1960-01") -> pd.Series:
    """Load the monthly gold price (USD per troy ounce).

    Parameters
    ----------
    start : str, pandas.Period, datetime-like or None, default "1960-01"
        First month to return. The default keeps the World Bank "Pink
        Sheet" monthly data only. ``None`` returns the full history from
        1833-01.

    Returns
    -------
    pandas.Series
        Fresh float64 series named ``"gold"`` on a ``PeriodIndex`` with
        freq ``"M"``, with metadata in ``attrs``.

    Raises
    ------
    ValueError
        If ``start`` is not a valid month or lies after the last observation.

    Warnings
    --------
    Values before 1960 are *annual* figures repeated for every month of the
    year (flat within each year). They are not monthly observations; do not
    fit or evaluate monthly models on them.

    Notes
    -----
    Source: World Bank Commodity Markets "Pink Sheet" (1960 onward; earlier
    values compiled by T. Green), compiled by datahub.io core datasets.

    Examples
    --------
    >>> from pricetune.datasets import load_gold
    >>> y = load_gold()
    >>> str(y.index[0]), y.index.freqstr
    ('1960-01', 'M')
    >>> str(load_gold(start=None).index[0])
    '1833-01'
    """
    series, _ = _load_cached("gold", "monthly", True)
    if start is not None:
        try:
            first = pd.Period(start, freq="M")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"start={start!r} is not a valid month: {exc}") from exc
        if first > series.index[-1]:
            raise ValueError(
                f"start={start!r} is after the last gold observation "
                f"({series.index[-1]})."
            )
        series = series[series.index >= first]
    return _finish(series, "gold", "monthly", None)


_LOADERS = {
    "brent": load_brent,
    "wti": load_wti,
    "henry_hub": load_henry_hub,
}


def load_dataset(name: str, frequency: str | None = None, **kwargs: Any) -> pd.Series:
    """Load a built-in dataset by name.

    Parameters
    ----------
    name : {"brent", "wti", "henry_hub", "gold"}
        Dataset name (case-insensitive; ``"henry-hub"`` and ``"henryhub"``
        are accepted too).
    frequency : {"monthly", "weekly", "daily"} or None, default None
        ``None`` means the loader's default (``"monthly"``).
    **kwargs
        Passed to the loader: ``fill_holidays`` for ``brent``, ``wti`` and
        ``henry_hub``; ``start`` for ``gold``.

    Returns
    -------
    pandas.Series
        See :func:`load_brent`, :func:`load_wti`, :func:`load_henry_hub`
        and :func:`load_gold`.

    Raises
    ------
    ValueError
        For an unknown name (the message suggests the closest match and
        lists the datasets) or a frequency the dataset does not have (the
        message lists its frequencies).

    Examples
    --------
    >>> from pricetune.datasets import load_dataset
    >>> load_dataset("henry_hub", "daily").index.freqstr
    'B'
    >>> load_dataset("gold", start="2000-01").index[0]
    Period('2000-01', 'M')
    """
    key = _resolve_name(name)
    if key == "gold":
        if frequency is not None:
            _resolve_frequency(key, frequency)
        return load_gold(**kwargs)
    if frequency is None:
        return _LOADERS[key](**kwargs)
    return _LOADERS[key](frequency, **kwargs)


def _label(index: pd.Index, position: int) -> str:
    value = index[position]
    if isinstance(value, pd.Period):
        if value.freqstr == "M":
            return value.strftime("%Y-%m")
        return value.end_time.strftime("%Y-%m-%d")  # weekly: the ending Friday
    return value.strftime("%Y-%m-%d")


def list_datasets() -> pd.DataFrame:
    """List the built-in datasets, one row per (name, frequency).

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``frequency``, ``start``, ``end`` (strings:
        ``YYYY-MM`` for monthly data, ``YYYY-MM-DD`` for daily data and for
        weekly data, where it is the Friday ending the week), ``n_obs``,
        ``unit`` and ``source``. Spans and counts are those of the default
        loaders: daily series with holidays filled, gold from 1960-01.

    Examples
    --------
    >>> from pricetune.datasets import list_datasets
    >>> table = list_datasets()
    >>> table[["name", "frequency"]].head(3).to_numpy().tolist()
    [['brent', 'daily'], ['brent', 'weekly'], ['brent', 'monthly']]
    """
    rows = []
    for name, spec in _DATASETS.items():
        for frequency in spec.files:
            series = load_dataset(name, frequency)
            rows.append(
                {
                    "name": name,
                    "frequency": frequency,
                    "start": _label(series.index, 0),
                    "end": _label(series.index, -1),
                    "n_obs": len(series),
                    "unit": spec.unit,
                    "source": spec.source,
                }
            )
    return pd.DataFrame(
        rows, columns=["name", "frequency", "start", "end", "n_obs", "unit", "source"]
    )
