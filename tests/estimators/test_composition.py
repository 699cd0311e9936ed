"""FineTunedPriceForecaster inside sktime's compositors, on the built-in data.

Target transforms, pipelines with exogenous X, the multiplexer, ``evaluate``
and grid search, each with a tiny model (no backbone or a small LSTM, two
epochs) so that the module stays fast. Grid searches run sequentially here
(``backend=None``; sktime's default is ``"loky"`` on every core); the
parallel backends are tested in ``test_parallel.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import ParameterGrid
from sklearn.preprocessing import StandardScaler
from sktime.forecasting.compose import (
    ForecastingPipeline,
    MultiplexForecaster,
    TransformedTargetForecaster,
)
from sktime.forecasting.model_evaluation import evaluate
from sktime.forecasting.model_selection import ForecastingGridSearchCV
from sktime.forecasting.naive import NaiveForecaster
from sktime.performance_metrics.forecasting import (
    MeanAbsolutePercentageError,
    MeanAbsoluteScaledError,
)
from sktime.split import ExpandingWindowSplitter
from sktime.transformations.series.adapt import TabularToSeriesAdaptor
from sktime.transformations.series.boxcox import LogTransformer
from sktime.transformations.series.difference import Differencer
from sktime.transformations.series.impute import Imputer

from pricetune import FineTunedPriceForecaster
from pricetune.datasets import load_brent, load_gold, load_henry_hub, load_wti

FH = [1, 2, 3]
TINY = {
    "backbone": "none",
    "head": "linear",
    "strategy": "full",
    "context_length": 12,
    "patch_length": 4,
    "max_epochs": 2,
    "random_state": 0,
    "verbose": 0,
}
SMAPE = MeanAbsolutePercentageError(symmetric=True)
SCORE = "test_MeanAbsolutePercentageError"


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """AutoARIMA and AutoETS fit many tiny models; BLAS threads fighting over
    two cores (and the other xdist worker) make them many times slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def tiny(**overrides) -> FineTunedPriceForecaster:
    return FineTunedPriceForecaster(**{**TINY, **overrides})


def future_index(y: pd.Series, fh=FH) -> pd.PeriodIndex:
    """The monthly periods ``fh`` steps after the end of ``y``."""
    return pd.PeriodIndex([y.index[-1] + step for step in fh], name=y.index.name)


def assert_plausible(y_pred: pd.Series, y_train: pd.Series, fh=FH) -> None:
    """Finite, on the right months, and within a factor of two of the last price."""
    assert isinstance(y_pred, pd.Series)
    assert y_pred.index.equals(future_index(y_train, fh))
    assert np.isfinite(y_pred.to_numpy()).all()
    last = y_train.iloc[-1]
    assert ((y_pred > last / 2) & (y_pred < last * 2)).all(), (y_pred, last)


def calendar_features(index: pd.PeriodIndex) -> pd.DataFrame:
    """Known-in-advance calendar covariates: a heating-season flag for natural
    gas (November to March) and the month of the year on a circle."""
    month = index.month.to_numpy()
    return pd.DataFrame(
        {
            "winter": np.isin(month, [11, 12, 1, 2, 3]).astype(float),
            "month_sin": np.sin(2 * np.pi * month / 12),
            "month_cos": np.cos(2 * np.pi * month / 12),
        },
        index=index,
    )


@pytest.fixture(scope="module")
def wti():
    return load_wti("monthly").iloc[-180:]


@pytest.fixture(scope="module")
def gas():
    """Henry Hub monthly and its calendar covariates, 3 months past the end."""
    y = load_henry_hub("monthly").iloc[-180:]
    index = pd.period_range(y.index[0], y.index[-1] + 3, freq="M", name=y.index.name)
    return y, calendar_features(index)


@pytest.fixture(scope="module")
def brent():
    return load_brent("monthly").iloc[-120:]


@pytest.fixture(scope="module")
def gold():
    return load_gold().iloc[-120:]


# ------------------------------------------------------ transformed target
@pytest.mark.parametrize(
    "transformers",
    [["log"], ["diff"], ["log", "diff"]],
    ids=["log", "diff", "log+diff"],
)
def test_transformed_target(wti, transformers):
    make = {"log": LogTransformer, "diff": Differencer}
    steps = [(name, make[name]()) for name in transformers]
    forecaster = TransformedTargetForecaster([*steps, ("model", tiny())])
    forecaster.fit(wti, fh=FH)
    assert_plausible(forecaster.predict(), wti)
    # the inner forecaster really saw the transformed series
    inner = np.asarray(forecaster.forecaster_.predict(), dtype=float).ravel()
    if transformers == ["log"]:
        np.testing.assert_allclose(np.exp(inner), forecaster.predict(), rtol=1e-12)
    if "diff" in transformers:  # month-on-month changes, near zero
        series = np.log(wti) if "log" in transformers else wti
        assert (np.abs(inner) <= series.diff().abs().max()).all()


