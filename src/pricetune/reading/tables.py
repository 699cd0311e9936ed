"""From a file on disk to one long table: ``series``, ``date`` (parsed
datetimes) and ``value`` (float, NaN where missing), in file order.

Layouts recognised:

* **long**: an id column (``unique_id``, ``series``, ``id``, ``symbol``,
  ``commodity``, ``ticker``, ``name``), a date column and one value column
  (``y``, ``value``, ``price``, ``close``... or the only numeric one);
* **wide**: a date column and one column per series (``Date,Price`` is the
  one-series case; a generic value name such as ``Price`` becomes the file's
  name).

The date column is the one named ``date``, ``ds``, ``time``, ``timestamp``,
``month``, ``period``, ``week`` or ``day`` (any case), else the first column.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from pricetune.reading.errors import DataFileError

ID_COLUMNS = ("unique_id", "series", "id", "symbol", "commodity", "ticker", "name")
DATE_COLUMNS = ("date", "ds", "time", "timestamp", "month", "period", "week", "day")
VALUE_COLUMNS = ("y", "value", "price", "close", "settle", "last", "adj close")
# what a price file writes for "no value" besides an empty cell
MISSING_MARKERS = ("", ".", "-", "--", "na", "n/a", "nan", "null", "none", "#n/a")
_NUMBER_JUNK = re.compile(r"[,\s$€£]")


def read_table(path: Path) -> pd.DataFrame:
    """The file as a DataFrame of strings (nothing parsed yet)."""
    if not path.exists():
        raise DataFileError(f"{path}: no such file")
    if path.is_dir():
        raise DataFileError(f"{path}: is a directory, not a CSV or Parquet file")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path)
        except ImportError as error:
            raise DataFileError(
                f"{path}: reading Parquet needs pyarrow (pip install pyarrow)"
            ) from error
        except Exception as error:  # noqa: BLE001 - any reader failure is the file's
            raise DataFileError(
                f"{path}: not a readable Parquet file ({error})"
            ) from error
        return (
            frame.astype(object)
            .where(frame.notna(), None)
            .astype(str)
            .replace("None", "")
        )
    separator = _separator(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, sep=separator)
    except pd.errors.EmptyDataError as error:
        raise DataFileError(f"{path}: the file is empty") from error
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise DataFileError(f"{path}: not a readable CSV file ({first})") from error
    frame.columns = [str(column).strip() for column in frame.columns]
    # a semicolon-separated file is a spreadsheet export with decimal commas
    frame.attrs["decimal"] = "," if separator == ";" else "."
    if frame.empty:
        raise DataFileError(f"{path}: the file has a header but no rows")
    return frame


def _separator(path: Path) -> str:
    """The separator of the header line: comma unless semicolons, tabs or
    pipes are more frequent (a European spreadsheet's export, say)."""
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


def _pick(columns, names) -> str | None:
    lowered = {column.lower(): column for column in columns}
    return next((lowered[name] for name in names if name in lowered), None)


def parse_numbers(
    column: pd.Series, path: Path, name: str, decimal: str = "."
) -> np.ndarray:
    """Floats from a text column; missing markers become NaN; anything else
    that is not a number is an error naming the row (1-based, as in a
    spreadsheet with its header on row 1). Thousands separators and currency
    signs are dropped; with ``decimal=","`` (semicolon files), ``1.234,5``
    is 1234.5."""
    text = column.astype(str).str.strip()
    missing = text.str.lower().isin(MISSING_MARKERS)
    cleaned = text.where(~missing)
    if decimal == ",":
        cleaned = cleaned.str.replace(".", "", regex=False).str.replace(",", ".")
    values = pd.to_numeric(
        cleaned.str.replace(_NUMBER_JUNK, "", regex=True), errors="coerce"
    )
    bad = values.isna() & ~missing
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataFileError(
            f"{path}: column {name!r} row {row + 2}: {text.iloc[row]!r} is not a number"
        )
    values = values.to_numpy(dtype=np.float64)
    if np.isinf(values).any():
        row = int(np.flatnonzero(np.isinf(values))[0])
        raise DataFileError(f"{path}: column {name!r} row {row + 2}: infinite value")
    return values


def parse_dates(column: pd.Series, path: Path, name: str) -> pd.DatetimeIndex:
    """Datetimes from a text column (ISO dates, ``2020-01``, ``2020M01``,
    ``Jan 2020``, ``2020-W05``...); the first unreadable row is an error."""
    text = column.astype(str).str.strip()
    text = text.str.replace(r"^(\d{4})M(\d{1,2})$", r"\1-\2", regex=True)
    empty = text.eq("")
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise DataFileError(f"{path}: column {name!r} row {row + 2}: no date")
    try:
        return pd.DatetimeIndex(pd.to_datetime(text, format="mixed"))
    except (ValueError, TypeError, OverflowError):
        pass
    for row, value in enumerate(text):
        try:
            pd.to_datetime(value)
        except (ValueError, TypeError, OverflowError):
            raise DataFileError(
                f"{path}: column {name!r} row {row + 2}: {value!r} is not a date"
            ) from None
    raise DataFileError(f"{path}: column {name!r}: the dates cannot be read")


def _generic_name(name: str) -> bool:
    return name.lower() in VALUE_COLUMNS or name.lower() in ("price", "prices", "")


def long_table(
    frame: pd.DataFrame,
    path: Path,
    *,
    date_column: str | None = None,
    value_column: str | None = None,
    series_column: str | None = None,
) -> pd.DataFrame:
    """``series``, ``date``, ``value`` rows from a wide or long table."""
    columns = list(frame.columns)
    decimal = frame.attrs.get("decimal", ".")
    for given, what in (
        (date_column, "date"),
        (value_column, "value"),
        (series_column, "series"),
    ):
        if given is not None and given not in columns:
            raise DataFileError(
                f"{path}: no {what} column {given!r}; the columns are "
                + ", ".join(repr(c) for c in columns)
            )
    if len(columns) < 2:
        raise DataFileError(
            f"{path}: needs a date column and at least one price column; found "
            + (repr(columns[0]) if columns else "no columns")
            + " (is the separator a comma, semicolon or tab?)"
        )
    series_column = series_column or _pick(columns, ID_COLUMNS)
    date_column = date_column or _pick(
        [c for c in columns if c != series_column], DATE_COLUMNS
    )
    if date_column is None:
        date_column = next(c for c in columns if c != series_column)
    dates = parse_dates(frame[date_column], path, date_column)
    if series_column is not None:
        candidates = [c for c in columns if c not in (series_column, date_column)]
        value_column = value_column or _pick(candidates, VALUE_COLUMNS)
        if value_column is None:
            if len(candidates) != 1:
                raise DataFileError(
                    f"{path}: long file with several value columns ("
                    + ", ".join(repr(c) for c in candidates)
                    + "); name the one to forecast (--value-column)"
                )
            value_column = candidates[0]
        names = frame[series_column].astype(str).str.strip()
        return pd.DataFrame(
            {
                "series": names.to_numpy(),
                "date": dates,
                "value": parse_numbers(
                    frame[value_column], path, value_column, decimal
                ),
            }
        )
    value_columns = (
        [value_column] if value_column else [c for c in columns if c != date_column]
    )
    parts = []
    for column in value_columns:
        name = (
            path.stem if len(value_columns) == 1 and _generic_name(column) else column
        )
        parts.append(
            pd.DataFrame(
                {
                    "series": name,
                    "date": dates,
                    "value": parse_numbers(frame[column], path, column, decimal),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)
