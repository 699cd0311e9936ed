"""Reading price files: one reader for every command and for Python.

:func:`read_prices` turns a CSV or Parquet file, wide or long, into a wide
DataFrame on a regular calendar (one column per series; monthly, quarterly
and yearly data on periods, daily and weekly data on dates), after
checking it: empty files, text in a price column, duplicated or unsorted
dates and mixed frequencies are :class:`DataFileError` with one line
naming the problem. What the reader did (holidays carried forward, missing
values filled or dropped) is in ``frame.attrs["notes"]``.

>>> from pricetune.reading import read_prices, to_sktime   # doctest: +SKIP
>>> prices = read_prices("brent.csv")                      # doctest: +SKIP
>>> y = to_sktime(prices)   # a Series, or a (series, date) panel
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pricetune.reading.calendars import canonical_frequency, labels, resolve_frequency
from pricetune.reading.errors import DataFileError
from pricetune.reading.missing import POLICIES, check_policy, regular_series
from pricetune.reading.tables import long_table, read_table

__all__ = [
    "POLICIES",
    "DataFileError",
    "frequency_name",
    "read_prices",
    "to_panel_dict",
    "to_sktime",
]


def read_prices(
    path,
    *,
    freq: str | None = None,
    missing: str = "fill",
    date_column: str | None = None,
    value_column: str | None = None,
    series_column: str | None = None,
) -> pd.DataFrame:
    """Read a price file into a wide DataFrame on a regular calendar.

    Parameters
    ----------
    path : str or Path
        A ``.csv`` (any of comma, semicolon or tab separated) or
        ``.parquet`` file. Wide (a date column, then one column per series;
        ``Date,Price`` for one series) or long (an id column such as
        ``unique_id`` or ``series``, a date column and a value column such
        as ``y``, ``value`` or ``price``).
    freq : str, optional
        ``monthly``, ``quarterly``, ``yearly``, ``weekly``, ``daily``
        (business days when no date is a weekend), ``B`` or ``D``; also the
        pandas aliases ``M``, ``Q``, ``Y``, ``W-FRI``... Inferred when
        omitted.
    missing : {"fill", "drop", "error"}, default "fill"
        What happens to a missing value: see :mod:`pricetune.reading.missing`.
    date_column, value_column, series_column : str, optional
        Column names, where the defaults guess wrong.

    Returns
    -------
    pandas.DataFrame
        One float column per series (in file order), indexed by a
        ``PeriodIndex`` (monthly, quarterly, yearly, weekly) or a
        ``DatetimeIndex`` with its ``freq`` set (``B``, ``D``). Series of
        different lengths have NaN before their first value.
        ``attrs``: ``frequency``, ``source`` (the path) and ``notes``.

    Raises
    ------
    DataFileError
        (a ``ValueError``) with a one-line message for a file that cannot
        be used.
    """
    path = Path(path)
    check_policy(missing)
    canonical_frequency(freq)  # an unknown name fails before the file is read
    table = long_table(
        read_table(path),
        path,
        date_column=date_column,
        value_column=value_column,
        series_column=series_column,
    )
    dates = pd.DatetimeIndex(table["date"])
    _check_order(table, path)
    frequency = resolve_frequency(freq, dates, path)
    table["label"] = labels(dates, frequency, path)
    _check_duplicates(table, path, frequency)
    file_labels = pd.Index(table["label"].unique())
    notes: list[str] = []
    columns = {}
    for name, rows in table.groupby("series", sort=False):
        observed = pd.Series(
            rows["value"].to_numpy(), index=pd.Index(rows["label"]), name=name
        )
        columns[name] = regular_series(
            observed, frequency, file_labels, missing, path, notes
        )
    frame = pd.DataFrame(columns)
    frame.index.name = "date"
    if isinstance(frame.index, pd.DatetimeIndex):
        frame = frame.asfreq(frequency)
    frame.attrs = {"frequency": frequency, "source": str(path), "notes": notes}
    return frame


def _check_order(table: pd.DataFrame, path: Path) -> None:
    for name, rows in table.groupby("series", sort=False):
        steps = rows["date"].diff().dt.total_seconds().to_numpy()[1:]
        backwards = (steps < 0).nonzero()[0]
        if len(backwards):
            at = rows.index[backwards[0] + 1]
            raise DataFileError(
                f"{path}: dates out of order in series {name!r}: "
                f"{rows['date'][at].date()} (row {at + 2}) comes after "
                f"{rows['date'][at - 1].date()}; sort the file by date"
            )


def _check_duplicates(table: pd.DataFrame, path: Path, frequency: str) -> None:
    duplicated = table.duplicated(["series", "label"], keep=False)
    if duplicated.any():
        rows = table.index[duplicated.to_numpy()][:2]
        label = table["label"][rows[0]]
        where = (
            ""
            if table["series"].nunique() == 1
            else f" of {table['series'][rows[0]]!r}"
        )
        raise DataFileError(
            f"{path}: two values{where} for {label} (rows {rows[0] + 2} and "
            f"{rows[1] + 2}) on a {frequency_name(frequency)} calendar"
        )


def frequency_name(frequency: str) -> str:
    """``monthly``, ``weekly``, ``business-day``... for a frequency code."""
    names = {"M": "monthly", "Q": "quarterly", "Y": "yearly", "B": "business-day"}
    if frequency.startswith("W-"):
        return "weekly"
    return names.get(frequency, "daily")


def to_panel_dict(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """``{name: series}`` without the NaN before each series' start."""
    return {str(c): frame[c].dropna().rename(str(c)) for c in frame.columns}


def to_sktime(frame: pd.DataFrame):
    """What pricetune's and sktime's forecasters take: the Series for one
    column, else a (series, date) MultiIndex DataFrame with a ``price``
    column (each series from its first value)."""
    panel = to_panel_dict(frame)
    if len(panel) == 1:
        return next(iter(panel.values()))
    long = pd.concat(
        {name: series.rename("price") for name, series in panel.items()},
        names=["series", "date"],
    )
    return long.to_frame("price")
