"""Scores of the backtest's forecasts: per (model, series, cut-off), and the
ranked summary table with the Diebold-Mariano test against no-change."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pricetune.backtesting import metrics as M
from pricetune.backtesting.stats import dm_test_differential

#: quantile levels every probabilistic model is scored on (wQL, CRPS); the
#: 0.1 and 0.9 quantiles bound the 80% interval
LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


# ----------------------------------------------------------------- scoring
def score(forecasts: pd.DataFrame, levels=LEVELS) -> pd.DataFrame:
    """One row per (model, series, cut-off) of ``forecasts``: MASE, sMAPE,
    relative MAE, squared errors of the model and of no-change (for the
    MSPE ratio), directional accuracy, wQL, scaled CRPS, 80% coverage."""
    q_columns = [f"q{level:g}" for level in levels]
    records = []
    for (model, series, cutoff), rows in forecasts.groupby(
        ["model", "series", "cutoff"], sort=False
    ):
        actual = rows["actual"].to_numpy()
        point = rows["forecast"].to_numpy()
        last = rows["last"].iloc[0]
        scale = rows["scale"].iloc[0]
        naive = np.full_like(actual, last)
        history = np.array([last])  # the last value is all relMAE/DA need
        record = {
            "model": model,
            "series": series,
            "cutoff": cutoff,
            "MASE": M.mae(actual, point) / scale if scale > 0 else np.nan,
            "sMAPE": M.smape(actual, point),
            "relMAE": M.relative_mae(actual, point, history),
            "SSE": float(np.sum((actual - point) ** 2)),
            "SSE_naive": float(np.sum((actual - naive) ** 2)),
            "DA": M.directional_accuracy(actual, point, history),
        }
        quantiles = rows[q_columns].to_numpy()
        if np.isfinite(quantiles).all():
            record["wQL"] = M.weighted_quantile_loss(actual, quantiles, levels)
            record["sCRPS"] = M.crps_from_quantiles(actual, quantiles, levels) / scale
            record["coverage80"] = M.coverage(
                actual, quantiles[:, levels.index(0.1)], quantiles[:, levels.index(0.9)]
            )
        else:
            record["wQL"] = record["sCRPS"] = record["coverage80"] = np.nan
        records.append(record)
    return pd.DataFrame(records)


def _dm(forecasts: pd.DataFrame, model: str, horizon: int, loss: str):
    """DM test of ``model`` against no-change on the panel: the loss
    differential at each (cut-off, step) is averaged over series, after
    scaling each series' errors by its in-sample no-change MAE."""
    rows = forecasts[forecasts["model"] == model]
    if rows.groupby(["series", "time"])["cutoff"].nunique().max() > 1:
        # origins closer than the horizon: forecasts of the same date from
        # several origins are correlated beyond the h - 1 lags the test
        # allows for, so its p-value would be too small
        return np.nan, np.nan
    error = (rows["actual"] - rows["forecast"]) / rows["scale"]
    naive = (rows["actual"] - rows["last"]) / rows["scale"]
    power = 2 if loss == "squared" else 1
    # cut-offs are stored as text: order integer ones as numbers
    numeric = pd.to_numeric(rows["cutoff"], errors="coerce")
    order = rows["cutoff"] if numeric.isna().any() else numeric
    d = (
        (error.abs() ** power - naive.abs() ** power)
        .groupby([order, rows["step"]], sort=True)
        .mean()
    )
    if len(d) <= horizon or not np.any(d.to_numpy()):
        return np.nan, np.nan
    result = dm_test_differential(d.to_numpy(), h=horizon)
    return result.statistic, result.p_value


def summarise(
    forecasts: pd.DataFrame,
    scores: pd.DataFrame,
    fits: pd.DataFrame,
    horizon: int,
    dm_loss: str = "squared",
) -> pd.DataFrame:
    """The ranked table, one row per model.

    * ``relMAE``: geometric mean over (series, origin) of the model's MAE
      over no-change's MAE on the same actuals (the ranking; < 1 beats
      no-change);
    * ``MASE``, ``sMAPE``: arithmetic means over (series, origin); MASE is
      scaled by the in-sample one-step no-change MAE up to each cut-off;
    * ``MSPE ratio``: per series, the model's summed squared errors over
      no-change's (all origins and steps), then the geometric mean over
      series;
    * ``DA``: directional accuracy, mean over (series, origin);
    * ``wQL``: weighted quantile loss at levels 0.1..0.9 of each forecast
      (GluonTS's formula on one series), mean over (series, origin),
      ``sCRPS``: the quantile-approximated CRPS scaled like MASE, and
      ``cov80``: share of actuals inside the 0.1-0.9 interval (probabilistic
      models only);
    * ``DM``/``DM p``: HLN-corrected Diebold-Mariano statistic against
      no-change (negative: the model's loss is smaller) and its two-sided
      p-value;
    * ``fit s``: mean seconds per origin (all series), ``trainable``:
      trainable parameters (pricetune models).
    """
    records = []
    for model, rows in scores.groupby("model", sort=False):
        per_series = rows.groupby("series")[["SSE", "SSE_naive"]].sum()
        ratio = per_series["SSE"] / per_series["SSE_naive"]
        statistic, p_value = _dm(forecasts, model, horizon, dm_loss)
        model_fits = fits[fits["model"] == model]
        records.append(
            {
                "model": model,
                "relMAE": M.geometric_mean(rows["relMAE"]),
                "MASE": rows["MASE"].mean(),
                "sMAPE": rows["sMAPE"].mean(),
                "MSPE ratio": M.geometric_mean(ratio),
                "DA": rows["DA"].mean(),
                "wQL": rows["wQL"].mean(),
                "sCRPS": rows["sCRPS"].mean(),
                "cov80": rows["coverage80"].mean(),
                "DM": statistic,
                "DM p": p_value,
                "fit s": model_fits.groupby("cutoff")["seconds"].sum().mean(),
                "trainable": model_fits["n_trainable"].max(),
            }
        )
    table = pd.DataFrame(records).set_index("model")
    return table.sort_values("relMAE", kind="stable")