def test_transformed_target_log_gives_positive_intervals(wti):
    forecaster = TransformedTargetForecaster(
        [("log", LogTransformer()), ("model", tiny(head="quantile"))]
    )
    forecaster.fit(wti, fh=FH)
    interval = forecaster.predict_interval(coverage=0.8)
    lower, upper = interval.iloc[:, 0], interval.iloc[:, 1]
    assert interval.index.equals(future_index(wti))
    assert np.isfinite(interval.to_numpy()).all()
    assert (lower > 0).all() and (lower <= upper).all()
    median = forecaster.predict()
    assert ((lower <= median) & (median <= upper)).all()


# ----------------------------------------------------- pipeline with X
def _pipeline(**model) -> ForecastingPipeline:
    return ForecastingPipeline(
        [
            ("impute", Imputer(method="ffill")),
            ("scale", TabularToSeriesAdaptor(StandardScaler())),
            ("model", tiny(**model)),
        ]
    )


def test_pipeline_passes_transformed_x_to_the_forecaster(gas):
    y, X = gas
    X_gappy = X.copy()
    X_gappy.iloc[40, 0] = np.nan  # a gap the Imputer fills
    with pytest.raises(ValueError, match="missing data"):
        tiny().fit(y, X=X_gappy.loc[y.index], fh=FH)

    pipeline = _pipeline().fit(y, X=X_gappy.loc[y.index], fh=FH)
    y_pred = pipeline.predict(X=X_gappy)
    assert_plausible(y_pred, y)
    assert pipeline.forecaster_.covariate_names_ == ["winter", "month_sin", "month_cos"]
    # the forecast reads the future covariates
    X_flipped = X_gappy.copy()
    X_flipped.loc[y_pred.index, "winter"] = 1 - X_flipped.loc[y_pred.index, "winter"]
    assert not np.allclose(pipeline.predict(X=X_flipped), y_pred, rtol=0, atol=1e-9)


def test_pipeline_adds_calendar_covariates_with_a_transformer(gas):
    """FourierFeatures derives the month of the year from X's index, for the
    training months and for the forecast months alike."""
    from sktime.transformations.series.fourier import FourierFeatures

    y, X = gas
    calendar = FourierFeatures(
        sp_list=[12], fourier_terms_list=[1], keep_original_columns=True
    )
    pipeline = ForecastingPipeline([("calendar", calendar), ("model", tiny())])
    pipeline.fit(y, X=X[["winter"]].loc[y.index], fh=FH)
    assert pipeline.forecaster_.covariate_names_ == ["winter", "sin_12_1", "cos_12_1"]
    assert_plausible(pipeline.predict(X=X[["winter"]]), y)


def test_pipeline_with_x_around_a_log_target(gas):
    y, X = gas
    inner = TransformedTargetForecaster([("log", LogTransformer()), ("model", tiny())])
    pipeline = ForecastingPipeline(
        [("scale", TabularToSeriesAdaptor(StandardScaler())), ("target", inner)]
    )
    pipeline.fit(y, X=X.loc[y.index], fh=FH)
    assert_plausible(pipeline.predict(X=X), y)
    model = pipeline.forecaster_.forecaster_
    assert isinstance(model, FineTunedPriceForecaster)
    assert model.covariate_names_ == list(X.columns)


# ---------------------------------------------------------- multiplexer
def _baselines() -> list:
    from sktime.forecasting.arima import AutoARIMA
    from sktime.forecasting.ets import AutoETS

    return [
        ("autoarima", AutoARIMA(sp=1, suppress_warnings=True)),
        ("autoets", AutoETS(auto=True)),
        ("naive", NaiveForecaster(strategy="last")),
    ]


def multiplexer(**model) -> MultiplexForecaster:
    return MultiplexForecaster(
        forecasters=[("pricetune", tiny(**model)), *_baselines()]
    )


@pytest.mark.parametrize("selected", ["pricetune", "autoarima", "autoets", "naive"])
def test_multiplexer_runs_each_forecaster(gold, selected):
    forecaster = multiplexer().set_params(selected_forecaster=selected)
    forecaster.fit(gold, fh=FH)
    chosen = dict(forecaster.forecasters)[selected]
    assert type(forecaster.forecaster_) is type(chosen)
    assert_plausible(forecaster.predict(), gold)


