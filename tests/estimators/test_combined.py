"""``CombinedForecaster``: sktime's conformance suite, weights learned only
from values before each inner cut-off (and the cut-offs where documented),
inverse-MAE weights worked out by hand, shrinkage, intervals, panels, update
and one-line errors for bad parameters."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sktime.forecasting.base import BaseForecaster
from sktime.forecasting.naive import NaiveForecaster
from sktime.utils.estimator_checks import check_estimator

from pricetune import CombinedForecaster


def last_drift() -> list:
    """Fresh members: ``set_params(drift__...)`` changes the member itself."""
    return [("last", NaiveForecaster("last")), ("drift", NaiveForecaster("drift"))]


def _monthly(values, start="2000-01") -> pd.Series:
    values = np.asarray(values, dtype=float)
    index = pd.period_range(start, periods=len(values), freq="M")
    return pd.Series(values, index=index, name="price")


@pytest.fixture(scope="module")
def walk() -> pd.Series:
    rng = np.random.default_rng(0)
    return _monthly(50 + rng.normal(size=60).cumsum())


class Spy(BaseForecaster):
    """No-change forecaster that writes down the last index it was fitted on."""

    _tags = {"y_inner_mtype": "pd.Series", "requires-fh-in-fit": False}
    seen: list = []  # shared by every clone

    def __init__(self):
        super().__init__()

    def _fit(self, y, X, fh):
        Spy.seen.append((len(y), y.index[-1], float(y.max())))
        self._last = y.iloc[-1]
        return self

    def _predict(self, fh, X):
        index = fh.to_absolute_index(self.cutoff)
        return pd.Series(self._last, index=index)

    def _update(self, y, X=None, update_params=True):
        self._last = y.iloc[-1]
        return self


class Fails(BaseForecaster):
    """Raises in fit on series shorter than ``min_length``."""

    _tags = {"y_inner_mtype": "pd.Series", "requires-fh-in-fit": False}

    def __init__(self, min_length=10**9):
        self.min_length = min_length
        super().__init__()

    def _fit(self, y, X, fh):
        if len(y) < self.min_length:
            raise RuntimeError("too short for me")
        self._last = y.iloc[-1]
        return self

    def _predict(self, fh, X):
        return pd.Series(self._last, index=fh.to_absolute_index(self.cutoff))


# ------------------------------------------------------------ conformance
@pytest.mark.parametrize("number", [0, 1, 2])
def test_sktime_check_estimator(number):
    params = CombinedForecaster.get_test_params()[number]
    results = check_estimator(
        CombinedForecaster(**params), raise_exceptions=True, verbose=False
    )
    failed = {name: result for name, result in results.items() if result != "PASSED"}
    assert not failed
    assert len(results) > 100


def test_import_pricetune_stays_light():
    code = (
        "import sys, pricetune; assert 'sktime' not in sys.modules; "
        "pricetune.CombinedForecaster; assert 'sktime' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_docstring_example_runs():
    import doctest

    import pricetune.estimators.combined as module

    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = doctest.DocTestFinder().find(module.CombinedForecaster)
    assert any(test.examples for test in tests)
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_get_and_set_nested_params():
    forecaster = CombinedForecaster(last_drift(), shrinkage=0.5)
    params = forecaster.get_params()
    assert params["last__strategy"] == "last" and params["shrinkage"] == 0.5
    forecaster.set_params(drift__strategy="mean", shrinkage=0.25)
    assert forecaster.get_params()["drift__strategy"] == "mean"
    assert forecaster.shrinkage == 0.25


def test_pred_int_tag_follows_the_members():
    assert CombinedForecaster(last_drift()).get_tag("capability:pred_int")
    with_spy = CombinedForecaster([("last", NaiveForecaster()), ("spy", Spy())])
    assert not with_spy.get_tag("capability:pred_int")


# ------------------------------------------- only data before the cut-offs
def test_inner_fits_end_at_the_documented_cut_offs(walk):
    Spy.seen.clear()
    y = walk.copy()
    CombinedForecaster([("spy", Spy())], n_origins=3).fit(y, fh=[1, 2, 3])
    n, h = len(y), 3
    lengths = [n - k * h for k in (3, 2, 1)] + [n]  # oldest origin first, then all
    assert [seen[0] for seen in Spy.seen] == lengths
    assert [seen[1] for seen in Spy.seen] == [y.index[m - 1] for m in lengths]

    Spy.seen.clear()
    y.iloc[-4:] = 1e6  # after every inner cut-off but the last (n - 2)
    forecaster = CombinedForecaster([("spy", Spy())], n_origins=4, step=2)
    forecaster.fit(y, fh=[1, 2, 3])
    inner = Spy.seen[:-1]
    assert [seen[0] for seen in inner] == [n - k * 2 for k in (4, 3, 2, 1)]
    assert [seen[2] == 1e6 for seen in inner] == [False, False, False, True]
    assert list(forecaster.inner_errors_.index) == [y.index[s[0] - 1] for s in inner]


def test_weights_ignore_values_after_the_cut_off(walk):
    n = 45
    wild = pd.concat([walk.iloc[:n], walk.iloc[n:] * 10 - 400])
    make = lambda: CombinedForecaster(last_drift())  # noqa: E731
    clean = make().fit(walk.iloc[:n], fh=[1, 2, 3])
    cut = make().fit(wild.iloc[:n], fh=[1, 2, 3])
    pd.testing.assert_series_equal(clean.weights_, cut.weights_)
    pd.testing.assert_frame_equal(clean.inner_errors_, cut.inner_errors_)
    # the later values do move the weights once they are in the training data
    full = make().fit(wild, fh=[1, 2, 3])
    assert not np.allclose(full.weights_, clean.weights_)


# ------------------------------------------------------------------ weights
def test_an_exact_member_gets_all_the_weight():
    y = _monthly(3.0 * np.arange(40) + 7)
    forecaster = CombinedForecaster(last_drift()).fit(y, fh=[1, 2])
    assert forecaster.weights_["drift"] == 1.0 and forecaster.weights_["last"] == 0
    assert forecaster.inner_errors_["drift"].max() < 1e-9
    np.testing.assert_allclose(forecaster.predict(), [127.0, 130.0])


def test_inverse_mae_weights_by_hand():
    t = np.arange(40.0)
    y = _monthly(t + np.where(t % 2 == 0, 3.0, -3.0))  # trend + zig-zag
    h, n = 3, len(y)
    forecaster = CombinedForecaster(last_drift(), n_origins=3).fit(y, fh=[1, 2, 3])

    values, mae = y.to_numpy(), {"last": [], "drift": []}
    for k in (3, 2, 1):
        end = n - k * h
        train, truth = values[:end], values[end : end + h]
        slope = (train[-1] - train[0]) / (end - 1)
        mae["last"].append(np.abs(truth - train[-1]).mean())
        mae["drift"].append(np.abs(truth - train[-1] - slope * np.arange(1, 4)).mean())
    for name in mae:
        np.testing.assert_allclose(forecaster.inner_errors_[name], mae[name])
    inverse = {name: 1 / np.mean(errors) for name, errors in mae.items()}
    expected = {name: v / sum(inverse.values()) for name, v in inverse.items()}
    np.testing.assert_allclose(forecaster.weights_["last"], expected["last"])
    np.testing.assert_allclose(forecaster.weights_["drift"], expected["drift"])
    assert forecaster.weights_["drift"] > forecaster.weights_["last"]
    assert forecaster.weights_source_ == "inner origins"


def test_equal_and_best_weights(walk):
    members = [*last_drift(), ("mean", NaiveForecaster("mean"))]
    equal = CombinedForecaster(members, weights="equal").fit(walk, fh=[1, 2])
    np.testing.assert_allclose(equal.weights_, 1 / 3)
    best = CombinedForecaster(members, weights="best").fit(walk, fh=[1, 2])
    winner = best.inner_errors_.mean().idxmin()
    assert best.weights_[winner] == 1.0 and best.weights_.sum() == 1.0


def test_too_short_falls_back_to_equal_weights():
    y = _monthly(np.arange(10.0))
    forecaster = CombinedForecaster(last_drift(), shrinkage="auto").fit(y, fh=[1, 2, 3])
    assert forecaster.weights_source_ == "equal (too short)"
    np.testing.assert_allclose(forecaster.weights_, 0.5)
    assert forecaster.shrinkage_ == 0.0 and forecaster.inner_errors_.empty
    # min_train sets the bar: 10 - 3 * 3 = 1 value before the first cut-off
    ok = CombinedForecaster(last_drift(), min_train=1).fit(y, fh=[1, 2, 3])
    assert ok.weights_source_ == "inner origins"


def test_members_that_fail_get_weight_zero(walk):
    members = [*last_drift(), ("fussy", Fails(min_length=len(walk)))]
    forecaster = CombinedForecaster(members).fit(walk, fh=[1, 2])
    assert forecaster.failed_members_ == {"fussy": "RuntimeError: too short for me"}
    assert forecaster.weights_["fussy"] == 0
    assert forecaster.weights_.sum() == pytest.approx(1)
    assert [name for name, _ in forecaster.forecasters_] == ["last", "drift"]
    assert forecaster.predict().notna().all()


def test_every_member_failing_is_a_one_line_error(walk):
    forecaster = CombinedForecaster([("a", Fails()), ("b", Fails())])
    with pytest.raises(
        ValueError, match="every member failed.*a: RuntimeError"
    ) as error:
        forecaster.fit(walk, fh=[1, 2])
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------- shrinkage
def test_shrinkage_one_gives_the_last_value_and_zero_the_combination(walk):
    fh = [1, 2, 3]
    full = CombinedForecaster(last_drift(), shrinkage=1.0).fit(walk, fh=fh)
    np.testing.assert_allclose(full.predict(), walk.iloc[-1])

    none = CombinedForecaster(last_drift(), shrinkage=0.0).fit(walk, fh=fh)
    members = {n: f.clone().fit(walk, fh=fh).predict() for n, f in last_drift()}
    expected = sum(none.weights_[name] * pred for name, pred in members.items())
    np.testing.assert_allclose(none.predict(), expected)

    half = CombinedForecaster(last_drift(), shrinkage=0.5).fit(walk, fh=fh)
    np.testing.assert_allclose(half.predict(), 0.5 * expected + 0.5 * walk.iloc[-1])


def test_no_inner_origins_fits_each_member_once_and_averages(walk):
    Spy.seen.clear()
    fh = [1, 2, 3]
    members = [("spy", Spy()), ("drift", NaiveForecaster("drift"))]
    fixed = CombinedForecaster(members, n_origins=0, weights="equal", shrinkage=0.25)
    fixed.fit(walk, fh=fh)
    # one fit of the spy, on the whole series: no inner origins
    assert Spy.seen == [(len(walk), walk.index[-1], float(walk.max()))]
    assert fixed.weights_source_ == "equal (no inner origins)"
    np.testing.assert_allclose(fixed.weights_, 0.5)
    assert fixed.shrinkage_ == 0.25 and fixed.inner_errors_.empty
    drift = NaiveForecaster("drift").fit(walk, fh=fh).predict()
    average = (drift + walk.iloc[-1]) / 2
    np.testing.assert_allclose(fixed.predict(), 0.75 * average + 0.25 * walk.iloc[-1])


def test_auto_shrinkage_picks_the_lowest_inner_error():
    # flat for the last 30 months: no-change is exact at every inner origin,
    # the long-run mean is not, so with equal weights shrinking most is best
    y = _monthly(np.r_[np.full(20, 10.0), np.full(30, 50.0)])
    members = [("last", NaiveForecaster()), ("mean", NaiveForecaster("mean"))]
    fh = [1, 2, 3]
    forecaster = CombinedForecaster(members, weights="equal", shrinkage="auto")
    forecaster.fit(y, fh=fh)

    scores = {}
    for s in (0.0, 0.25, 0.5, 0.75):
        errors = []
        for k in (3, 2, 1):
            train = y.iloc[: len(y) - 3 * k]
            truth = y.iloc[len(y) - 3 * k :][:3].to_numpy()
            combined = np.mean(
                [m.clone().fit(train, fh=fh).predict().to_numpy() for _, m in members],
                axis=0,
            )
            errors.append(np.abs((1 - s) * combined + s * train.iloc[-1] - truth))
        scores[s] = np.mean(errors)
    assert forecaster.shrinkage_ == min(scores, key=scores.get) == 0.75
    combined = np.mean([m.clone().fit(y, fh=fh).predict() for _, m in members], axis=0)
    np.testing.assert_allclose(forecaster.predict(), 0.25 * combined + 0.75 * 50.0)


def test_update_moves_the_last_value(walk):
    forecaster = CombinedForecaster(last_drift(), shrinkage=1.0)
    forecaster.fit(walk.iloc[:-6], fh=[1, 2])
    weights = forecaster.weights_.copy()
    forecaster.update(walk.iloc[-6:])
    assert forecaster.cutoff[0] == walk.index[-1]
    np.testing.assert_allclose(forecaster.predict(), walk.iloc[-1])
    pd.testing.assert_series_equal(forecaster.weights_, weights)


# ----------------------------------------------------- intervals and panels
def test_intervals_are_the_weighted_member_quantiles(brent_monthly):
    y = brent_monthly.iloc[-120:]
    fh = [1, 2, 3]
    forecaster = CombinedForecaster(last_drift()).fit(y, fh=fh)
    interval = forecaster.predict_interval(coverage=0.8)
    median = forecaster.predict_quantiles(alpha=[0.5]).iloc[:, 0]
    lower, upper = interval.iloc[:, 0], interval.iloc[:, 1]
    assert (lower <= median).all() and (median <= upper).all() and (lower < upper).all()

    members = {
        n: f.clone().fit(y, fh=fh).predict_quantiles(alpha=[0.1, 0.9])
        for n, f in last_drift()
    }
    expected = sum(forecaster.weights_[n] * q.to_numpy() for n, q in members.items())
    np.testing.assert_allclose(interval.to_numpy(), expected)

    # shrinkage moves the quantiles with the point forecast: same width
    shrunk = CombinedForecaster(last_drift(), shrinkage=1.0).fit(y, fh=fh)
    np.testing.assert_allclose(shrunk.predict(), y.iloc[-1])
    moved = shrunk.predict_interval(coverage=0.8).to_numpy()
    width = (interval.iloc[:, 1] - interval.iloc[:, 0]).to_numpy()
    np.testing.assert_allclose(moved[:, 1] - moved[:, 0], width)
    shift = (shrunk.predict() - forecaster.predict()).to_numpy()
    np.testing.assert_allclose(moved - interval.to_numpy(), np.c_[shift, shift])


def _metals():
    from pricetune.datasets import load_pinksheet

    panel = load_pinksheet(["COPPER", "CRUDE_BRENT"], form="panel")
    return panel[panel.index.get_level_values("date") >= pd.Period("2005-01", "M")]


def test_a_panel_gets_one_set_of_weights_from_scaled_errors():
    panel = _metals()
    forecaster = CombinedForecaster(last_drift(), n_origins=2).fit(panel, fh=[1, 2])
    y_pred = forecaster.predict()
    assert y_pred.index.nlevels == 2 and len(y_pred) == 4
    assert set(y_pred.index.get_level_values(0)) == {"COPPER", "CRUDE_BRENT"}
    # by hand: each member's errors at the inner origins, each series'
    # divided by its mean absolute one-step change up to that origin
    dates = panel.index.get_level_values("date").unique().sort_values()
    errors = {name: [] for name, _ in last_drift()}
    for k in (2, 1):
        cutoff = dates[len(dates) - 2 * k - 1]
        for series in ("COPPER", "CRUDE_BRENT"):
            values = panel.loc[series]["price"]
            train, truth = values.loc[:cutoff], values.loc[cutoff:].iloc[1:3]
            scale = train.diff().abs().mean()
            for name, member in last_drift():
                pred = member.clone().fit(train, fh=[1, 2]).predict()
                errors[name] += list(np.abs(pred.to_numpy() - truth.to_numpy()) / scale)
    inverse = {name: 1 / np.mean(e) for name, e in errors.items()}
    total = sum(inverse.values())
    for name, value in inverse.items():
        assert forecaster.weights_[name] == pytest.approx(value / total)
    # the combination of each series' members' forecasts, with those weights
    for series in ("COPPER", "CRUDE_BRENT"):
        values = panel.loc[series]["price"]
        expected = sum(
            forecaster.weights_[name] * member.clone().fit(values, fh=[1, 2]).predict()
            for name, member in last_drift()
        )
        np.testing.assert_allclose(y_pred.loc[series].iloc[:, 0], expected)
    interval = forecaster.predict_interval(coverage=0.8)
    assert (interval.iloc[:, 0] < interval.iloc[:, 1]).all()


def test_shrinkage_on_a_panel_moves_each_series_to_its_own_last_value():
    panel = _metals()
    shrunk = CombinedForecaster(last_drift(), shrinkage=1.0).fit(panel, fh=[1, 2])
    y_pred = shrunk.predict()
    for series in ("COPPER", "CRUDE_BRENT"):
        last = panel.loc[series]["price"].iloc[-1]
        np.testing.assert_allclose(y_pred.loc[series].iloc[:, 0], last)


def test_a_global_member_is_fitted_once_per_inner_origin_on_the_whole_panel():
    from pricetune import FineTunedPriceForecaster

    seen = []

    class Recording(FineTunedPriceForecaster):
        def _fit(self, y, X=None, fh=None):
            seen.append(sorted(set(y.index.get_level_values(0))))
            return super()._fit(y, X=X, fh=fh)

    network = Recording(
        backbone="none",
        strategy="full",
        context_length=12,
        patch_length=4,
        max_epochs=1,
        steps_per_epoch=2,
        random_state=0,
        verbose=0,
    )
    members = [("last", NaiveForecaster("last")), ("network", network)]
    forecaster = CombinedForecaster(members, n_origins=2).fit(_metals(), fh=[1, 2])
    # two inner origins and the final fit, each on both series at once
    assert seen == [["COPPER", "CRUDE_BRENT"]] * 3
    assert np.isfinite(forecaster.predict().to_numpy()).all()
    assert forecaster.weights_["network"] > 0


# --------------------------------------------------------------- bad inputs
BAD = [
    ({"forecasters": []}, ValueError, "forecasters"),
    ({"forecasters": [NaiveForecaster()]}, TypeError, "forecasters"),
    ({"forecasters": [("a", object())]}, TypeError, "forecasters"),
    ({"forecasters": [("a", NaiveForecaster())] * 2}, ValueError, "duplicate"),
    ({"shrinkage": 1.5}, ValueError, "shrinkage"),
    ({"shrinkage": -0.1}, ValueError, "shrinkage"),
    ({"shrinkage": "big"}, ValueError, "shrinkage"),
    ({"weights": "median"}, ValueError, "weights"),
    ({"n_origins": -1}, ValueError, "n_origins"),
    ({"n_origins": 0}, ValueError, "weights='equal'"),
    ({"n_origins": 0, "weights": "equal", "shrinkage": "auto"}, ValueError, "numeric"),
    ({"step": 1.5}, TypeError, "step"),
    ({"horizon": -1}, ValueError, "horizon"),
]


@pytest.mark.parametrize(("params", "kind", "word"), BAD, ids=[b[2] for b in BAD])
def test_bad_parameters_fail_in_fit_with_one_line(walk, params, kind, word):
    forecaster = CombinedForecaster(**{"forecasters": last_drift(), **params})
    with pytest.raises(kind, match=word) as error:
        forecaster.fit(walk, fh=[1, 2])
    assert "\n" not in str(error.value)
