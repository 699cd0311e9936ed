"""Fitting one model at the backtest's origins: local models per series,
global (pricetune) models once per origin on the panel; the forecast rows
and fit records they give, and the progress lines."""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd

from pricetune.backtesting import metrics as M
from pricetune.backtesting.splitter import panel_frame


# ----------------------------------------------------------------- fitting
@contextmanager
def quiet():
    """Models' warnings (sktime notices, convergence, short series) are
    not the backtest's output. Recorded rather than only filtered: a model
    that resets the filters inside (sktime's date handling of business days
    did, once per forecast) would otherwise print through."""
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("ignore")
        yield


def _probabilistic(estimator) -> bool:
    try:
        return bool(estimator.get_tag("capability:pred_int"))
    except Exception:  # noqa: BLE001
        return False


def _n_trainable(estimator):
    value = getattr(estimator, "n_trainable_parameters_", None)
    if value is None:
        forecaster = getattr(estimator, "forecaster_", None)
        value = getattr(forecaster, "n_trainable_parameters_", None)
        if value is None and hasattr(estimator, "steps_"):
            for _, step in estimator.steps_:
                value = getattr(step, "n_trainable_parameters_", value)
    return np.nan if value is None else int(value)


def _quantiles(spec, estimator, fh, levels, notes):
    """The quantile forecasts, or None for a point model; a model whose
    quantiles fail is scored as a point model (and noted)."""
    if not _probabilistic(estimator):
        return None
    try:
        return estimator.predict_quantiles(fh=fh, alpha=list(levels))
    except Exception as error:  # noqa: BLE001 - e.g. a library version clash
        note = (
            f"{spec.name}: no quantiles ({type(error).__name__}: {error}); "
            "scored as a point forecast"
        )
        if note not in notes:
            notes.append(note)
        return None


def _rows(spec, split, point, quantiles, levels):
    train, test = split.train, split.test
    rows = pd.DataFrame(
        {
            "model": spec.name,
            "series": split.series,
            "cutoff": str(split.cutoff),
            "step": np.arange(1, len(test) + 1),
            "time": [str(t) for t in test.index],
            "actual": test.to_numpy(dtype=np.float64),
            "forecast": np.asarray(point, dtype=np.float64),
            "last": float(train.iloc[-1]),
            "scale": M.in_sample_naive_mae(train.to_numpy()),
        }
    )
    for j, level in enumerate(levels):
        rows[f"q{level:g}"] = np.nan if quantiles is None else quantiles[:, j]
    return rows


def format_relmae(value) -> str:
    return f"{value:.3f}" if np.isfinite(value) else "-"


def pair_relmae(frames) -> float:
    """The relMAE of one fit (or one origin's fits): the geometric mean over
    its series of the MAE over no-change's MAE (the last training value)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return float("nan")
    rows = pd.concat(frames, ignore_index=True)
    values = [
        M.relative_mae(group["actual"], group["forecast"], [group["last"].iloc[0]])
        for _, group in rows.groupby("series", sort=False)
    ]
    return M.geometric_mean(values)


def fit_local(spec, group, fh, levels, log, notes, label):
    """One origin of a local model: a fit per series of ``group``."""
    from sklearn.base import clone

    frames, fits = [], []
    for split in group:
        started = time.perf_counter()
        with quiet():
            estimator = clone(spec.estimator)
            train = split.train
            if spec.max_train is not None:
                train = train.iloc[-int(spec.max_train) :]
            estimator.fit(train, fh=fh)
            point = estimator.predict(fh=fh).to_numpy(dtype=np.float64)
            quantiles = _quantiles(spec, estimator, fh, levels, notes)
            if quantiles is not None:
                quantiles = quantiles.to_numpy(dtype=np.float64)
        seconds = time.perf_counter() - started
        rows = _rows(spec, split, point, quantiles, levels)
        frames.append(rows)
        fits.append(
            {
                "model": spec.name,
                "cutoff": str(split.cutoff),
                "series": split.series,
                "seconds": seconds,
                "n_trainable": _n_trainable(estimator),
            }
        )
        log(
            f"{label} {split.series}: {seconds:.1f} s, "
            f"relMAE {format_relmae(pair_relmae([rows]))}",
            level=2,
        )
    return frames, fits


def fit_global(spec, group, fh, levels, log, notes, label):
    """One origin of a global model: one fit on every series of ``group``."""
    from sklearn.base import clone

    cutoff = group[0].cutoff
    trains = {
        s.series: s.train
        if spec.max_train is None
        else s.train.iloc[-int(spec.max_train) :]
        for s in group
    }
    y = panel_frame(trains)
    started = time.perf_counter()
    with quiet():
        estimator = clone(spec.estimator)
        estimator.fit(y, fh=fh)
        point = estimator.predict(fh=fh)
        quantiles = _quantiles(spec, estimator, fh, levels, notes)
    seconds = time.perf_counter() - started
    forecast_series = set(point.index.get_level_values(0))
    frames = []
    for split in group:
        if split.series not in forecast_series:
            # too short for the model's context: it gives no forecast
            notes.append(
                f"{spec.name} gave no forecast of {split.series} at {cutoff} "
                "(too few values for its context); the pair is left out "
                "for every model"
            )
            continue
        p = point.xs(split.series, level=0).iloc[:, 0].to_numpy(dtype=np.float64)
        q = (
            None
            if quantiles is None
            else quantiles.xs(split.series, level=0).to_numpy(dtype=np.float64)
        )
        frames.append(_rows(spec, split, p, q, levels))
    fits = [
        {
            "model": spec.name,
            "cutoff": str(cutoff),
            "series": "*",
            "seconds": seconds,
            "n_trainable": _n_trainable(estimator),
        }
    ]
    return frames, fits
