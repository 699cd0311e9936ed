"""The file reader: layouts, calendars, the missing-value policy and the
one-line errors for files it cannot use."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pricetune.reading import DataFileError, read_prices, to_panel_dict, to_sktime


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def monthly_csv(tmp_path, day=15, n=24, name="brent.csv", skip=None, nan=None):
    dates = pd.date_range("2020-01-01", periods=n, freq="MS") + pd.Timedelta(
        days=day - 1
    )
    values = [f"{50 + i}.5" for i in range(n)]
    if nan is not None:
        values[nan] = ""
    rows = [
        f"{d:%Y-%m-%d},{v}"
        for i, (d, v) in enumerate(zip(dates, values, strict=True))
        if i != skip
    ]
    return write(tmp_path, name, "Date,Price\n" + "\n".join(rows) + "\n")


@pytest.mark.parametrize("day", [1, 15, 28])
def test_monthly_file_on_any_day_of_the_month_is_monthly_periods(tmp_path, day):
    frame = read_prices(monthly_csv(tmp_path, day=day))
    assert isinstance(frame.index, pd.PeriodIndex) and frame.index.freqstr == "M"
    assert frame.index[0] == pd.Period("2020-01", "M") and len(frame) == 24
    assert list(frame.columns) == ["brent"]  # a generic 'Price' takes the file name
    assert frame["brent"].iloc[3] == 53.5
    assert frame.attrs["frequency"] == "M" and frame.attrs["notes"] == []


def test_a_missing_month_is_filled_and_noted(tmp_path):
    frame = read_prices(monthly_csv(tmp_path, skip=5))
    assert len(frame) == 24 and frame.index.is_monotonic_increasing
    assert frame["brent"].iloc[5] == frame["brent"].iloc[4] == 54.5
    (note,) = frame.attrs["notes"]
    assert "1 missing values" in note and "2020-06" in note


def test_a_nan_is_filled_by_default_dropped_or_refused(tmp_path):
    path = monthly_csv(tmp_path, nan=10)
    filled = read_prices(path)
    assert filled["brent"].iloc[10] == filled["brent"].iloc[9]
    dropped = read_prices(path, missing="drop")
    assert dropped.index[0] == pd.Period("2020-12", "M") and len(dropped) == 13
    assert "dropped" in dropped.attrs["notes"][0]
    with pytest.raises(DataFileError, match=r"1 missing values \(first 2020-11\)"):
        read_prices(path, missing="error")


def test_trading_days_are_business_days_with_holidays_carried(tmp_path):
    days = pd.bdate_range("2024-01-01", periods=30)
    holidays = {days[0], days[11]}
    rows = [f"{d:%Y-%m-%d},{70 + i}" for i, d in enumerate(days) if d not in holidays]
    frame = read_prices(write(tmp_path, "wti.csv", "date,close\n" + "\n".join(rows)))
    assert frame.index.freqstr == "B" and frame.index[0] == days[1]
    assert len(frame) == 29  # from the first value: one holiday inside
    assert frame["wti"][days[11]] == frame["wti"][days[10]]
    assert "1 business days absent from the file (holidays)" in frame.attrs["notes"][0]


def test_weekends_make_calendar_days_and_weekly_anchors_on_the_weekday(tmp_path):
    days = pd.date_range("2024-01-01", periods=20, freq="D")
    text = "Date,Price\n" + "\n".join(f"{d:%Y-%m-%d},{i}" for i, d in enumerate(days))
    assert read_prices(write(tmp_path, "d.csv", text)).index.freqstr == "D"
    weeks = pd.date_range("2024-01-05", periods=20, freq="W-FRI")
    text = "Date,Price\n" + "\n".join(f"{d:%Y-%m-%d},{i}" for i, d in enumerate(weeks))
    frame = read_prices(write(tmp_path, "w.csv", text))
    assert frame.index.freqstr == "W-FRI" and len(frame) == 20


def test_freq_overrides_the_inferred_calendar(tmp_path):
    days = pd.bdate_range("2024-01-01", periods=10)
    text = "Date,Price\n" + "\n".join(f"{d:%Y-%m-%d},{i}" for i, d in enumerate(days))
    path = write(tmp_path, "b.csv", text)
    frame = read_prices(path, freq="D")
    assert frame.index.freqstr == "D" and len(frame) == 12  # the weekend filled
    assert read_prices(path, freq="daily").index.freqstr == "B"
    with pytest.raises(ValueError, match="unknown frequency 'hourly'"):
        read_prices(path, freq="hourly")


def test_long_files_in_both_spellings_and_wide_files(tmp_path):
    long = write(
        tmp_path,
        "long.csv",
        "unique_id,ds,y\nA,2020-01-01,1\nA,2020-02-01,2\nB,2020-01-01,3\n"
        "B,2020-02-01,4\nB,2020-03-01,5\n",
    )
    frame = read_prices(long)
    assert list(frame.columns) == ["A", "B"] and len(frame) == 3
    assert np.isnan(frame["A"].iloc[2])  # A ends earlier
    panel = to_panel_dict(frame)
    assert len(panel["A"]) == 2 and len(panel["B"]) == 3
    y = to_sktime(frame)
    assert y.index.names == ["series", "date"] and list(y["price"]) == [1, 2, 3, 4, 5]
    other = write(
        tmp_path,
        "other.csv",
        "series;date;value\nX;2020-01;1,5\nX;2020-02;2\nX;2020-03;3\n",
    )
    # semicolons: a spreadsheet export, whose comma is the decimal one
    assert list(read_prices(other)["X"]) == [1.5, 2.0, 3.0]
    wide = write(tmp_path, "wide.csv", "date,gold,silver\n2020-01,1,2\n2020-02,3,4\n")
    frame = read_prices(wide)
    assert (
        list(frame.columns) == ["gold", "silver"]
        and frame.loc["2020-02", "silver"] == 4
    )


def test_one_series_to_sktime_is_a_series(tmp_path):
    y = to_sktime(read_prices(monthly_csv(tmp_path)))
    assert isinstance(y, pd.Series) and y.name == "brent" and len(y) == 24


def test_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "p.parquet"
    pd.DataFrame(
        {"date": pd.date_range("2020-01-31", periods=6, freq="ME"), "y": range(6)}
    ).to_parquet(path)
    frame = read_prices(path)
    assert frame.index.freqstr == "M" and list(frame["p"]) == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("Date,Price\n", "a header but no rows"),
        (
            "Date,Price\n2020-01,1\n2020-02,abc\n",
            r"column 'Price' row 3: 'abc' is not a number",
        ),
        (
            "Date,Price\n2020-01,1\n2020-01,2\n2020-02,3\n",
            r"two values for 2020-01 \(rows 2 and 3\)",
        ),
        ("Date,Price\n2020-02,1\n2020-01,2\n", "out of order.*sort the file by date"),
        (
            "Date,Price\n2020-01-01,1\n2020-01-15,2\n2020-03-01,3\n2020-04-01,4\n",
            "mixed frequencies",
        ),
        ("Date,Price\nsoon,1\n2020-02,2\n", r"row 2: 'soon' is not a date"),
        ("Price\n1\n2\n", "needs a date column and at least one price column"),
        ("Date,Price\n2020-01,1\n", "one date only"),
        ("Date,Price\n2020-01,\n2020-02,\n", "has no values"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, text, message):
    path = write(tmp_path, "bad.csv", text)
    before = path.read_bytes()
    with pytest.raises(DataFileError, match=message) as caught:
        read_prices(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    assert path.read_bytes() == before  # the user's file untouched


def test_missing_file_and_bad_policy(tmp_path):
    with pytest.raises(DataFileError, match="no such file"):
        read_prices(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="unknown missing-value policy 'zero'"):
        read_prices(monthly_csv(tmp_path), missing="zero")
