"""Grid search that picks between the fine-tuned model and AutoARIMA.

One ``ForecastingGridSearchCV`` over a ``MultiplexForecaster`` that holds
pricetune's ``FineTunedPriceForecaster``, pmdarima's AutoARIMA and the
no-change forecast. The grid is a list of dicts: the classical models are
candidates as they are, the fine-tuned model once per setting of its own
parameters. Every candidate is scored by rolling-origin cross-validation
(an expanding window) on a built-in monthly price series, and the script
prints the ranked ``cv_results_`` table and the winner's forecast.

    python examples/grid_search_vs_autoarima.py            # a few minutes on 2 CPUs
    python examples/grid_search_vs_autoarima.py --quick    # tiny settings, seconds
    python examples/grid_search_vs_autoarima.py --dataset henry_hub --backend loky

Needs pmdarima (``pip install 'pricetune[baselines]'``).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
from _sktime_warnings import without_sktime_notice  # examples/
from sktime.forecasting.arima import AutoARIMA
from sktime.forecasting.compose import MultiplexForecaster
from sktime.forecasting.model_selection import ForecastingGridSearchCV
from sktime.forecasting.naive import NaiveForecaster
from sktime.performance_metrics.forecasting import MeanAbsolutePercentageError
from sktime.split import ExpandingWindowSplitter
from threadpoolctl import threadpool_limits

from pricetune import FineTunedPriceForecaster
from pricetune.datasets import load_dataset

SCORE = "test_MeanAbsolutePercentageError"


def build_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--dataset",
        default="brent",
        choices=["brent", "wti", "henry_hub", "gold"],
        help="built-in monthly series (default: brent)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny model and grid: a smoke run"
    )
    parser.add_argument(
        "--folds", type=int, default=None, help="cross-validation folds (default 3)"
    )
    parser.add_argument(
        "--horizon", type=int, default=None, help="months ahead (default 6)"
    )
    parser.add_argument(
        "--backend",
        default=None,
        help='sktime backend for the search: none (default), "loky", "dask"',
    )
    parser.add_argument("--n-jobs", type=int, default=2, help="workers for joblib")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def load_series(name: str, quick: bool) -> pd.Series:
    """The monthly series from 2000 (the last 10 years with ``quick``)."""
    y = load_dataset(name)  # monthly
    return y.iloc[-120:] if quick else y.loc["2000-01":]


def make_search(y: pd.Series, args: argparse.Namespace) -> ForecastingGridSearchCV:
    """The multiplexer, its grid and the cross-validation, from the options."""
    quick = args.quick
    folds = args.folds or (2 if quick else 3)
    horizon = args.horizon or (3 if quick else 6)
    if quick:
        pricetune = FineTunedPriceForecaster(
            backbone="none",
            head="linear",
            strategy="full",
            context_length=12,
            patch_length=4,
            max_epochs=2,
            random_state=args.seed,
            verbose=0,
        )
        pricetune_grids = [
            {"pricetune__learning_rate": [1e-3, 1e-2]},
        ]
    else:
        # all-MiniLM-L6-v2's first two layers with LoRA adapters, early stopping
        pricetune = FineTunedPriceForecaster(
            backbone="minilm",
            backbone_kwargs={"n_layers": 2},
            strategy="lora",
            head="quantile",
            context_length=36,
            patch_length=6,
            max_epochs=20,
            n_ensemble=1,  # one network per fit: a search runs many
            random_state=args.seed,
            verbose=0,
        )
        pricetune_grids = [
            {"pricetune__learning_rate": [1e-3, 3e-3]},
            {  # the same model without a pretrained backbone, for reference
                "pricetune__backbone": ["lstm"],
                "pricetune__backbone_kwargs": [{"hidden_size": 32}],
                "pricetune__strategy": ["full"],
                "pricetune__context_length": [24, 48],
            },
        ]
    forecaster = MultiplexForecaster(
        forecasters=[
            ("pricetune", pricetune),
            ("autoarima", AutoARIMA(sp=1, suppress_warnings=True)),
            ("naive", NaiveForecaster(strategy="last")),
        ]
    )
    grid = [
        {"selected_forecaster": ["autoarima", "naive"]},
        *({"selected_forecaster": ["pricetune"], **g} for g in pricetune_grids),
    ]
    step = horizon
    cv = ExpandingWindowSplitter(
        fh=list(range(1, horizon + 1)),
        initial_window=len(y) - (folds - 1) * step - horizon,
        step_length=step,
    )
    backend = None if args.backend in (None, "none", "None") else args.backend
    backend_params = (
        {"n_jobs": args.n_jobs} if backend in ("loky", "multiprocessing") else None
    )
    return ForecastingGridSearchCV(
        forecaster,
        cv,
        grid,
        scoring=MeanAbsolutePercentageError(symmetric=True),
        backend=backend,
        backend_params=backend_params,
    )


def _describe(params: dict) -> str:
    """``{"pricetune__learning_rate": 0.001, ...}`` -> ``learning_rate=0.001``."""
    items = []
    for key, value in params.items():
        if key == "selected_forecaster":
            continue
        if isinstance(value, dict):  # backbone_kwargs={"hidden_size": 32}
            items += [f"{inner}={setting}" for inner, setting in value.items()]
        else:
            items.append(f"{key.split('__', 1)[1]}={value}")
    return ", ".join(items) or "-"


def ranked_table(search: ForecastingGridSearchCV) -> pd.DataFrame:
    """``cv_results_``, best first, one readable row per candidate."""
    results = search.cv_results_.sort_values(f"rank_{SCORE}")
    return pd.DataFrame(
        {
            "rank": results[f"rank_{SCORE}"].astype(int).to_numpy(),
            "model": [p["selected_forecaster"] for p in results["params"]],
            "parameters": [_describe(p) for p in results["params"]],
            "sMAPE %": (100 * results[f"mean_{SCORE}"]).round(2).to_numpy(),
            "fit s": results["mean_fit_time"].round(2).to_numpy(),
        }
    )


def report(search: ForecastingGridSearchCV, y: pd.Series, seconds: float) -> None:
    cv = search.cv
    print(
        f"{y.name}: {len(y)} months, {y.index[0]} to {y.index[-1]}; "
        f"{cv.get_n_splits(y)} folds, horizon {len(cv.fh)} months; "
        f"{len(search.cv_results_)} candidates in {seconds:.1f} s"
    )
    print()
    print("Ranked candidates (mean sMAPE over the folds, lower is better):")
    print(ranked_table(search).to_string(index=False))
    print()
    best = search.best_params_
    print(f"Best: {best['selected_forecaster']} ({_describe(best)})")
    print(search.predict().round(2).to_frame("forecast").to_string())


def main(argv=None) -> None:
    args = build_parser(__doc__.split("\n")[0]).parse_args(argv)
    y = load_series(args.dataset, args.quick)
    start = time.perf_counter()
    with without_sktime_notice(), threadpool_limits(limits=1, user_api="blas"):
        search = make_search(y, args)
        search.fit(y, fh=search.cv.fh)
        seconds = time.perf_counter() - start
        report(search, y, seconds)


if __name__ == "__main__":
    main()
