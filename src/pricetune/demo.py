"""The main job: train the default forecaster on monthly Brent and
compare it with the no-change forecast and AutoARIMA on a held-out year."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pricetune.registry import shown_name

COVERAGE = 0.8


@dataclass
class DemoResult:
    table: pd.DataFrame
    forecasts: dict[str, pd.Series]
    intervals: dict[str, pd.DataFrame]
    y_train: pd.Series
    y_test: pd.Series
    notes: list[str] = field(default_factory=list)


def interval_coverage(y_true: pd.Series, interval: pd.DataFrame) -> float:
    """Share of ``y_true`` inside an sktime ``predict_interval`` frame."""
    lower = interval.xs("lower", axis=1, level=-1).iloc[:, 0].to_numpy()
    upper = interval.xs("upper", axis=1, level=-1).iloc[:, 0].to_numpy()
    actual = y_true.to_numpy()
    return float(np.mean((actual >= lower) & (actual <= upper)))


def _label(forecaster) -> str:
    """``"lstm"``, ``"minilm + lora"`` for a strategy other than full
    training, ``"3 x lstm"`` for an ensemble: the model's name in the
    demo's table."""
    params = forecaster.get_params(deep=False)
    backbone, strategy = shown_name(params["backbone"]), shown_name(params["strategy"])
    name = backbone if strategy == "full" else f"{backbone} + {strategy}"
    members = params["n_ensemble"]
    return name if members == 1 else f"{members} x {name}"


def _baselines():
    from sktime.forecasting.arima import AutoARIMA
    from sktime.forecasting.naive import NaiveForecaster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # sktime's remember_data note
        models = {"Naive (no change)": NaiveForecaster(strategy="last")}
        try:
            models["AutoARIMA"] = AutoARIMA(sp=1, suppress_warnings=True)
        except ModuleNotFoundError as error:  # pmdarima is an optional extra
            models["AutoARIMA"] = error
    return models


def run_demo(
    holdout: int = 12,
    max_epochs: int | None = None,
    random_state: int = 0,
    device: str = "auto",
    verbose: int = 1,
    forecaster_params: dict | None = None,
) -> DemoResult:
    """Fit the default :class:`FineTunedPriceForecaster` and two baselines on
    monthly Brent, holding out the last ``holdout`` months.

    Returns the comparison table (MASE, sMAPE, 80% interval coverage, fit
    seconds) and every model's forecasts and intervals.
    """
    from sktime.performance_metrics.forecasting import (
        mean_absolute_percentage_error,
        mean_absolute_scaled_error,
    )

    from pricetune.datasets import load_brent
    from pricetune.estimators.forecaster import FineTunedPriceForecaster

    y = load_brent("monthly")
    y_train, y_test = y.iloc[:-holdout], y.iloc[-holdout:]
    fh = np.arange(1, holdout + 1)
    params = {"random_state": random_state, "device": device, "verbose": verbose}
    if max_epochs is not None:
        params["max_epochs"] = max_epochs
    params.update(forecaster_params or {})
    forecaster = FineTunedPriceForecaster(**params)
    models = {f"pricetune ({_label(forecaster)})": forecaster}
    models.update(_baselines())

    rows, forecasts, intervals, notes = [], {}, {}, []
    for name, model in models.items():
        if isinstance(model, Exception):
            notes.append(
                f"{name} skipped ({model}); install it with: "
                "pip install 'pricetune[baselines]'"
            )
            continue
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(y_train, fh=fh)
            forecast = model.predict()
            interval = model.predict_interval(coverage=COVERAGE)
        seconds = time.perf_counter() - started
        forecasts[name], intervals[name] = forecast, interval
        rows.append(
            {
                "model": name,
                "MASE": mean_absolute_scaled_error(
                    y_test, forecast, y_train=y_train, sp=1
                ),
                "sMAPE %": 100
                * mean_absolute_percentage_error(y_test, forecast, symmetric=True),
                f"{COVERAGE:.0%} coverage": interval_coverage(y_test, interval),
                "fit seconds": seconds,
            }
        )
    table = pd.DataFrame(rows).set_index("model")
    return DemoResult(table, forecasts, intervals, y_train, y_test, notes)


def plot_demo(result: DemoResult, path: str | Path, history: int = 120) -> Path:
    """Write a PNG: recent history, actuals, each forecast and the pricetune
    model's interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(10, 5))
    recent = result.y_train.iloc[-history:]
    ax.plot(
        recent.index.to_timestamp(), recent.to_numpy(), color="black", label="history"
    )
    test_x = result.y_test.index.to_timestamp()
    ax.plot(test_x, result.y_test.to_numpy(), color="black", ls="--", label="actual")
    for (name, forecast), color in zip(
        result.forecasts.items(), ["tab:blue", "tab:orange", "tab:green"], strict=False
    ):
        ax.plot(test_x, forecast.to_numpy(), color=color, label=name)
    main = next(iter(result.intervals))
    interval = result.intervals[main]
    ax.fill_between(
        test_x,
        interval.xs("lower", axis=1, level=-1).iloc[:, 0].to_numpy(),
        interval.xs("upper", axis=1, level=-1).iloc[:, 0].to_numpy(),
        color="tab:blue",
        alpha=0.2,
        label=f"{main}: {COVERAGE:.0%} interval",
    )
    ax.set_title(
        f"Brent, monthly average ($/barrel): last {len(result.y_test)} months held out"
    )
    ax.set_ylabel("$/barrel")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
