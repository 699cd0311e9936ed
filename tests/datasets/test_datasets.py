"""Tests for pricetune.datasets (built-in commodity price data)."""

from __future__ import annotations

import ast
import doctest
import sys
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from pricetune.datasets import (
    CREDITS,
    list_datasets,
    load_brent,
    load_dataset,
    load_gold,
    load_henry_hub,
    load_wti,
)

LOADERS = {"brent": load_brent, "wti": load_wti, "henry_hub": load_henry_hub}

# (name, frequency) -> raw CSV shipped in pricetune/datasets/data/
FILES = {
    ("brent", "daily"): "eia-brent-daily.csv",
    ("brent", "weekly"): "eia-brent-weekly.csv",
    ("brent", "monthly"): "eia-brent-monthly.csv",
    ("wti", "daily"): "eia-wti-daily.csv",
    ("wti", "weekly"): "eia-wti-weekly.csv",
    ("wti", "monthly"): "eia-wti-monthly.csv",
    ("henry_hub", "daily"): "eia-henryhub-daily.csv",
    ("henry_hub", "monthly"): "eia-henryhub-monthly.csv",
    ("gold", "monthly"): "worldbank-gold-monthly.csv",
}
CASES = sorted(FILES)
EXPECTED_FREQ = {"monthly": "M", "weekly": "W-FRI", "daily": "B"}


def read_raw(name: str, frequency: str, *, dropna: bool = True) -> pd.DataFrame:
    """Read the packaged CSV independently of the loaders: columns date, price."""
    path = resources.files("pricetune.datasets").joinpath(
        "data", FILES[name, frequency]
    )
    with path.open("rb") as fh:
        frame = pd.read_csv(fh)
    frame.columns = ["date", "price"]
    frame["date"] = pd.to_datetime(frame["date"])
    return frame.dropna(subset=["price"]) if dropna else frame


def load(name: str, frequency: str, **kwargs) -> pd.Series:
    if name == "gold":
        return load_gold(**kwargs)
    return LOADERS[name](frequency, **kwargs)


def raw_as_series(name: str, frequency: str, **gold_kwargs) -> pd.Series:
    """Expected series built straight from the raw CSV (no holiday filling)."""
    raw = read_raw(name, frequency)
    index = pd.DatetimeIndex(raw["date"])
    if frequency == "monthly":
        index = index.to_period("M")
    elif frequency == "weekly":
        index = index.to_period("W-FRI")
    series = pd.Series(raw["price"].to_numpy(dtype=float), index=index)
    if name == "gold" and gold_kwargs.get("start", "1960-01") is not None:
        series = series[
            series.index >= pd.Period(gold_kwargs.get("start", "1960-01"), "M")
        ]
    return series


# --------------------------------------------------------------------------- #
# shape of every (name, frequency)
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(("name", "frequency"), CASES)
def test_index_type_and_freq(name, frequency):
    series = load(name, frequency)
    if frequency == "daily":
        assert isinstance(series.index, pd.DatetimeIndex)
    else:
        assert isinstance(series.index, pd.PeriodIndex)
    assert series.index.freqstr == EXPECTED_FREQ[frequency]


@pytest.mark.parametrize(("name", "frequency"), CASES)
def test_values_are_clean_float(name, frequency):
    series = load(name, frequency)
    assert isinstance(series, pd.Series)
    assert series.dtype == np.float64
    assert series.name == name
    assert series.index.is_monotonic_increasing
    assert series.index.is_unique
    assert not series.isna().any()
    assert len(series) > 300


@pytest.mark.parametrize(("name", "frequency"), CASES)
def test_attrs(name, frequency):
    series = load(name, frequency)
    for key in ("source", "unit", "licence", "frequency"):
        assert isinstance(series.attrs[key], str) and series.attrs[key]
    assert series.attrs["frequency"] == frequency
    assert ("n_filled" in series.attrs) == (frequency == "daily")


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("brent", "USD/barrel"),
        ("wti", "USD/barrel"),
        ("henry_hub", "USD/MMBtu"),
        ("gold", "USD/troy oz"),
    ],
)
def test_units(name, unit):
    assert load_dataset(name).attrs["unit"] == unit


