"""Plots of forecasts: recent history, the median forecast and its
interval, one panel per series (a grid for a panel of series).

matplotlib is imported when a plot is drawn, never at ``import pricetune``;
the functions return the figure and never call ``plt.show()``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pricetune.reading.calendars import label_text

#: series drawn in one figure at most (the CSV holds them all)
MAX_PANELS = 16


def _x(index: pd.Index):
    return index.to_timestamp() if isinstance(index, pd.PeriodIndex) else index


def plot_forecasts(
    history: dict[str, pd.Series],
    forecasts: dict[str, pd.DataFrame],
    *,
    coverage: float = 0.8,
    unit: str | None = None,
    n_history: int | None = None,
    title: str | None = None,
    max_panels: int = MAX_PANELS,
):
    """One axis per series (at most ``max_panels``, in order): the last
    ``n_history`` values (default: 4 horizons, at least 36), the
    ``median`` forecast and the ``lower``/``upper`` interval columns of
    ``forecasts[name]`` (a frame indexed like the history's continuation).
    Returns the matplotlib figure."""
    # a Figure without pyplot: no GUI backend is touched, nothing is left
    # open (a notebook still displays the returned figure)
    from matplotlib.figure import Figure

    names = [name for name in forecasts if name in history][:max_panels]
    if not names:
        raise ValueError("nothing to plot: no series has both history and forecast")
    ncols = 1 if len(names) == 1 else min(4, math.ceil(math.sqrt(len(names))))
    nrows = math.ceil(len(names) / ncols)
    width, height = (10, 5) if len(names) == 1 else (4 * ncols, 2.8 * nrows)
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    label = f"{coverage:.0%} interval"
    for ax, name in zip(axes, names, strict=False):
        forecast = forecasts[name]
        keep = n_history or max(36, 4 * len(forecast))
        recent = history[name].iloc[-keep:]
        ax.plot(
            _x(recent.index), recent.to_numpy(), color="black", lw=1.2, label="history"
        )
        x = _x(forecast.index)
        if {"lower", "upper"} <= set(forecast.columns):
            ax.fill_between(
                x,
                forecast["lower"].to_numpy(dtype=float),
                forecast["upper"].to_numpy(dtype=float),
                color="tab:blue",
                alpha=0.25,
                label=label,
            )
        ax.plot(
            x,
            forecast["median"].to_numpy(dtype=float),
            color="tab:blue",
            lw=1.6,
            label="forecast",
        )
        ax.set_title(str(name), fontsize="medium")
        ax.set_ylabel(unit or "price")
        ax.tick_params(labelsize="small")
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    axes[0].legend(loc="upper left", fontsize="small")
    if title:
        figure.suptitle(title)
    return figure


def forecast_frame(
    forecaster, fh, coverage: float = 0.8, levels=(0.1, 0.25, 0.5, 0.75, 0.9)
):
    """A fitted sktime forecaster's forecast as one long table: ``series``,
    ``date``, ``median`` (the point forecast), ``q<level>`` columns and
    ``lower``/``upper`` of the ``coverage`` interval (point models: only
    ``median``)."""
    point = forecaster.predict(fh=fh)
    frame = _long(point, "median")
    probabilistic = bool(_tag(forecaster, "capability:pred_int"))
    if probabilistic:
        quantiles = forecaster.predict_quantiles(fh=fh, alpha=list(levels))
        for j, level in enumerate(levels):
            frame[f"q{level:g}"] = _values(quantiles.iloc[:, j])
        interval = forecaster.predict_interval(fh=fh, coverage=coverage)
        frame["lower"] = _values(interval.xs("lower", axis=1, level=-1).iloc[:, 0])
        frame["upper"] = _values(interval.xs("upper", axis=1, level=-1).iloc[:, 0])
    return frame


def _tag(estimator, name):
    try:
        return estimator.get_tag(name)
    except Exception:  # noqa: BLE001 - not an sktime estimator
        return False


def _values(column: pd.Series) -> np.ndarray:
    return column.to_numpy(dtype=np.float64)


def _long(point, column: str) -> pd.DataFrame:
    if isinstance(point, pd.DataFrame):
        point = point.iloc[:, 0]
    if isinstance(point.index, pd.MultiIndex):
        series = point.index.get_level_values(0).astype(str)
        dates = point.index.get_level_values(-1)
    else:
        series = np.repeat(str(point.name or "y"), len(point))
        dates = point.index
    return pd.DataFrame(
        {
            "series": series,
            "date": [label_text(d) for d in dates],
            column: _values(point),
        }
    )


def split_forecasts(frame: pd.DataFrame, index_like: dict[str, pd.Series]) -> dict:
    """``{name: forecast}`` from :func:`forecast_frame`'s table, each indexed
    on the continuation of its history's calendar (for plotting)."""
    out = {}
    for name, rows in frame.groupby("series", sort=False):
        history = index_like.get(name)
        if history is None:
            continue
        index = history.index
        if isinstance(index, pd.PeriodIndex):
            dates = pd.PeriodIndex(rows["date"], freq=index.freq)
        else:
            dates = pd.DatetimeIndex(rows["date"])
        out[name] = rows.drop(columns=["series", "date"]).set_axis(dates)
    return out
