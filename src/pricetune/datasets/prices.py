"""Loaders of the single price series: Brent, WTI and Henry Hub (U.S.
EIA) and gold (World Bank)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pricetune.datasets._files import _finish, _load, _load_cached

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