@pytest.mark.parametrize(
    ("name", "frequency", "start"),
    [
        ("brent", "monthly", "1987-05"),
        ("wti", "monthly", "1986-01"),
        ("henry_hub", "monthly", "1997-01"),
        ("gold", "monthly", "1960-01"),
    ],
)
def test_monthly_spans(name, frequency, start):
    series = load(name, frequency)
    assert series.index[0] == pd.Period(start, "M")
    # Ends at the raw file's last month, which is recent.
    assert series.index[-1] == read_raw(name, frequency)["date"].iloc[-1].to_period("M")
    assert series.index[-1] >= pd.Period("2026-01", "M")


def test_default_frequency_is_monthly():
    for name, loader in LOADERS.items():
        assert loader().index.freqstr == "M"
        assert load_dataset(name).attrs["frequency"] == "monthly"


# --------------------------------------------------------------------------- #
# values against the raw CSV files
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(("name", "frequency"), [c for c in CASES if c[1] != "daily"])
def test_monthly_weekly_equal_raw_file(name, frequency):
    expected = raw_as_series(name, frequency)
    series = load(name, frequency)
    assert series.index.equals(expected.index)
    np.testing.assert_array_equal(series.to_numpy(), expected.to_numpy())


@pytest.mark.parametrize(("name", "frequency"), CASES)
def test_values_at_specific_rows(name, frequency):
    """First, middle and last raw rows appear unchanged under the right label."""
    raw = read_raw(name, frequency)
    series = load(name, frequency)
    for pos in (0, len(raw) // 2, len(raw) - 1):
        date, price = raw["date"].iloc[pos], raw["price"].iloc[pos]
        if name == "gold" and date.year < 1960:
            continue
        if frequency == "monthly":
            key = date.to_period("M")
        elif frequency == "weekly":
            key = date.to_period("W-FRI")
        else:
            key = date
        assert series[key] == price


def test_eia_monthly_dates_are_15th_and_weekly_dates_fridays():
    for name in ("brent", "wti"):
        assert (read_raw(name, "monthly")["date"].dt.day == 15).all()
        weekly_dates = read_raw(name, "weekly")["date"]
        assert (weekly_dates.dt.dayofweek == 4).all()
        # The W-FRI period ends on the raw Friday.
        ends = load(name, "weekly").index.end_time.normalize()
        assert (ends == pd.DatetimeIndex(weekly_dates)).all()


def test_wti_negative_price_is_kept():
    raw = read_raw("wti", "daily")
    negative = raw[raw["price"] < 0]
    assert len(negative) == 1
    date, price = negative["date"].iloc[0], negative["price"].iloc[0]
    assert date == pd.Timestamp("2020-04-20")
    assert load_wti("daily")[date] == price
    assert load_wti("daily", fill_holidays=False)[date] == price


def test_henry_hub_empty_price_row_is_dropped():
    raw = read_raw("henry_hub", "daily", dropna=False)
    missing = raw.loc[raw["price"].isna(), "date"]
    assert len(missing) == 1
    day = missing.iloc[0]
    unfilled = load_henry_hub("daily", fill_holidays=False)
    assert day not in unfilled.index
    assert len(unfilled) == len(raw) - 1
    filled = load_henry_hub("daily")
    previous = raw.loc[raw["date"] < day].dropna().iloc[-1]
    assert filled[day] == previous["price"]


# --------------------------------------------------------------------------- #
# daily business-day filling
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", ["brent", "wti", "henry_hub"])
def test_daily_fill_holidays(name):
    raw = read_raw(name, "daily")
    series = LOADERS[name]("daily")
    assert series.index.freqstr == "B"
    business_days = pd.bdate_range(raw["date"].iloc[0], raw["date"].iloc[-1])
    assert series.index.equals(business_days)  # no gaps
    assert (series.index.dayofweek < 5).all()

    trading_days = pd.DatetimeIndex(raw["date"])
    n_missing = len(business_days.difference(trading_days))
    assert n_missing > 0
    assert series.attrs["n_filled"] == n_missing
    assert len(series) == len(raw) + n_missing

    # Trading days keep their raw price ...
    np.testing.assert_array_equal(
        series[trading_days].to_numpy(), raw["price"].to_numpy()
    )
    # ... and each filled day carries the previous trading day's price.
    filled_days = business_days.difference(trading_days)
    previous = trading_days[trading_days.searchsorted(filled_days) - 1]
    np.testing.assert_array_equal(
        series[filled_days].to_numpy(),
        raw.set_index("date")["price"][previous].to_numpy(),
    )


def test_christmas_is_filled_with_previous_trading_day():
    raw = read_raw("brent", "daily").set_index("date")["price"]
    christmas = pd.Timestamp("2020-12-25")  # a Friday, no Brent quote
    assert christmas not in raw.index
    assert load_brent("daily")[christmas] == raw[:christmas].iloc[-1]


@pytest.mark.parametrize("name", ["brent", "wti", "henry_hub"])
def test_daily_without_fill_equals_raw_file(name):
    raw = read_raw(name, "daily")
    series = LOADERS[name]("daily", fill_holidays=False)
    assert isinstance(series.index, pd.DatetimeIndex)
    assert series.index.freq is None
    assert series.index.equals(pd.DatetimeIndex(raw["date"]))
    np.testing.assert_array_equal(series.to_numpy(), raw["price"].to_numpy())
    assert series.attrs["n_filled"] == 0


def test_fill_holidays_ignored_for_monthly_and_weekly():
    pd.testing.assert_series_equal(
        load_brent("weekly", fill_holidays=False), load_brent("weekly")
    )
    pd.testing.assert_series_equal(load_wti(fill_holidays=False), load_wti())


# --------------------------------------------------------------------------- #
# gold
# --------------------------------------------------------------------------- #
def test_gold_start():
    assert load_gold().index[0] == pd.Period("1960-01", "M")
    full = load_gold(start=None)
    assert full.index[0] == pd.Period("1833-01", "M")
    assert len(full) == len(read_raw("gold", "monthly"))
    assert full.index.equals(pd.period_range(full.index[0], full.index[-1], freq="M"))
    later = load_gold(start="2000-01")
    assert later.index[0] == pd.Period("2000-01", "M")
    pd.testing.assert_series_equal(later, full[full.index >= pd.Period("2000-01", "M")])
    assert load_gold(start=pd.Timestamp("2000-01-31")).index[0] == pd.Period(
        "2000-01", "M"
    )
    assert load_dataset("gold", start=None).index[0] == pd.Period("1833-01", "M")


def test_gold_pre_1960_values_are_repeated_annual_figures():
    full = load_gold(start=None)
    early = full[full.index < pd.Period("1960-01", "M")]
    per_year = early.groupby(early.index.year).nunique()
    assert (per_year == 1).all()


def test_gold_bad_start():
    with pytest.raises(ValueError, match="after the last"):
        load_gold(start="2999-01")
    with pytest.raises(ValueError, match="not a valid month"):
        load_gold(start="not-a-month")


# --------------------------------------------------------------------------- #
# dispatch and errors
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(("name", "frequency"), CASES)
def test_load_dataset_matches_loaders(name, frequency):
    pd.testing.assert_series_equal(load_dataset(name, frequency), load(name, frequency))


def test_load_dataset_name_spellings_and_kwargs():
    pd.testing.assert_series_equal(load_dataset("Henry-Hub"), load_henry_hub())
    pd.testing.assert_series_equal(
        load_dataset("henryhub", "DAILY"), load_henry_hub("daily")
    )
    unfilled = load_dataset("brent", "daily", fill_holidays=False)
    assert unfilled.index.freq is None


def test_unknown_name_suggests_close_match():
    with pytest.raises(ValueError) as info:
        load_dataset("bren")
    message = str(info.value)
    assert "did you mean 'brent'?" in message.lower()
    for name in ("brent", "wti", "henry_hub", "gold"):
        assert repr(name) in message

    with pytest.raises(ValueError, match="(?i)did you mean 'henry_hub'"):
        load_dataset("henry_hb")
    with pytest.raises(ValueError, match="Available datasets") as info:
        load_dataset("coffee")
    assert "did you mean" not in str(info.value).lower()


@pytest.mark.parametrize(
    ("call", "available"),
    [
        (lambda: load_henry_hub("weekly"), ["'daily'", "'monthly'"]),
        (lambda: load_dataset("henry_hub", "weekly"), ["'daily'", "'monthly'"]),
        (lambda: load_dataset("gold", "daily"), ["'monthly'"]),
        (lambda: load_brent("hourly"), ["'daily'", "'weekly'", "'monthly'"]),
    ],
)
def test_unsupported_frequency_lists_available(call, available):
    with pytest.raises(ValueError) as info:
        call()
    for freq in available:
        assert freq in str(info.value)


def test_frequency_typo_suggestion():
    with pytest.raises(ValueError, match="(?i)did you mean 'monthly'"):
        load_brent("month")


# --------------------------------------------------------------------------- #
# caching returns fresh copies
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "loader",
    [
        load_brent,
        lambda: load_wti("daily"),
        lambda: load_henry_hub("daily", fill_holidays=False),
        load_gold,
    ],
)
def test_mutating_a_result_does_not_leak(loader):
    first = loader()
    original = first.copy()
    first.iloc[0] = -999.0
    first.iloc[-1] = np.nan
    first.attrs["unit"] = "changed"
    first.attrs["extra"] = True
    first.name = "changed"
    first.index.name = "changed"

    second = loader()
    pd.testing.assert_series_equal(second, original)
    assert second.attrs["unit"] != "changed"
    assert "extra" not in second.attrs
    assert second is not first


