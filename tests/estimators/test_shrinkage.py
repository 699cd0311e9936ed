"""``shrinkage``: every forecast moves that share of the way from the
network's median to the context's last value, quantiles alike, for one
network, an ensemble, a point head and a panel, after ``update`` too; it
survives saving, and is the forecaster's alone."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from pricetune import (
    FineTunedPriceDirectionClassifier,
    FineTunedPriceForecaster,
    FineTunedPriceRegressor,
)

PARAMS = dict(
    backbone="lstm",
    backbone_kwargs={"hidden_size": 8},
    strategy="full",
    context_length=12,
    patch_length=4,
    max_epochs=2,
    random_state=0,
    verbose=0,
)
ALPHA = [0.1, 0.5, 0.9]


@pytest.fixture(scope="module")
def y(brent_monthly):
    return brent_monthly.iloc[-160:]


def _fit(y, **params):
    return FineTunedPriceForecaster(**{**PARAMS, **params}).fit(y, fh=[1, 2, 3])


@pytest.mark.parametrize(
    "shape", [{"n_ensemble": 1}, {"n_ensemble": 2}], ids=["one", "ensemble"]
)
def test_forecasts_move_toward_the_last_value_by_the_share(y, shape):
    plain = _fit(y, shrinkage=0.0, **shape)
    last = float(y.iloc[-1])
    base = plain.predict().to_numpy()
    base_q = plain.predict_quantiles(alpha=ALPHA).to_numpy()
    assert not np.allclose(base, last)  # the network does move
    for share in (0.25, 0.5, 1.0):
        shrunk = _fit(y, shrinkage=share, **shape)
        assert shrunk.shrinkage_ == share
        expected = base + share * (last - base)
        np.testing.assert_allclose(shrunk.predict().to_numpy(), expected, rtol=1e-12)
        quantiles = shrunk.predict_quantiles(alpha=ALPHA).to_numpy()
        # every level moves as far as the median: the intervals keep their width
        np.testing.assert_allclose(
            quantiles, base_q + (expected - base)[:, None], rtol=1e-12
        )
    # share 1.0 (the last one) gave the last value itself: expected == last


def test_the_default_keeps_a_quarter_of_the_networks_move(y):
    assert FineTunedPriceForecaster().get_params()["shrinkage"] == 0.75
    default = FineTunedPriceForecaster(**PARAMS, n_ensemble=1).fit(y, fh=[1, 2])
    plain = FineTunedPriceForecaster(**PARAMS, n_ensemble=1, shrinkage=0.0).fit(
        y, fh=[1, 2]
    )
    last = float(y.iloc[-1])
    np.testing.assert_allclose(
        default.predict().to_numpy() - last,
        0.25 * (plain.predict().to_numpy() - last),
        rtol=1e-9,
    )


def test_a_point_head_is_shrunk_too(y):
    plain = _fit(y, head="linear", shrinkage=0.0)
    shrunk = _fit(y, head="linear", shrinkage=0.5)
    last = float(y.iloc[-1])
    np.testing.assert_allclose(
        shrunk.predict().to_numpy(),
        0.5 * (plain.predict().to_numpy() + last),
        rtol=1e-12,
    )


def test_each_series_of_a_panel_moves_toward_its_own_last_value():
    from pricetune.datasets import load_pinksheet

    panel = load_pinksheet(["COPPER", "CRUDE_BRENT"], form="panel")
    panel = panel.groupby(level=0, group_keys=False).tail(120)
    plain = _fit(panel, shrinkage=0.0).predict()
    shrunk = _fit(panel, shrinkage=0.5).predict()
    last = panel.groupby(level=0).tail(1).droplevel(-1).iloc[:, 0]
    step_last = last.reindex(plain.index.get_level_values(0)).to_numpy()
    np.testing.assert_allclose(
        shrunk.to_numpy()[:, 0],
        step_last + 0.5 * (plain.to_numpy()[:, 0] - step_last),
        rtol=1e-12,
    )


def test_a_forecast_with_covariates_moves_as_a_whole(y):
    X = pd.DataFrame({"month": y.index.month.astype(float)}, index=y.index)
    fits = [
        FineTunedPriceForecaster(**PARAMS, shrinkage=share).fit(
            y.iloc[:-3], X.iloc[:-3], fh=[1, 2, 3]
        )
        for share in (0.0, 0.5)
    ]
    plain, shrunk = (forecaster.predict(X=X.iloc[-3:]) for forecaster in fits)
    last = float(y.iloc[-4])
    np.testing.assert_allclose(
        shrunk.to_numpy(), last + 0.5 * (plain.to_numpy() - last), rtol=1e-9
    )


@pytest.mark.parametrize("update_params", [False, True])
def test_after_update_forecasts_move_toward_the_new_last_value(y, update_params):
    plain, shrunk = _fit(y, shrinkage=0.0), _fit(y, shrinkage=0.5)
    new = pd.Series([float(y.iloc[-1]) * 1.2], index=y.index[-1:] + 1)
    for forecaster in (plain, shrunk):
        forecaster.update(new, update_params=update_params)
    assert shrunk.shrinkage_ == 0.5
    last = float(new.iloc[0])
    np.testing.assert_allclose(
        shrunk.predict().to_numpy(),
        last + 0.5 * (plain.predict().to_numpy() - last),
        rtol=1e-9,
    )


def test_a_saved_forecaster_keeps_its_shrinkage(y, tmp_path):
    forecaster = _fit(y, shrinkage=0.3)
    directory = forecaster.save(tmp_path / "model", serialization_format="safetensors")
    loaded = FineTunedPriceForecaster.load(directory)
    assert loaded.shrinkage_ == 0.3
    pd.testing.assert_series_equal(loaded.predict(), forecaster.predict())


@pytest.mark.parametrize(
    "value, error, message",
    [
        (1.5, ValueError, "shrinkage must be in [0, 1], got 1.5"),
        (-0.1, ValueError, "shrinkage must be in [0, 1], got -0.1"),
        ("half", TypeError, "shrinkage must be a number, got 'half'"),
        (float("nan"), ValueError, "shrinkage must be finite"),
    ],
)
def test_bad_values_are_one_line_errors(y, value, error, message):
    original = y.copy()
    with pytest.raises(error, match=re.escape(message)):
        _fit(y, shrinkage=value)
    pd.testing.assert_series_equal(y, original)


def test_the_regressor_and_classifier_have_no_last_value_to_shrink_toward():
    assert "shrinkage" not in FineTunedPriceRegressor().get_params()
    assert "shrinkage" not in FineTunedPriceDirectionClassifier().get_params()
