"""Exogenous covariates X: used when given, checked, never modified."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sktime.split import temporal_train_test_split

from pricetune import FineTunedPriceForecaster

EFFECT = 15.0  # $/barrel added to Brent whenever the flag is on

PARAMS = {
    "backbone": "none",
    "head": "linear",
    "strategy": "full",
    "context_length": 24,
    "patch_length": 4,
    "max_epochs": 60,
    "patience": 20,
    "learning_rate": 0.03,
    "random_state": 0,
    "verbose": 0,
    # the learned effect as it is: shrinkage moves the whole forecast
    "shrinkage": 0.0,
}


@pytest.fixture(scope="module")
def flagged(brent_monthly):
    """Brent plus a known-in-advance event flag worth EFFECT dollars."""
    rng = np.random.default_rng(0)
    flag = pd.Series(
        (rng.random(len(brent_monthly)) < 0.3).astype(float),
        index=brent_monthly.index,
    )
    y = brent_monthly + EFFECT * flag
    X = pd.DataFrame({"flag": flag, "month": brent_monthly.index.month.astype(float)})
    return y, X


def _future_X(forecaster, X_test, flag_value):
    future = X_test.iloc[: forecaster.horizon_].copy()
    future["flag"] = flag_value
    return future


def test_the_model_learns_the_effect_of_a_known_future_covariate(flagged):
    y, X = flagged
    y_train, _, X_train, X_test = temporal_train_test_split(y, X, test_size=12)
    forecaster = FineTunedPriceForecaster(**PARAMS).fit(y_train, X_train, fh=[1, 2, 3])
    assert forecaster.covariate_names_ == ["flag", "month"]
    on = forecaster.predict(X=_future_X(forecaster, X_test, 1.0))
    off = forecaster.predict(X=_future_X(forecaster, X_test, 0.0))
    shift = (on - off).to_numpy()
    assert np.all(shift > EFFECT / 2) and np.all(shift < 2 * EFFECT)

    # without X the same data gives no handle on the flag
    plain = FineTunedPriceForecaster(**PARAMS).fit(y_train, fh=[1, 2, 3])
    assert plain.covariate_names_ == []
    assert plain.model_.covariate_effect is None


def test_predict_needs_X_for_every_step_to_the_horizon(flagged):
    y, X = flagged
    y_train, _, X_train, X_test = temporal_train_test_split(y, X, test_size=12)
    forecaster = FineTunedPriceForecaster(**{**PARAMS, "max_epochs": 1}).fit(
        y_train, X_train, fh=[1, 2, 3]
    )
    with pytest.raises(ValueError, match="predict needs X for the 3 steps"):
        forecaster.predict()
    with pytest.raises(ValueError, match="must cover .* missing or NaN at"):
        forecaster.predict(X=X_test.iloc[1:])
    with pytest.raises(ValueError, match=r"lacks the covariates \['month'\]"):
        forecaster.predict(X=X_test[["flag"]])
    pd.testing.assert_index_equal(forecaster.predict(X=X_test).index, X_test.index[:3])


def test_bad_X_in_fit_fails_clearly_and_is_left_untouched(flagged):
    y, X = flagged
    for bad, error, match in [
        (X.assign(flag=X["flag"].where(X.index != X.index[40])), ValueError, "nan"),
        (X.assign(month=X["month"].replace(3.0, np.inf)), ValueError, "infinite"),
        (X.assign(kind="spot"), TypeError, "categorical"),
    ]:
        before = bad.copy()
        with pytest.raises(error, match=match):
            FineTunedPriceForecaster(**PARAMS).fit(y, bad, fh=[1])
        pd.testing.assert_frame_equal(bad, before)


def test_update_with_X_moves_the_origin(flagged):
    y, X = flagged
    y_train, y_new = y.iloc[:-6], y.iloc[-6:-3]
    forecaster = FineTunedPriceForecaster(**{**PARAMS, "max_epochs": 2}).fit(
        y_train, X.iloc[:-6], fh=[1, 2, 3]
    )
    with pytest.raises(ValueError, match="update needs X"):
        forecaster.update(y_new, update_params=False)
    forecaster.update(y_new, X.iloc[-6:-3], update_params=False)
    prediction = forecaster.predict(X=X.iloc[-3:])
    pd.testing.assert_index_equal(prediction.index, y.index[-3:])
    assert forecaster._store.covariates.shape == (len(y) - 3, 2)
