"""The World Bank "Pink Sheet" panel: monthly prices of 71 commodities and
indices, 1960-01 to 2011-12.

Energy (crude oils, coal, natural gas), beverages, oils and meals, grains,
other food, raw materials, fertilizers, metals and precious metals, each in
its own unit (nominal US dollars per barrel, per metric ton, per kilogram,
per troy ounce...). 63 of the 71 series are *complete*: no gap from their
first value to 2011-12, every price positive, at least 20 years long; they
form the panel on which pricetune's defaults are chosen (its later years,
and other sources, are kept for judging them).

Source: World Bank Commodity Markets "Pink Sheet", CC BY 4.0 (free reuse
with attribution).
"""

from __future__ import annotations

import difflib
import functools
from importlib import resources

import pandas as pd

PANEL_FILE = "worldbank-pinksheet-monthly-1960-2011.csv"
SERIES_FILE = "worldbank-pinksheet-series.csv"
SOURCE = 'World Bank Commodity Markets "Pink Sheet"'
LICENCE = "CC BY 4.0: free reuse with attribution to the World Bank"
#: the shortest complete series, in months (20 years)
MIN_MONTHS = 240
FORMS = ("wide", "panel")


def _open(filename: str):
    return resources.files("pricetune.datasets").joinpath("data", filename).open("rb")


@functools.cache
def _read() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The wide panel and the series table (cached: callers copy)."""
    with _open(PANEL_FILE) as handle:
        wide = pd.read_csv(handle, dtype={"Date": str})
    index = pd.PeriodIndex(wide.pop("Date"), freq="M", name="date")
    wide = wide.astype("float64").set_axis(index)
    with _open(SERIES_FILE) as handle:
        table = pd.read_csv(handle, dtype=str).set_index("code")
    rows = []
    for code in wide.columns:
        values = wide[code]
        first, last = values.first_valid_index(), values.last_valid_index()
        span = values.loc[first:last]
        rows.append(
            {
                "code": code,
                "name": table.loc[code, "name"],
                "unit": table.loc[code, "unit"].strip("()"),
                "start": str(first),
                "end": str(last),
                "n_obs": int(span.notna().sum()),
                "complete": bool(
                    span.notna().all() and (span > 0).all() and len(span) >= MIN_MONTHS
                ),
            }
        )
    return wide, pd.DataFrame(rows).set_index("code")


def pinksheet_series(complete: bool = True) -> pd.DataFrame:
    """The Pink Sheet's series, one row per code: ``name``, ``unit``,
    ``start``, ``end`` (``YYYY-MM``), ``n_obs`` and ``complete``; only the 63
    complete ones by default.

    Examples
    --------
    >>> from pricetune.datasets import pinksheet_series
    >>> table = pinksheet_series()
    >>> len(table), table.loc["CRUDE_BRENT", "unit"]
    (63, '$/bbl')
    """
    _, table = _read()
    table = table[table["complete"]] if complete else table
    return table.copy()


def _codes(codes, complete: bool) -> list[str]:
    table = pinksheet_series(complete=False)
    if codes is None:
        return list(table.index[table["complete"]] if complete else table.index)
    if isinstance(codes, str):
        codes = [codes]
    # case-insensitive: the file spells a few codes in mixed case ("Zinc")
    by_key = {code.upper(): code for code in table.index}
    chosen = []
    for code in codes:
        key = str(code).strip().upper()
        if key not in by_key:
            close = difflib.get_close_matches(key, list(by_key), n=1)
            hint = f" Did you mean {by_key[close[0]]!r}?" if close else ""
            raise ValueError(
                f"unknown Pink Sheet code {code!r}.{hint} pinksheet_series("
                "complete=False) lists the 71 codes"
            )
        chosen.append(by_key[key])
    return chosen


def load_pinksheet(
    codes=None, *, complete: bool = True, start=None, form: str = "wide"
) -> pd.DataFrame:
    """Load the World Bank Pink Sheet panel of monthly commodity prices.

    Parameters
    ----------
    codes : str or list of str, optional
        Series codes (``"CRUDE_BRENT"``, ``"COPPER"``...; see
        :func:`pinksheet_series`). Default: the 63 complete series, or all 71
        with ``complete=False``.
    complete : bool, default True
        Without ``codes``: keep only the series with no gap from their first
        value to 2011-12, positive prices and at least 20 years of data.
    start : str or pandas.Period, optional
        First month to keep (e.g. ``"1980-01"``).
    form : {"wide", "panel"}, default "wide"
        ``"wide"``: a DataFrame on a monthly ``PeriodIndex`` named ``date``,
        one float column per code (NaN before a series starts).
        ``"panel"``: sktime's ``pd-multiindex`` panel, a one-column
        (``"price"``) DataFrame indexed by (``series``, ``date``), each series
        from its first value, ready for
        :class:`~pricetune.FineTunedPriceForecaster`'s global fit.

    Returns
    -------
    pandas.DataFrame
        A fresh copy; ``attrs`` holds ``source``, ``licence``, ``names`` and
        ``units`` (``{code: ...}``).

    Examples
    --------
    >>> from pricetune.datasets import load_pinksheet
    >>> wide = load_pinksheet()
    >>> wide.shape, str(wide.index[0]), str(wide.index[-1])
    ((624, 63), '1960-01', '2011-12')
    >>> panel = load_pinksheet(["COPPER", "CRUDE_BRENT"], form="panel")
    >>> panel.index.names, panel.index.get_level_values("series").unique().tolist()
    (FrozenList(['series', 'date']), ['COPPER', 'CRUDE_BRENT'])
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    chosen = _codes(codes, complete)
    wide, table = _read()
    wide = wide[chosen].copy()
    if start is not None:
        try:
            first = pd.Period(start, freq="M")
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"start={start!r} is not a valid month: {error}"
            ) from error
        wide = wide[wide.index >= first]
    wide = wide.dropna(how="all")
    attrs = {
        "source": SOURCE,
        "licence": LICENCE,
        "names": {code: table.loc[code, "name"] for code in chosen},
        "units": {code: table.loc[code, "unit"] for code in chosen},
    }
    if form == "wide":
        wide.attrs = attrs
        return wide
    long = wide.stack().dropna().rename("price").to_frame()  # months with a price
    long.index = long.index.set_names(["date", "series"])
    long = long.swaplevel().sort_index(level="series", sort_remaining=True)
    long = long.reindex(chosen, level="series")
    long.attrs = attrs
    return long
