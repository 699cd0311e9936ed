"""Global models over panels and hierarchies: one model trained on the
windows of every series, drawn lazily; forecasts, update, X, persistence.
(The lazy panel windows themselves: tests/data/test_windows.py.)"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sktime.utils._testing.hierarchical import _make_hierarchical

from pricetune import FineTunedPriceForecaster
from pricetune.data.windows import (
    PanelWindows,
    ShortSeriesWarning,
)
from pricetune.datasets import load_brent, load_gold, load_henry_hub, load_wti

FH = [1, 2, 3]
CONTEXT = 24
# one network (the default mixes three: test_ensembles.py)
FAST = {
    "n_ensemble": 1,
    "backbone": "none",
    "head": "linear",
    "strategy": "full",
    "context_length": CONTEXT,
    "patch_length": 6,
    "max_epochs": 2,
    "random_state": 0,
    "verbose": 0,
    "device": "cpu",
}
QUANTILE = {
    **FAST,
    "backbone": "lstm",
    "backbone_kwargs": {"hidden_size": 8},
    "head": "quantile",
    "head_kwargs": {"quantiles": [0.1, 0.5, 0.9]},
}


def _stack(series: dict, names=("series", "date")) -> pd.DataFrame:
    """Series keyed by name (or by tuples) as a pd-multiindex panel."""
    return pd.concat(series, names=list(names)).to_frame("price")


@pytest.fixture(scope="module")
def commodities():
    """Brent, WTI and Henry Hub (monthly, to 2026-07) and gold (monthly, to
    2026-06): overlapping periods, different starts and ends."""
    return {
        "brent": load_brent("monthly"),
        "wti": load_wti("monthly"),
        "henry_hub": load_henry_hub("monthly"),
        "gold": load_gold(),
    }


@pytest.fixture(scope="module")
def panel(commodities):
    return _stack(commodities)


@pytest.fixture(scope="module")
def recent(commodities):
    """The last 8 years of each series (cheaper to train on)."""
    return _stack({name: y.iloc[-96:] for name, y in commodities.items()})


def _weights(forecaster):
    return {k: v.clone() for k, v in forecaster.model_.state_dict().items()}


def _series(frame: pd.DataFrame, key) -> pd.DataFrame:
    return frame.xs(key, level=0)


# ------------------------------------------------------------------ fit
def test_one_model_forecasts_every_series_from_its_own_end(panel, commodities):
    before = panel.copy()
    forecaster = FineTunedPriceForecaster(**FAST).fit(panel, fh=FH)
    pd.testing.assert_frame_equal(panel, before)  # data untouched
    # one model for all series: sktime did not fit one copy per series
    assert not forecaster._is_vectorized
    assert not hasattr(forecaster, "forecasters_")
    assert forecaster.n_series_ == 4
    windows = sum(len(y) - CONTEXT - len(FH) + 1 for y in commodities.values())
    assert forecaster.training_history_["epoch"].tolist() == [1, 2]

    prediction = forecaster.predict()
    assert list(prediction.columns) == ["price"]
    assert prediction.index.names == ["series", "date"]
    assert list(prediction.index.droplevel(-1).unique()) == list(commodities)
    for name, y in commodities.items():
        expected = pd.period_range(y.index[-1] + 1, periods=3, freq="M")
        got = _series(prediction, name).index
        pd.testing.assert_index_equal(got, expected.rename("date"))
    # gold ends a month earlier than the oil and gas series
    assert _series(prediction, "gold").index[0] == pd.Period("2026-07", "M")
    assert _series(prediction, "brent").index[0] == pd.Period("2026-08", "M")
    assert np.isfinite(prediction.to_numpy()).all()
    assert windows > 1500  # the model saw every series' windows


def test_the_panel_forecast_is_the_models_forecast_of_each_context(recent):
    forecaster = FineTunedPriceForecaster(**FAST).fit(recent, fh=FH)
    prediction = forecaster.predict()
    for name in ["wti", "gold"]:
        context = _series(recent, name)["price"].to_numpy()[-CONTEXT:]
        expected = forecaster._raw_outputs(context)[0, :, 0]
        # one batch for all series vs one context: float32 rounding apart
        np.testing.assert_allclose(
            _series(prediction, name)["price"].to_numpy(), expected, rtol=1e-5
        )


def test_an_absolute_fh_asks_every_series_for_the_same_dates(commodities):
    y = _stack({"brent": commodities["brent"], "gold": commodities["gold"]})
    dates = pd.period_range(commodities["brent"].index[-1] + 1, periods=2, freq="M")
    forecaster = FineTunedPriceForecaster(**FAST).fit(y, fh=dates)
    assert forecaster.horizon_ == 3  # gold ends a month earlier
    prediction = forecaster.predict()
    for name in ("brent", "gold"):
        assert list(_series(prediction, name).index) == list(dates)


def test_quantiles_and_intervals_for_every_series(recent):
    forecaster = FineTunedPriceForecaster(**QUANTILE).fit(recent, fh=FH)
    point = forecaster.predict()
    quantiles = forecaster.predict_quantiles(alpha=[0.1, 0.5, 0.9])
    intervals = forecaster.predict_interval(coverage=[0.5, 0.8])
    for frame in (quantiles, intervals):
        pd.testing.assert_index_equal(frame.index, point.index)
    assert list(quantiles.columns) == [("price", 0.1), ("price", 0.5), ("price", 0.9)]
    np.testing.assert_allclose(quantiles[("price", 0.5)], point["price"])
    assert (quantiles[("price", 0.1)] <= quantiles[("price", 0.9)]).all()
    assert (
        intervals[("price", 0.8, "lower")] <= intervals[("price", 0.5, "lower")]
    ).all()
    assert (
        intervals[("price", 0.5, "upper")] <= intervals[("price", 0.8, "upper")]
    ).all()


def test_hierarchical_y(commodities):
    y = _stack(
        {
            ("oil", "brent"): commodities["brent"].iloc[-80:],
            ("oil", "wti"): commodities["wti"].iloc[-80:],
            ("gas", "henry_hub"): commodities["henry_hub"].iloc[-80:],
            ("metals", "gold"): commodities["gold"].iloc[-80:],
        },
        names=("group", "series", "date"),
    )
    forecaster = FineTunedPriceForecaster(**FAST).fit(y, fh=FH)
    assert not forecaster._is_vectorized
    assert forecaster._y_metadata["mtype"] == "pd_multiindex_hier"
    prediction = forecaster.predict()
    assert prediction.index.names == ["group", "series", "date"]
    assert len(prediction) == 4 * len(FH)
    gold = prediction.xs(("metals", "gold"), level=[0, 1])
    assert gold.index[0] == commodities["gold"].index[-1] + 1


def test_sktime_hierarchical_dates_with_ragged_ends():
    # daily dates in a MultiIndex carry no freq; series that end on other
    # days leave sktime's cutoff without one too: it is inferred
    y = _make_hierarchical(
        hierarchy_levels=(2, 3),
        n_columns=1,
        random_state=0,
        min_timepoints=30,
        max_timepoints=40,
    )
    y = y.drop(y.xs(("h0_1", "h1_2"), drop_level=False).index[-5:])
    forecaster = FineTunedPriceForecaster(**{**FAST, "context_length": 12}).fit(
        y, fh=FH
    )
    prediction = forecaster.predict()
    short = prediction.xs(("h0_1", "h1_2"), level=[0, 1]).index
    last = y.xs(("h0_1", "h1_2")).index[-1]
    expected = pd.date_range(last + pd.Timedelta(days=1), periods=3, freq="D")
    assert list(short) == list(expected)


def test_a_list_of_series_comes_back_as_a_list(commodities):
    frames = [
        commodities[name].iloc[-60:].to_frame("price") for name in ("brent", "wti")
    ]
    forecaster = FineTunedPriceForecaster(**FAST).fit(frames, fh=FH)
    assert forecaster.n_series_ == 2 and not forecaster._is_vectorized
    prediction = forecaster.predict()
    assert isinstance(prediction, list) and len(prediction) == 2
    for frame, forecast in zip(frames, prediction, strict=True):
        assert forecast.index[0] == frame.index[-1] + 1


def test_short_series_are_skipped_with_a_warning(commodities):
    y = _stack(
        {
            "brent": commodities["brent"].iloc[-60:],
            "wti": commodities["wti"].iloc[-(CONTEXT + 1) :],  # no window
            "henry_hub": commodities["henry_hub"].iloc[-10:],  # no forecast
        }
    )
    with pytest.warns(ShortSeriesWarning) as caught:
        forecaster = FineTunedPriceForecaster(**FAST).fit(y, fh=FH)
    message = str(caught[0].message)
    assert "2 of 3 series" in message and "'wti'" in message
    assert "'henry_hub'" in message and "cannot be forecast" in message
    assert "'brent'" not in message
    with pytest.warns(ShortSeriesWarning, match="left out of the forecasts"):
        prediction = forecaster.predict()
    assert list(prediction.index.droplevel(-1).unique()) == ["brent", "wti"]

    with pytest.raises(ValueError, match="no series of y is long enough"):
        FineTunedPriceForecaster(**FAST).fit(
            _stack({"wti": commodities["wti"].iloc[-20:]}), fh=FH
        )


def test_bad_panel_index_fails_plainly(recent):
    shuffled = pd.concat([recent.iloc[1:3], recent.iloc[:1], recent.iloc[3:]])
    with pytest.raises(ValueError, match="must increase within each series"):
        FineTunedPriceForecaster(**FAST).fit(shuffled, fh=FH)
    doubled = pd.concat([recent, recent.iloc[:1]])
    with pytest.raises(ValueError, match="duplicated \\(series, time\\)"):
        FineTunedPriceForecaster(**FAST).fit(doubled, fh=FH)
    # series may interleave (rows sorted by time): each is read in order
    interleaved = FineTunedPriceForecaster(**FAST).fit(
        recent.sort_index(level="date"), fh=FH
    )
    grouped = FineTunedPriceForecaster(**FAST).fit(recent, fh=FH)
    for forecaster in (interleaved, grouped):
        store = forecaster._store
        offsets = dict(zip(store.instances, store.offsets, strict=False))
        start = offsets["wti"]
        np.testing.assert_array_equal(
            store.values[start : start + 96], recent.xs("wti")["price"]
        )
    pd.testing.assert_index_equal(
        interleaved.predict().sort_index().index, grouped.predict().sort_index().index
    )


# ----------------------------------------------------- validation split
def test_training_validates_on_each_series_tail(recent, monkeypatch):
    calls = []
    original = PanelWindows.split

    def spy(self, fraction):
        calls.append(fraction)
        return original(self, fraction)

    monkeypatch.setattr(PanelWindows, "split", spy)
    FineTunedPriceForecaster(**FAST).fit(recent, fh=FH)
    assert calls == [FAST.get("validation_fraction", 0.2)]


# ------------------------------------------------------------------- X
@pytest.fixture(scope="module")
def flagged(commodities):
    """Three series plus a known-in-advance flag that adds three typical
    monthly moves of each series when it is on; and those effects."""
    rng = np.random.default_rng(0)
    ys, Xs, effects = {}, {}, {}
    for name in ("brent", "wti", "henry_hub"):
        y = commodities[name].iloc[-150:]
        flag = pd.Series((rng.random(len(y)) < 0.3).astype(float), index=y.index)
        effects[name] = 3 * y.diff().abs().mean()
        ys[name] = y + effects[name] * flag
        Xs[name] = pd.DataFrame({"flag": flag, "month": y.index.month.astype(float)})
    y = _stack(ys)
    X = pd.concat(Xs, names=["series", "date"])
    return y, X, effects


def _split(frame, n_test):
    """The last ``n_test`` rows of each series apart."""
    position = frame.groupby(level=0).cumcount(ascending=False)
    return frame[position >= n_test], frame[position < n_test]


def test_known_future_X_on_a_panel(flagged):
    y, X, effects = flagged
    y_train, _ = _split(y, 6)
    X_train, X_test = _split(X, 6)
    before = (y.copy(), X.copy())
    # the learned effect as it is: shrinkage moves the whole forecast
    settings = {**FAST, "max_epochs": 30, "patience": 10, "learning_rate": 0.01}
    forecaster = FineTunedPriceForecaster(**settings, shrinkage=0.0).fit(
        y_train, X_train, fh=FH
    )
    assert forecaster.covariate_names_ == ["flag", "month"]
    # one standardisation pooled over all series
    np.testing.assert_allclose(forecaster._store.scaling.loc, X_train.mean().to_numpy())
    on = forecaster.predict(X=X_test.assign(flag=1.0))
    off = forecaster.predict(X=X_test.assign(flag=0.0))
    pd.testing.assert_index_equal(on.index, off.index)
    for name in ("brent", "wti", "henry_hub"):
        shift = (_series(on, name) - _series(off, name))["price"].to_numpy()
        # learned in normalised units, the shift follows each window's
        # volatility: the right size, not the exact number of dollars
        effect = effects[name]
        assert np.all(shift > effect / 4) and np.all(shift < 2 * effect), name
    pd.testing.assert_frame_equal(y, before[0])
    pd.testing.assert_frame_equal(X, before[1])

    with pytest.raises(ValueError, match="predict needs X"):
        forecaster.predict()
    without_wti = X_test.drop(index="wti", level="series")
    with pytest.raises(ValueError, match="3 are missing or NaN, first \\[\\('wti'"):
        forecaster.predict(X=without_wti)
    with pytest.raises(ValueError, match="must be a panel too"):
        forecaster.predict(X=X_test.xs("wti"))


# --------------------------------------------------------------- update
def test_update_without_params_moves_every_series_origin(recent):
    y_train, y_new = _split(recent, 4)
    forecaster = FineTunedPriceForecaster(**FAST).fit(y_train, fh=FH)
    weights = _weights(forecaster)
    reference = FineTunedPriceForecaster(**FAST).fit(recent, fh=FH)
    new_before = y_new.copy()
    forecaster.update(y_new, update_params=False)
    pd.testing.assert_frame_equal(y_new, new_before)
    for name, tensor in _weights(forecaster).items():
        assert torch.equal(tensor, weights[name])
    # the state is that of a fit on all the data
    assert forecaster._store.equals(reference._store)
    prediction = forecaster.predict()
    pd.testing.assert_index_equal(prediction.index, reference.predict().index)
    # the forecasts read the newest values with the same weights
    moved = copy.deepcopy(reference)
    moved.model_.load_state_dict(forecaster.model_.state_dict())
    pd.testing.assert_frame_equal(prediction, moved.predict())


def test_update_some_series_and_fine_tune(recent):
    y_train, _ = _split(recent, 4)
    forecaster = FineTunedPriceForecaster(**FAST).fit(y_train, fh=FH)
    weights = _weights(forecaster)
    n_epochs = len(forecaster.training_history_)
    _, new = _split(recent.drop(index="henry_hub", level="series"), 4)
    forecaster.update(new, update_params=True)
    changed = [
        k for k, v in _weights(forecaster).items() if not torch.equal(v, weights[k])
    ]
    assert changed
    history = forecaster.training_history_
    assert len(history) > n_epochs and set(history["update"].dropna()) == {1}
    lengths = dict(
        zip(forecaster._store.instances, forecaster._store.lengths, strict=True)
    )
    assert lengths == {"brent": 96, "wti": 96, "henry_hub": 92, "gold": 96}
    prediction = forecaster.predict()
    henry_hub = _series(prediction, "henry_hub").index[0]
    assert henry_hub == y_train.xs("henry_hub").index[-1] + 1

    # observations the forecaster has already are left out (sktime's
    # evaluate(strategy="update") passes them again): nothing changes
    forecaster.update(new, update_params=False)
    assert forecaster._store.lengths.tolist() == [96, 96, 92, 96]
    pd.testing.assert_frame_equal(forecaster.predict(), prediction)
    # new observations must continue each series: a gap is refused
    brent = new.xs("brent", level="series")["price"]
    gap = _stack({"brent": brent.set_axis(brent.index + 6)})
    with pytest.raises(
        ValueError, match="continue each series.*'brent' ends at 2026-07, so its"
    ):
        forecaster.update(gap, update_params=False)
    unknown = _stack({"copper": load_gold().iloc[-3:] + 1e8})
    with pytest.raises(ValueError, match="series that fit did not see: 'copper'"):
        forecaster.update(unknown, update_params=False)


def test_update_with_X_on_a_panel(flagged):
    y, X, _ = flagged
    y_train, y_rest = _split(y, 6)
    y_new, _ = _split(y_rest, 3)
    X_train, X_rest = _split(X, 6)
    X_new, X_future = _split(X_rest, 3)
    forecaster = FineTunedPriceForecaster(**FAST).fit(y_train, X_train, fh=FH)
    with pytest.raises(ValueError, match="update needs X"):
        forecaster.update(y_new, update_params=False)
    forecaster.update(y_new, X_new, update_params=True)
    assert forecaster._store.covariates.shape == (len(y) - 9, 2)
    prediction = forecaster.predict(X=X_future)
    _, expected = _split(y, 3)
    pd.testing.assert_index_equal(prediction.index, expected.index)


# ---------------------------------------------------------- persistence
def test_panel_fits_pickle_and_save_in_the_safe_format(flagged, tmp_path):
    y, X, _ = flagged
    y_train, y_rest = _split(y, 6)
    X_train, X_rest = _split(X, 6)
    y_new, _ = _split(y_rest, 3)
    X_new, X_future = _split(X_rest, 3)
    forecaster = FineTunedPriceForecaster(**QUANTILE).fit(y_train, X_train, fh=FH)
    expected = forecaster.predict_quantiles(X=X_rest, alpha=[0.1, 0.5])

    unpickled = pickle.loads(pickle.dumps(forecaster))
    pd.testing.assert_frame_equal(
        unpickled.predict_quantiles(X=X_rest, alpha=[0.1, 0.5]), expected
    )

    forecaster.save(tmp_path, serialization_format="safetensors")
    loaded = FineTunedPriceForecaster.load(tmp_path)
    pd.testing.assert_frame_equal(
        loaded.predict_quantiles(X=X_rest, alpha=[0.1, 0.5]), expected
    )
    assert loaded.n_series_ == 3 and loaded._y_metadata["mtype"] == "pd-multiindex"
    assert set(vars(loaded)) == set(vars(forecaster))
    assert loaded._store.equals(forecaster._store)
    # both update alike
    for each in (forecaster, loaded):
        each.update(y_new, X_new, update_params=False)
    pd.testing.assert_frame_equal(
        loaded.predict(X=X_future), forecaster.predict(X=X_future)
    )


@pytest.mark.parametrize("ragged", [False, True], ids=["aligned", "ragged"])
def test_hierarchical_dates_survive_the_safe_format(tmp_path, ragged):
    # aligned: sktime's cutoff has a freq; ragged: it has none
    lengths = {"min_timepoints": 12, "max_timepoints": 15 if ragged else 12}
    y = _make_hierarchical(
        hierarchy_levels=(2, 2), n_columns=1, random_state=0, **lengths
    )
    if ragged:
        y = y.drop(y.xs(("h0_1", "h1_1"), drop_level=False).index[-2:])
    forecaster = FineTunedPriceForecaster(**{**FAST, "context_length": 6}).fit(y, fh=FH)
    assert (forecaster.cutoff.freq is None) == ragged
    forecaster.save(tmp_path, serialization_format="safetensors")
    loaded = FineTunedPriceForecaster.load(tmp_path)
    assert set(vars(loaded)) == set(vars(forecaster))
    assert loaded.cutoff.equals(forecaster.cutoff)
    assert loaded.cutoff.freq == forecaster.cutoff.freq
    pd.testing.assert_frame_equal(loaded.predict(), forecaster.predict())


# ------------------------------------------------------------- sktime
def test_the_tags_give_fit_the_whole_panel():
    tags = FineTunedPriceForecaster().get_tags()
    assert tags["y_inner_mtype"] == ["pd.Series", "pd-multiindex", "pd_multiindex_hier"]
    assert tags["X_inner_mtype"] == [
        "pd.DataFrame",
        "pd-multiindex",
        "pd_multiindex_hier",
    ]
    # sktime's panel scenario (10 points per series, fh=[1, 2, 3]) fits the
    # test parameters: check_estimator runs it (estimators/test_sktime_conformance.py)
    for params in FineTunedPriceForecaster.get_test_params():
        assert params["context_length"] + 3 <= 10
