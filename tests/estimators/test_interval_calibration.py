"""``calibrate_intervals``: the spread of the forecast quantiles around the
median is rescaled by the factor that fits the validation windows best."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pricetune import FineTunedPriceForecaster, FineTunedPriceRegressor
from pricetune.data.windows import series_windows

SETTINGS = {
    "backbone": "lstm",
    "backbone_kwargs": {"hidden_size": 8},
    "strategy": "full",
    "head_kwargs": {"quantiles": [0.1, 0.25, 0.5, 0.75, 0.9]},
    "context_length": 16,
    "patch_length": 4,
    "max_epochs": 2,
    "random_state": 0,
    "verbose": 0,
}
LEVELS = np.array([0.1, 0.25, 0.5, 0.75, 0.9])


@pytest.fixture(scope="module")
def y(brent_monthly):
    return brent_monthly.iloc[-200:]


@pytest.fixture(scope="module")
def pair(y):
    """The same fit (same seed, same training) without and with calibration."""
    plain = FineTunedPriceForecaster(**SETTINGS).fit(y, fh=[1, 2, 3])
    calibrated = FineTunedPriceForecaster(**SETTINGS, calibrate_intervals=True).fit(
        y, fh=[1, 2, 3]
    )
    return plain, calibrated


def test_the_median_stays_and_the_spread_scales(pair):
    plain, calibrated = pair
    assert plain.interval_scale_ == 1.0
    factor = calibrated.interval_scale_
    assert 0.25 <= factor <= 4.0 and factor != 1.0
    pd.testing.assert_series_equal(plain.predict(), calibrated.predict())
    alpha = [0.1, 0.5, 0.9]
    a = plain.predict_quantiles(alpha=alpha).to_numpy()
    b = calibrated.predict_quantiles(alpha=alpha).to_numpy()
    np.testing.assert_allclose(b[:, 1], a[:, 1])
    np.testing.assert_allclose(b - b[:, [1]], factor * (a - a[:, [1]]), rtol=1e-9)


def pinball(levels, quantiles, actual):
    """Mean quantile loss: quantiles (n, steps, levels), actual (n, steps)."""
    error = actual[:, :, None] - quantiles
    return float(np.mean(np.maximum(levels * error, (levels - 1) * error)))


def test_the_factor_fits_the_validation_windows_best(pair, y):
    plain, calibrated = pair
    windows = series_windows(y.to_numpy(dtype=float), 16, 3)
    _, validation = windows.split(0.2)
    contexts, targets, _ = windows.batch(validation)
    outputs = plain._raw_outputs(contexts)  # (n, 3, 5), uncalibrated
    median = outputs[:, :, [2]]
    # in units of each window's mean absolute one-step change, as fitted
    scale = np.abs(np.diff(contexts, axis=1)).mean(axis=1)[:, None, None]
    chosen = calibrated.interval_scale_

    def loss(factor):
        quantiles = median + factor * (outputs - median)
        return pinball(LEVELS, quantiles / scale, targets / scale[:, :, 0])

    for other in (0.25, 0.5, 1.0, 2.0, 4.0, chosen * 0.9, chosen * 1.1):
        assert loss(chosen) <= loss(other) + 1e-12, other


def test_update_calibrates_again(y):
    forecaster = FineTunedPriceForecaster(**SETTINGS, calibrate_intervals=True)
    forecaster.fit(y.iloc[:-24], fh=[1, 2, 3])
    calls = []
    original = forecaster._calibrate_intervals

    def counting(config, windows):
        calls.append(len(windows))
        original(config, windows)

    forecaster._calibrate_intervals = counting
    forecaster.update(y.iloc[-24:], update_params=True)
    assert calls == [len(y) - 16 - 3 + 1]
    forecaster.update(y.iloc[-24:-23].set_axis(y.index[-1:] + 1), update_params=False)
    assert len(calls) == 1  # no training, nothing to calibrate


def test_a_panel_calibrates_on_every_series_validation_windows():
    from pricetune.datasets import load_gold, load_wti

    panel = pd.concat(
        {"wti": load_wti("monthly").iloc[-120:], "gold": load_gold().iloc[-120:]},
        names=["series", "date"],
    ).to_frame("price")
    plain = FineTunedPriceForecaster(**SETTINGS).fit(panel, fh=[1, 2])
    calibrated = FineTunedPriceForecaster(**SETTINGS, calibrate_intervals=True)
    calibrated.fit(panel, fh=[1, 2])
    assert calibrated.interval_scale_ != 1.0
    pd.testing.assert_frame_equal(plain.predict(), calibrated.predict())
    a = plain.predict_interval(coverage=0.8).to_numpy()
    b = calibrated.predict_interval(coverage=0.8).to_numpy()
    np.testing.assert_allclose(
        b[:, 1] - b[:, 0], calibrated.interval_scale_ * (a[:, 1] - a[:, 0])
    )


def test_the_regressor_calibrates_too(y):
    values = y.to_numpy(dtype=float)
    X = np.lib.stride_tricks.sliding_window_view(values[:-3], 16)
    targets = np.lib.stride_tricks.sliding_window_view(values[16:], 3)
    regressor = FineTunedPriceRegressor(
        **{k: v for k, v in SETTINGS.items() if k != "context_length"},
        calibrate_intervals=True,
    ).fit(X, targets)
    assert 0.25 <= regressor.interval_scale_ <= 4.0
    assert regressor.interval_scale_ != 1.0


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"validation_fraction": 0.0}, "set validation_fraction above 0"),
        ({"head": "linear", "head_kwargs": None}, "'linear' gives point forecasts"),
    ],
)
def test_calibration_needs_validation_windows_and_quantiles(y, settings, message):
    forecaster = FineTunedPriceForecaster(
        **{**SETTINGS, **settings}, calibrate_intervals=True
    )
    with pytest.raises(ValueError, match=message):
        forecaster.fit(y, fh=[1])


# ------------------------------------------------- calibrate_intervals="conformal"
def test_conformal_margins_by_hand():
    """Zero-width intervals at 0 for two windows of scale 1 and 2: a pair's
    margin is the rank ceil((n + 1)(1 - 2q)) / n score, |y| / scale."""
    from pricetune.nn.conformal import apply_margins, conformal_margins

    levels = [0.25, 0.5, 0.75]
    outputs = np.zeros((4, 1, 3))
    targets = np.array([[1.0], [-3.0], [2.0], [-8.0]])
    scale = np.array([[1.0], [1.0], [2.0], [2.0]])
    margins = conformal_margins(levels, outputs, targets, scale)
    # scores 1, 3, 1, 4: the ceil(5 * 0.5) = 3rd smallest, 3
    np.testing.assert_array_equal(margins, [[-3.0, 0.0, 3.0]])
    shifted = apply_margins(levels, outputs, margins, scale)
    np.testing.assert_array_equal(shifted[:, 0, 0], [-3.0, -3.0, -6.0, -6.0])
    np.testing.assert_array_equal(shifted[:, 0, 1], 0.0)
    with pytest.raises(ValueError, match="levels in pairs q and 1 - q"):
        conformal_margins([0.1, 0.5, 0.8], outputs, targets, scale)


def test_the_margin_is_the_kth_smallest_score_counted_exactly():
    """n = 35 at 80%: k = ceil(36 * 0.8) = 29, where a quantile at k / n
    rounds to the 30th; too few windows for a level is a warning."""
    from pricetune.nn.conformal import conformal_margins

    scores = np.arange(1.0, 36.0)  # the 29th smallest is 29
    outputs = np.zeros((35, 1, 3))
    margins = conformal_margins(
        [0.1, 0.5, 0.9], outputs, scores[:, None], np.ones((35, 1))
    )
    assert margins[0, 2] == 29.0
    with pytest.warns(UserWarning, match="4 held-out windows are too few .* 0.02-0.98"):
        margins = conformal_margins(
            [0.02, 0.5, 0.98], np.zeros((4, 1, 3)), scores[:4, None], np.ones((4, 1))
        )
    assert margins[0, 2] == 4.0  # the largest score


def test_without_a_median_level_intervals_stop_at_the_interpolated_median():
    from pricetune.nn.conformal import apply_margins

    levels = [0.1, 0.9]
    outputs = np.array([[[-1.0, 1.0]]])  # the interpolated median is 0
    narrowed = apply_margins(levels, outputs, np.array([[1.5, -1.5]]), np.ones((1, 1)))
    np.testing.assert_array_equal(narrowed[0, 0], [0.0, 0.0])


def test_narrowed_intervals_stop_at_the_median_and_stay_in_order():
    from pricetune.nn.conformal import apply_margins

    levels = [0.1, 0.25, 0.5, 0.75, 0.9]
    outputs = np.array([[[-2.0, -1.0, 0.0, 1.0, 2.0]]])
    margins = np.array([[1.5, 1.5, 0.0, -1.5, -1.5]])  # narrowing by 1.5
    shifted = apply_margins(levels, outputs, margins, np.ones((1, 1)))
    np.testing.assert_array_equal(shifted[0, 0], [-0.5, 0.0, 0.0, 0.0, 0.5])


@pytest.fixture(scope="module")
def conformal(y):
    return FineTunedPriceForecaster(**SETTINGS, calibrate_intervals="conformal").fit(
        y, fh=[1, 2, 3]
    )


def test_conformal_intervals_cover_the_validation_windows(pair, conformal, y):
    """On the windows they were calibrated on, the conformal intervals cover
    at least their nominal share at every step (the finite-sample rank makes
    this exact); the median does not move."""
    plain, _ = pair
    assert conformal.interval_scale_ == 1.0
    assert conformal.conformal_margins_.shape == (3, len(LEVELS))
    pd.testing.assert_series_equal(plain.predict(), conformal.predict())
    windows = series_windows(y.to_numpy(dtype=float), 16, 3)
    _, validation = windows.split(0.2)
    contexts, targets, _ = windows.batch(validation)
    outputs = conformal._raw_outputs(contexts)  # (n, 3, 5), calibrated
    for low, high, nominal in ((0, 4, 0.8), (1, 3, 0.5)):
        inside = (outputs[:, :, low] <= targets) & (targets <= outputs[:, :, high])
        assert (inside.mean(axis=0) >= nominal).all(), inside.mean(axis=0)
    # the margins widen or narrow symmetrically, and the median's is 0
    margins = conformal.conformal_margins_
    np.testing.assert_array_equal(margins[:, 2], 0.0)
    np.testing.assert_array_equal(margins[:, 0], -margins[:, 4])


def test_conformal_margins_survive_the_safe_format(conformal, tmp_path):
    conformal.save(tmp_path / "model", serialization_format="safetensors")
    loaded = FineTunedPriceForecaster.load(tmp_path / "model")
    np.testing.assert_array_equal(
        loaded.conformal_margins_, conformal.conformal_margins_
    )
    pd.testing.assert_frame_equal(
        loaded.predict_interval(coverage=0.8), conformal.predict_interval(coverage=0.8)
    )


def test_conformal_intervals_of_an_ensemble_on_a_panel_pickle_and_update():
    import pickle

    from pricetune.datasets import load_gold, load_wti

    panel = pd.concat(
        {"wti": load_wti("monthly").iloc[-120:], "gold": load_gold().iloc[-120:]},
        names=["series", "date"],
    ).to_frame("price")
    forecaster = FineTunedPriceForecaster(
        **SETTINGS, n_ensemble=2, calibrate_intervals="conformal"
    )
    forecaster.fit(panel, fh=[1, 2])
    margins = forecaster.conformal_margins_.copy()
    assert margins.shape == (2, len(LEVELS)) and np.isfinite(margins).all()
    intervals = forecaster.predict_interval(coverage=0.8)
    low, high = intervals.to_numpy().T
    assert (low <= forecaster.predict().to_numpy()[:, 0]).all()
    assert (forecaster.predict().to_numpy()[:, 0] <= high).all()
    copy = pickle.loads(pickle.dumps(forecaster))
    pd.testing.assert_frame_equal(copy.predict_interval(coverage=0.8), intervals)
    # update with training calibrates again, on the windows it has now
    dates = panel.index.get_level_values("date")
    new = panel.copy()
    new.index = pd.MultiIndex.from_arrays(
        [panel.index.get_level_values("series"), dates + 120], names=panel.index.names
    )
    forecaster.update(new.groupby(level="series").head(6), update_params=True)
    assert not np.array_equal(forecaster.conformal_margins_, margins)


def test_the_regressor_takes_conformal_intervals(y):
    values = y.to_numpy(dtype=float)
    X = np.lib.stride_tricks.sliding_window_view(values[:-3], 16)
    targets = np.lib.stride_tricks.sliding_window_view(values[16:], 3)
    regressor = FineTunedPriceRegressor(
        **{k: v for k, v in SETTINGS.items() if k != "context_length"},
        calibrate_intervals="conformal",
    ).fit(X, targets)
    assert regressor.conformal_margins_.shape == (3, len(LEVELS))
    assert np.isfinite(regressor.conformal_margins_).all()
