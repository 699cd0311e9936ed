"""The World Bank Pink Sheet panel (pricetune.datasets.load_pinksheet):
what it holds, its two forms, its series table, its errors, and the
backtest's ``--data pinksheet``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pricetune.datasets import CREDITS, load_pinksheet, pinksheet_series


def test_the_complete_series_are_the_63_of_the_validation_panel():
    table = pinksheet_series()
    assert len(table) == 63
    assert len(pinksheet_series(complete=False)) == 71
    assert (table["end"] == "2011-12").all()
    assert (table["n_obs"] >= 240).all()
    wide = load_pinksheet()
    assert wide.shape == (624, 63)
    assert list(wide.columns) == list(table.index)
    for code in wide.columns:  # no gap after a series starts, and positive
        values = wide[code].loc[wide[code].first_valid_index() :]
        assert values.notna().all() and (values > 0).all(), code
    left_out = set(pinksheet_series(complete=False).index) - set(table.index)
    assert {"RUBBER_TSR20", "BANANA_EU"} <= left_out


def test_the_wide_form_is_a_monthly_frame_of_floats():
    wide = load_pinksheet(["CRUDE_BRENT", "copper", "ZINC"], start="2000-01")
    assert isinstance(wide.index, pd.PeriodIndex) and wide.index.freqstr == "M"
    assert wide.index.name == "date"
    assert (str(wide.index[0]), str(wide.index[-1])) == ("2000-01", "2011-12")
    assert list(wide.columns) == ["CRUDE_BRENT", "COPPER", "Zinc"]  # as the file has
    assert (wide.dtypes == np.float64).all()
    assert wide.attrs["units"] == {
        "CRUDE_BRENT": "$/bbl",
        "COPPER": "$/mt",
        "Zinc": "$/mt",
    }
    assert "World Bank" in wide.attrs["source"] and "CC BY 4.0" in wide.attrs["licence"]


def test_the_panel_form_is_an_sktime_multiindex_panel():
    from sktime.datatypes import check_is_mtype

    whole = load_pinksheet(form="panel")
    assert whole["price"].notna().all() and len(whole) == load_pinksheet().count().sum()
    assert whole.index.get_level_values("series").nunique() == 63
    panel = load_pinksheet(["IRON_ORE", "CRUDE_WTI"], form="panel")
    assert check_is_mtype(panel, "pd-multiindex")
    assert panel.columns.tolist() == ["price"]
    assert panel.index.get_level_values("series").unique().tolist() == [
        "IRON_ORE",
        "CRUDE_WTI",
    ]
    assert str(panel.xs("CRUDE_WTI").index[0]) == "1982-01"  # from its first price
    wide = load_pinksheet(["IRON_ORE", "CRUDE_WTI"])
    for code in ("IRON_ORE", "CRUDE_WTI"):
        pd.testing.assert_series_equal(
            panel.xs(code)["price"], wide[code].dropna(), check_names=False
        )


def test_each_load_is_a_fresh_copy():
    first = load_pinksheet(["COPPER"])
    first.iloc[:, 0] = -1.0
    assert (load_pinksheet(["COPPER"])["COPPER"] > 0).all()


def test_bad_requests_fail_plainly():
    with pytest.raises(ValueError, match="unknown Pink Sheet code 'COPER'.*'COPPER'"):
        load_pinksheet(["COPER"])
    with pytest.raises(ValueError, match="form must be one of"):
        load_pinksheet(form="long")
    with pytest.raises(ValueError, match="start='soon' is not a valid month"):
        load_pinksheet(start="soon")


def test_the_credits_name_the_world_bank_pink_sheet():
    assert "Pink Sheet" in CREDITS and "1960-2011" in CREDITS


def test_the_backtest_loads_the_panel_by_name():
    from pricetune.backtesting.splitter import load_panel

    panel = load_panel("pinksheet")
    assert len(panel) == 63
    assert str(panel["COPPER"].index[-1]) == "2011-12"
    assert panel["COPPER"].notna().all()
