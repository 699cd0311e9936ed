"""FineTunedPriceRegressor: a scikit-learn regressor on windows of prices."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from pricetune import FineTunedPriceRegressor

WINDOW = 24  # months of past prices per row

FAST = {
    "backbone": "none",
    "head": "linear",
    "strategy": "full",
    "max_epochs": 3,
    "learning_rate": 0.01,
    "random_state": 0,
    "verbose": 0,
}
QUANTILE = {
    **FAST,
    "backbone": "lstm",
    "backbone_kwargs": {"hidden_size": 8},
    "head": "quantile",
    "head_kwargs": {"quantiles": [0.1, 0.25, 0.5, 0.75, 0.9]},
}


def _checked_instances():
    # sklearn's check_regressors_train asks for R^2 > 0.5 on a random
    # tabular regression: enough epochs, at a high enough learning rate
    longer = {"max_epochs": 30, "learning_rate": 0.02}
    return [
        FineTunedPriceRegressor(**{**FAST, **longer}),
        FineTunedPriceRegressor(**{**QUANTILE, **longer}),
    ]


@parametrize_with_checks(_checked_instances())
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def brent_windows(brent_monthly):
    """Rows of WINDOW monthly Brent prices (oldest first) and the 3 months
    after each, in time order."""
    spans = np.lib.stride_tricks.sliding_window_view(
        brent_monthly.to_numpy(), WINDOW + 3
    )
    return np.array(spans[:, :WINDOW]), np.array(spans[:, WINDOW:])


def _plausible(prediction, last_price):
    """Within a factor 1.5 of the newest price the model read."""
    return np.all(np.isfinite(prediction)) and np.all(
        (prediction > last_price / 1.5) & (prediction < last_price * 1.5)
    )


def test_fit_predict_on_brent(brent_windows):
    X, Y = brent_windows
    y = Y[:, 0]
    regressor = FineTunedPriceRegressor(**QUANTILE).fit(X[:-12], y[:-12])
    assert regressor.n_features_in_ == WINDOW
    assert regressor.context_length_ == WINDOW
    assert regressor.patch_length_ == 8
    assert regressor.horizon_ == 1
    assert list(regressor.training_history_.columns[:2]) == ["epoch", "train_loss"]
    prediction = regressor.predict(X[-12:])
    assert prediction.shape == (12,)
    assert _plausible(prediction, X[-12:, -1])

    quantiles = regressor.predict_quantiles(X[-12:], quantiles=[0.05, 0.5, 0.95])
    assert quantiles.shape == (12, 3)
    assert np.all(np.diff(quantiles, axis=1) >= 0)
    np.testing.assert_allclose(quantiles[:, 1], prediction)
    assert regressor.predict_quantiles(X[-12:]).shape == (12, 3)
    with pytest.raises(ValueError, match=r"lie in \(0, 1\)"):
        regressor.predict_quantiles(X[-12:], quantiles=[0.5, 1.0])

    point = FineTunedPriceRegressor(**FAST).fit(X[:-12], y[:-12])
    assert point.quantiles_ is None
    with pytest.raises(NotImplementedError, match="point predictions only"):
        point.predict_quantiles(X[-12:])


def test_multi_output_y(brent_windows):
    X, Y = brent_windows
    regressor = FineTunedPriceRegressor(**QUANTILE).fit(X[:-12], Y[:-12])
    assert regressor.horizon_ == 3
    prediction = regressor.predict(X[-12:])
    assert prediction.shape == (12, 3)
    assert _plausible(prediction, X[-12:, -1:])
    quantiles = regressor.predict_quantiles(X[-12:], quantiles=[0.1, 0.5, 0.9])
    assert quantiles.shape == (12, 3, 3)
    assert np.all(np.diff(quantiles, axis=2) >= 0)
    assert np.isfinite(regressor.score(X[-12:], Y[-12:]))

    # a column-vector y gives 2-D predictions of one column
    column = FineTunedPriceRegressor(**FAST).fit(X, Y[:, :1])
    assert column.predict(X[:5]).shape == (5, 1)


def test_pipeline_with_log_transforms(brent_windows):
    X, Y = brent_windows
    y = Y[:, 0]
    model = TransformedTargetRegressor(
        regressor=Pipeline(
            [
                ("log", FunctionTransformer(np.log)),
                ("regressor", FineTunedPriceRegressor(**FAST)),
            ]
        ),
        func=np.log,
        inverse_func=np.exp,
    )
    model.fit(X[:-12], y[:-12])
    prediction = model.predict(X[-12:])
    assert prediction.shape == (12,)
    assert _plausible(prediction, X[-12:, -1])


def test_model_selection_with_time_series_splits(brent_windows):
    X, Y = brent_windows
    y = Y[:, 0]
    search = GridSearchCV(
        FineTunedPriceRegressor(**{**FAST, "max_epochs": 2}),
        {"learning_rate": [1e-3, 1e-2], "backbone": ["none", "lstm"]},
        cv=TimeSeriesSplit(3),
        scoring="neg_mean_absolute_error",
    )
    search.fit(X, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_params_["backbone"] in ("none", "lstm")
    assert _plausible(search.predict(X[-3:]), X[-3:, -1])

    scores = cross_val_score(
        FineTunedPriceRegressor(**FAST), X, y, cv=TimeSeriesSplit(3)
    )
    assert scores.shape == (3,)
    assert np.all(np.isfinite(scores))


def test_sktime_make_reduction(brent_monthly):
    from sktime.forecasting.compose import make_reduction

    y_train, y_test = brent_monthly.iloc[:-3], brent_monthly.iloc[-3:]
    forecaster = make_reduction(
        FineTunedPriceRegressor(**FAST), window_length=WINDOW, strategy="recursive"
    )
    forecaster.fit(y_train, fh=[1, 2, 3])
    prediction = forecaster.predict()
    pd.testing.assert_index_equal(prediction.index, y_test.index, check_names=False)
    assert _plausible(prediction.to_numpy(), y_train.iloc[-1])
    assert forecaster.estimator_.n_features_in_ == WINDOW


def test_covariate_columns_are_used(brent_monthly):
    # The covariates' effect is learned in the model's normalised units:
    # with normalization="last", a row's mean absolute one-step change. A
    # flag worth 3 such units is one effect for every row.
    effect = 3.0
    spans = np.lib.stride_tricks.sliding_window_view(
        brent_monthly.to_numpy(), WINDOW + 1
    )
    past = spans[:, :WINDOW]
    scale = np.abs(np.diff(past, axis=1)).mean(axis=1)
    flag = (np.random.default_rng(0).random(len(spans)) < 0.3).astype(float)
    X = np.column_stack([past, flag])
    y = spans[:, WINDOW] + effect * scale * flag
    # a constant learning rate: the cosine decay stops the effect short of
    # its value within these few epochs
    params = {
        **FAST,
        "max_epochs": 40,
        "patience": 10,
        "learning_rate": 0.03,
        "lr_schedule": "constant",
        # the network's own covariate map, without the linear baseline
        # (which would take a constant share of the effect first)
        "linear_baseline": False,
    }
    regressor = FineTunedPriceRegressor(**params, context_length=WINDOW)
    regressor.fit(X[:-12], y[:-12])
    assert regressor.context_length_ == WINDOW
    assert regressor.model_.covariate_effect is not None

    on, off = X[-12:].copy(), X[-12:].copy()
    on[:, -1], off[:, -1] = 1.0, 0.0
    shift = regressor.predict(on) - regressor.predict(off)
    known = effect * scale[-12:]  # about 9 to 18 $/barrel here
    np.testing.assert_allclose(shift, known, rtol=0.2)

    # read as one more past value, the flag gives no such handle
    plain = FineTunedPriceRegressor(**FAST).fit(X[:-12], y[:-12])
    assert plain.context_length_ == WINDOW + 1
    assert plain.model_.covariate_effect is None


def test_clone_shares_no_weights(brent_windows):
    X, Y = brent_windows
    y = Y[:, 0]
    original = FineTunedPriceRegressor(**QUANTILE).fit(X[:200], y[:200])
    before = {k: v.clone() for k, v in original.model_.state_dict().items()}
    prediction = original.predict(X[-5:])

    copy = clone(original)
    assert not hasattr(copy, "model_")
    copy.set_params(learning_rate=0.05).fit(X[100:], y[100:])
    assert copy.model_ is not original.model_
    pointers = {p.data_ptr() for p in original.model_.parameters()}
    assert pointers.isdisjoint(p.data_ptr() for p in copy.model_.parameters())
    for name, value in original.model_.state_dict().items():
        assert value.equal(before[name]), name
    np.testing.assert_array_equal(original.predict(X[-5:]), prediction)


def test_patch_length_is_clipped_to_the_past_columns(brent_windows):
    X, Y = brent_windows
    y = Y[:, 0]
    short = FineTunedPriceRegressor(**FAST).fit(X[:, -3:], y)
    assert short.patch_length_ == 3
    assert short.get_params()["patch_length"] == 8  # the parameter is kept
    single = FineTunedPriceRegressor(**FAST).fit(X[:, -1:], y)
    assert single.patch_length_ == 1
    assert _plausible(single.predict(X[-5:, -1:]), X[-5:, -1])


def test_bad_input_fails_clearly_and_is_left_untouched(brent_windows):
    X, Y = brent_windows
    X, y = X[:100].copy(), Y[:100, 0].copy()
    X_before, y_before = X.copy(), y.copy()
    frame = pd.DataFrame(X, columns=[f"lag_{WINDOW - i}" for i in range(WINDOW)])
    frame_before = frame.copy()

    regressor = FineTunedPriceRegressor(**FAST).fit(X, y)
    regressor.predict(X)
    FineTunedPriceRegressor(**FAST).fit(frame, y).predict(frame)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)
    pd.testing.assert_frame_equal(frame, frame_before)

    # read-only input is fine too
    X.setflags(write=False)
    y.setflags(write=False)
    FineTunedPriceRegressor(**FAST).fit(X, y).predict(X)

    with_nan = X_before.copy()
    with_nan[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        FineTunedPriceRegressor(**FAST).fit(with_nan, y)
    with pytest.raises(ValueError, match="NaN"):
        regressor.predict(with_nan)
    with pytest.raises(ValueError, match="NaN|infinity"):
        FineTunedPriceRegressor(**FAST).fit(X, np.where(y > 20, np.inf, y))
    with pytest.raises(ValueError, match="X has 23 features, but .* expecting 24"):
        regressor.predict(X[:, 1:])
    with pytest.raises(ValueError, match="context_length=30, but X has only 24"):
        FineTunedPriceRegressor(**{**FAST, "context_length": 30}).fit(X, y)
    with pytest.raises(ValueError, match="context_length must be at least 1"):
        FineTunedPriceRegressor(**{**FAST, "context_length": 0}).fit(X, y)
    with pytest.raises(ValueError, match="validation_fraction"):
        FineTunedPriceRegressor(**{**FAST, "validation_fraction": 1.0}).fit(X, y)
    np.testing.assert_array_equal(X, X_before)


def test_docstring_example_runs():
    import pricetune.estimators.regressor

    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(pricetune.estimators.regressor.FineTunedPriceRegressor)
    examples = [test for test in tests if test.examples]
    assert examples
    for test in examples:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
