"""SeriesStore: the fitted history of one series or a panel, built from y
and X, appended to by update (gaps refused, what it has left out), read as
contexts and windows, and saved to JSON and back exactly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pricetune.data.series import SeriesStore
from pricetune.data.windows import PanelWindows, Windows


def _series(n=10, start="2020-01", name="price"):
    index = pd.period_range(start, periods=n, freq="M", name="month")
    return pd.Series(np.arange(n, dtype=float) + 100, index=index, name=name)


def _panel(lengths=(6, 4), start="2020-01"):
    frames = {}
    for number, length in enumerate(lengths):
        index = pd.period_range(start, periods=length, freq="M")
        frames[f"s{number}"] = pd.Series(np.arange(length) + 10.0 * number, index=index)
    return pd.concat(frames, names=["series", "month"]).to_frame("price")


def test_a_single_series():
    y = _series()
    store = SeriesStore.from_y(y)
    assert not store.is_panel and store.n_series == 1
    np.testing.assert_array_equal(store.values, y.to_numpy())
    assert store.offsets.tolist() == [0, 10]
    assert store.ends.equals(y.index[-1:])
    assert (store.name, store.time_name, store.covariates) == ("price", "month", None)
    assert isinstance(store.windows(4, 2), Windows)
    contexts, past = store.contexts(3, np.array([0]))
    assert contexts.tolist() == [[107.0, 108.0, 109.0]] and past is None


def test_a_panel_interleaved_in_time_is_stored_series_by_series():
    y = _panel().sort_index(level="month")  # rows alternate between series
    store = SeriesStore.from_y(y)
    assert store.is_panel and list(store.instances) == ["s0", "s1"]
    assert store.offsets.tolist() == [0, 6, 10]
    assert store.values.tolist() == [0, 1, 2, 3, 4, 5, 10, 11, 12, 13]
    assert [str(end) for end in store.ends] == ["2020-06", "2020-04"]
    assert isinstance(store.windows(2, 1), PanelWindows)
    contexts, _ = store.contexts(2, np.array([0, 1]))
    assert contexts.tolist() == [[4.0, 5.0], [12.0, 13.0]]


def test_covariates_are_standardised_on_the_fit_rows():
    y = _series()
    X = pd.DataFrame({"a": np.arange(10.0), "flat": np.ones(10)}, index=y.index)
    store = SeriesStore.from_y(y, X)
    assert store.covariate_names == ("a", "flat")
    np.testing.assert_allclose(store.scaling.loc, [4.5, 1.0])
    np.testing.assert_allclose(store.scaling.scale, [np.std(np.arange(10.0)), 1.0])
    np.testing.assert_allclose(store.covariates.mean(axis=0), [0.0, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match=r"must cover .* missing or NaN"):
        SeriesStore.from_y(y, X.iloc[1:])


def test_append_continues_a_series_and_leaves_out_what_it_has():
    y = _series(12)
    store = SeriesStore.from_y(y.iloc[:8])
    appended = store.append(y.iloc[5:10])  # three known points, two new
    np.testing.assert_array_equal(appended.values, y.iloc[:10].to_numpy())
    assert str(appended.ends[0]) == "2020-10"
    assert store.values.size == 8  # the store itself is unchanged
    assert appended.append(y.iloc[:10]).equals(appended)  # nothing new
    with pytest.raises(ValueError, match="y ends at 2020-10, so its next .* 2020-12"):
        appended.append(y.iloc[11:])


def test_append_to_some_series_of_a_panel():
    full = _panel((8, 6))
    store = SeriesStore.from_y(full.drop(full.index[[6, 7, 12, 13]]))
    new = full.loc[
        [("s1", pd.Period("2020-05", "M")), ("s1", pd.Period("2020-06", "M"))]
    ]
    appended = store.append(new)
    assert appended.lengths.tolist() == [6, 6]
    assert appended.values[6:].tolist() == [10, 11, 12, 13, 14, 15]
    assert [str(end) for end in appended.ends] == ["2020-06", "2020-06"]
    with pytest.raises(ValueError, match="series that fit did not see: 's9'"):
        store.append(
            pd.concat({"s9": _series(2)}, names=["series", "month"]).to_frame()
        )
    gap = full.loc[[("s0", pd.Period("2020-08", "M"))]]
    with pytest.raises(ValueError, match="series 's0' ends at 2020-06"):
        store.append(gap)
    with pytest.raises(ValueError, match="fitted on a panel"):
        store.append(_series())


def test_append_with_covariates_scales_them_as_in_fit():
    y = _series(12)
    X = pd.DataFrame({"a": np.arange(12.0) ** 2}, index=y.index)
    store = SeriesStore.from_y(y.iloc[:8], X.iloc[:8])
    appended = store.append(y.iloc[8:], X.iloc[8:])
    np.testing.assert_array_equal(
        appended.covariates[8:], store.scaling.transform(X.iloc[8:].to_numpy())
    )
    with pytest.raises(ValueError, match="update needs X"):
        store.append(y.iloc[8:])


def test_dates_need_their_frequency_to_find_gaps():
    days = pd.bdate_range("2024-01-01", periods=12, name="date")
    y = pd.Series(np.arange(12.0), index=days)
    store = SeriesStore.from_y(y.iloc[:6], freq="B")
    assert store.freq == "B"
    assert store.append(y.iloc[6:]).values.size == 12  # a weekend is no gap
    with pytest.raises(ValueError, match="next observation is 2024-01-09"):
        store.append(y.iloc[7:])


@pytest.mark.parametrize("panel", [False, True], ids=["series", "panel"])
def test_json_round_trip_is_exact(panel):
    y = _panel() if panel else _series()
    X = pd.DataFrame({"a": np.sin(np.arange(len(y)))}, index=y.index)
    store = SeriesStore.from_y(y, X)
    text = json.dumps(store.to_json())
    restored = SeriesStore.from_json(
        json.loads(text), name=store.name, time_name=store.time_name, end=store.ends
    )
    assert restored.equals(store)
    assert not restored.equals(SeriesStore.from_y(y))  # without the covariates


def test_json_that_does_not_fit_together_is_refused():
    data = SeriesStore.from_y(_panel()).to_json()
    data["panel"]["offsets"] = [0, 3, 99]
    with pytest.raises(ValueError, match="do not fit together"):
        SeriesStore.from_json(data)
