"""A forecasting pipeline with a target transform and known-future covariates.

Monthly Henry Hub natural gas prices have a heating season. This example
gives the fine-tuned forecaster two kinds of calendar covariates, both known
in advance for any future month:

* a ``winter`` flag (November to March), passed in ``X``;
* the month of the year on a circle (sine and cosine), which sktime's
  ``FourierFeatures`` transformer adds to ``X`` inside the pipeline.

The target is modelled in logs (``LogTransformer`` inside a
``TransformedTargetForecaster``), so that forecasts and intervals stay
positive. The script backtests the pipeline over rolling origins beside the
same model without covariates and the no-change forecast, prints the scores,
then fits on all the data and prints the next months' forecast with an 80%
interval.

    python examples/pipeline_with_covariates.py            # a few minutes on 2 CPUs
    python examples/pipeline_with_covariates.py --quick    # tiny settings, seconds
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from _sktime_warnings import without_sktime_notice  # examples/
from sktime.forecasting.compose import ForecastingPipeline, TransformedTargetForecaster
from sktime.forecasting.model_evaluation import evaluate
from sktime.forecasting.naive import NaiveForecaster
from sktime.performance_metrics.forecasting import (
    MeanAbsolutePercentageError,
    MeanAbsoluteScaledError,
)
from sktime.split import ExpandingWindowSplitter
from sktime.transformations.series.boxcox import LogTransformer
from sktime.transformations.series.fourier import FourierFeatures

from pricetune import FineTunedPriceForecaster
from pricetune.datasets import load_henry_hub


def winter_flag(index: pd.PeriodIndex) -> pd.DataFrame:
    """1.0 in the heating season (November to March), else 0.0."""
    winter = np.isin(index.month, [11, 12, 1, 2, 3]).astype(float)
    return pd.DataFrame({"winter": winter}, index=index)


def fine_tuned(quick: bool, seed: int) -> FineTunedPriceForecaster:
    if quick:
        return FineTunedPriceForecaster(
            backbone="none",
            strategy="full",
            head="quantile",
            context_length=24,
            patch_length=6,
            max_epochs=3,
            random_state=seed,
            verbose=0,
        )
    return FineTunedPriceForecaster(
        backbone="minilm",  # all-MiniLM-L6-v2, its first two layers, LoRA
        backbone_kwargs={"n_layers": 2},
        strategy="lora",
        head="quantile",
        context_length=36,
        patch_length=6,
        max_epochs=20,
        n_ensemble=1,  # one MiniLM: three would triple the fit's minutes
        random_state=seed,
        verbose=0,
    )


def with_covariates(quick: bool, seed: int) -> ForecastingPipeline:
    """X -> add month-of-year sine and cosine -> log target -> fine-tune."""
    return ForecastingPipeline(
        [
            (
                "calendar",
                FourierFeatures(
                    sp_list=[12], fourier_terms_list=[1], keep_original_columns=True
                ),
            ),
            ("forecaster", without_covariates(quick, seed)),
        ]
    )


def without_covariates(quick: bool, seed: int) -> TransformedTargetForecaster:
    return TransformedTargetForecaster(
        [("log", LogTransformer()), ("model", fine_tuned(quick, seed))]
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model: seconds")
    parser.add_argument("--folds", type=int, default=None, help="backtest folds")
    parser.add_argument("--horizon", type=int, default=6, help="months ahead")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    folds = args.folds or (2 if args.quick else 4)
    fh = list(range(1, args.horizon + 1))

    y = load_henry_hub("monthly")
    future = pd.period_range(
        y.index[0], y.index[-1] + args.horizon, freq="M", name=y.index.name
    )
    X = winter_flag(future)  # known for the forecast months too
    X_train = X.loc[y.index]

    cv = ExpandingWindowSplitter(
        fh=fh,
        initial_window=len(y) - (folds - 1) * args.horizon - args.horizon,
        step_length=args.horizon,
    )
    scoring = [MeanAbsolutePercentageError(symmetric=True), MeanAbsoluteScaledError()]
    rows = []
    with without_sktime_notice():
        candidates = {
            "pricetune + calendar X": (with_covariates(args.quick, args.seed), X_train),
            "pricetune, no X": (without_covariates(args.quick, args.seed), None),
            "no-change": (NaiveForecaster(strategy="last"), None),
        }
        for name, (forecaster, X_used) in candidates.items():
            start = time.perf_counter()
            results = evaluate(forecaster, cv, y, X=X_used, scoring=scoring)
            rows.append(
                {
                    "model": name,
                    "sMAPE %": 100 * results["test_MeanAbsolutePercentageError"].mean(),
                    "MASE": results["test_MeanAbsoluteScaledError"].mean(),
                    "seconds": time.perf_counter() - start,
                }
            )
        final = with_covariates(args.quick, args.seed).fit(y, X=X_train, fh=fh)
        point = final.predict(X=X)
        interval = final.predict_interval(X=X, coverage=0.8)

    print(
        f"Henry Hub, {len(y)} months ({y.index[0]} to {y.index[-1]}); backtest: "
        f"{cv.get_n_splits(y)} origins, {args.horizon} months ahead each"
    )
    print(pd.DataFrame(rows).round(3).to_string(index=False))
    model = final.forecaster_.forecaster_
    print(f"\nCovariates the model reads: {model.covariate_names_}")
    table = pd.DataFrame(
        {
            "winter": X.loc[point.index, "winter"].astype(int),
            "forecast": point,
            "80% low": interval.iloc[:, 0],
            "80% high": interval.iloc[:, 1],
        }
    )
    print(f"\nForecast, USD/MMBtu (last observed {y.iloc[-1]:.2f}):")
    print(table.round(2).to_string())


if __name__ == "__main__":
    main()
