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

and :func:`load_pinksheet`, the World Bank "Pink Sheet" panel: monthly
prices of 71 commodities, 1960-01 to 2011-12 (63 complete series, the
panel on which pricetune's defaults are chosen; see
:mod:`pricetune.datasets.pinksheet`).

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

from typing import Any

import pandas as pd

from pricetune.datasets._files import _DATASETS, _resolve_frequency, _resolve_name
from pricetune.datasets.pinksheet import load_pinksheet, pinksheet_series
from pricetune.datasets.prices import load_brent, load_gold, load_henry_hub, load_wti

__all__ = [
    "CREDITS",
    "list_datasets",
    "load_brent",
    "load_dataset",
    "load_gold",
    "load_henry_hub",
    "load_pinksheet",
    "load_wti",
    "pinksheet_series",
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
* Pink Sheet panel (71 commodities, monthly, 1960-2011): World Bank
  Commodity Markets "Pink Sheet", reusable with attribution under CC BY 4.0.
"""

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