def test_inplace_operations_do_not_leak():
    series = load_brent("weekly")
    expected = series.copy()
    series.sort_values(inplace=True)
    series.clip(upper=0.0, inplace=True)
    pd.testing.assert_series_equal(load_brent("weekly"), expected)


# --------------------------------------------------------------------------- #
# list_datasets, credits, packaging
# --------------------------------------------------------------------------- #
def test_list_datasets():
    table = list_datasets()
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == [
        "name",
        "frequency",
        "start",
        "end",
        "n_obs",
        "unit",
        "source",
    ]
    assert len(table) == len(FILES)
    assert set(zip(table["name"], table["frequency"], strict=True)) == set(FILES)
    for row in table.itertuples():
        series = load_dataset(row.name, row.frequency)
        assert row.n_obs == len(series)
        assert row.unit == series.attrs["unit"]
        assert row.source == series.attrs["source"]
    brent_monthly = table[
        (table["name"] == "brent") & (table["frequency"] == "monthly")
    ].iloc[0]
    assert brent_monthly["start"] == "1987-05"
    gold = table[table["name"] == "gold"].iloc[0]
    assert gold["start"] == "1960-01"
    wti_daily = table[(table["name"] == "wti") & (table["frequency"] == "daily")].iloc[
        0
    ]
    assert wti_daily["start"] == read_raw("wti", "daily")["date"].iloc[0].strftime(
        "%Y-%m-%d"
    )