# ------------------------------------------------------------- evaluate
def _cv(y: pd.Series, folds: int = 3, step: int = 3) -> ExpandingWindowSplitter:
    initial = len(y) - (folds - 1) * step - max(FH)
    return ExpandingWindowSplitter(fh=FH, initial_window=initial, step_length=step)


@pytest.mark.parametrize("strategy", ["refit", "update"])
def test_evaluate_gives_finite_scores(wti, strategy):
    cv = _cv(wti)
    results = evaluate(
        tiny(),
        cv,
        wti,
        strategy=strategy,
        scoring=[SMAPE, MeanAbsoluteScaledError()],
    )
    assert len(results) == cv.get_n_splits(wti) == 3
    scores = results[[SCORE, "test_MeanAbsoluteScaledError"]].to_numpy()
    assert np.isfinite(scores).all() and (scores >= 0).all()
    assert results[SCORE].max() < 0.5  # sMAPE, as a fraction
    cutoffs = pd.PeriodIndex(results["cutoff"])
    assert cutoffs.is_monotonic_increasing and cutoffs[-1] == wti.index[-4]


def test_evaluate_pipeline_with_x(gas):
    y, X = gas
    results = evaluate(
        _pipeline(), _cv(y), y, X=X.loc[y.index], scoring=SMAPE, return_data=True
    )
    assert np.isfinite(results[SCORE]).all()
    for y_test, y_pred in zip(results["y_test"], results["y_pred"], strict=True):
        assert y_pred.index.equals(y_test.index)


# ---------------------------------------------------------- grid search
OWN_GRID = [
    {"backbone": ["none"], "learning_rate": [1e-3, 1e-2], "context_length": [12, 24]},
    {
        "backbone": ["lstm"],
        "backbone_kwargs": [{"hidden_size": 8}],
        "strategy": ["full", "frozen"],
    },
    {
        "backbone": ["minilm"],
        "backbone_kwargs": [{"n_layers": 1}],
        "strategy": ["lora", "layernorm"],
        "max_epochs": [1],
    },
]


def _check_search(search, grid, y) -> pd.DataFrame:
    results = search.cv_results_
    candidates = list(ParameterGrid(grid))
    assert len(results) == len(candidates)
    assert search.best_params_ in candidates
    ranks = results[f"rank_{SCORE}"]
    means = results[f"mean_{SCORE}"]
    assert np.isfinite(means).all()
    assert ranks.min() == 1 and ranks[search.best_index_] == 1
    assert means[search.best_index_] == means.min() == search.best_score_
    # ranks follow the scores (lower sMAPE, better rank)
    ordered = results.sort_values(f"rank_{SCORE}")
    assert ordered[f"mean_{SCORE}"].is_monotonic_increasing
    # the best forecaster was refitted on all of y and predicts
    assert search.best_forecaster_.is_fitted
    assert_plausible(search.predict(), y)
    return results


def test_grid_search_over_the_forecasters_own_parameters(wti):
    search = ForecastingGridSearchCV(
        tiny(), _cv(wti, folds=2), OWN_GRID, scoring=SMAPE, backend=None
    )
    search.fit(wti, fh=FH)
    _check_search(search, OWN_GRID, wti)
    best = search.best_forecaster_
    assert isinstance(best, FineTunedPriceForecaster)
    params = best.get_params()
    assert all(params[key] == value for key, value in search.best_params_.items())
    assert best.backbone in {"none", "lstm", "minilm"}
    assert set(search.cv_results_["params"].map(lambda p: p["backbone"])) == {
        "none",
        "lstm",
        "minilm",
    }


def test_grid_search_picks_between_models_and_parameters(brent):
    grid = [
        {"selected_forecaster": ["autoarima", "autoets", "naive"]},
        {
            "selected_forecaster": ["pricetune"],
            "pricetune__learning_rate": [1e-3, 1e-2],
            "pricetune__context_length": [12, 24],
        },
    ]
    search = ForecastingGridSearchCV(
        multiplexer(), _cv(brent, folds=2), grid, scoring=SMAPE, backend=None
    )
    search.fit(brent, fh=FH)
    results = _check_search(search, grid, brent)
    chosen = [params["selected_forecaster"] for params in results["params"]]
    assert sorted(set(chosen)) == ["autoarima", "autoets", "naive", "pricetune"]
    assert chosen.count("pricetune") == 4
    best = search.best_forecaster_
    assert best.selected_forecaster == search.best_params_["selected_forecaster"]