def test_credits():
    assert isinstance(CREDITS, str)
    for word in (
        "Energy Information Administration",
        "World Bank",
        "Pink Sheet",
        "datahub.io",
        "public domain",
    ):
        assert word in CREDITS


def test_data_files_and_readme_are_packaged():
    data = resources.files("pricetune.datasets").joinpath("data")
    for filename in FILES.values():
        assert data.joinpath(filename).is_file()
    readme = data.joinpath("README.md").read_text(encoding="utf-8")
    assert (
        "public domain" in readme and "Pink Sheet" in readme and "datahub.io" in readme
    )


MODULES = ("__init__", "_files", "prices", "pinksheet")


@pytest.mark.parametrize("module", MODULES)
def test_modules_import_only_pandas_numpy_stdlib(module):
    source = (
        resources.files("pricetune.datasets")
        .joinpath(f"{module}.py")
        .read_text("utf-8")
    )
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module)
    imported = {
        name.split(".")[0]
        for name in imported
        if not name.startswith("pricetune.datasets")  # its own modules
    }
    allowed = set(sys.stdlib_module_names) | {"pandas", "numpy"}
    assert imported <= allowed, imported - allowed


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    import importlib

    name = "pricetune.datasets" + ("" if module == "__init__" else f".{module}")
    result = doctest.testmod(
        importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert result.failed == 0
    if module != "_files":  # the reading helpers have no examples
        assert result.attempted > 0
