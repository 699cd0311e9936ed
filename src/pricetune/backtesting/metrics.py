"""Forecast accuracy metrics for the backtest, on plain numpy arrays.

Every function takes one forecast (one series, one origin): ``y_true`` and
``y_pred`` hold the ``h`` actuals and point forecasts, ``y_train`` the
history up to the cut-off (its last value is the no-change forecast), and
``quantiles`` an ``(h, n_levels)`` array of quantile forecasts at ``levels``.
The runner aggregates them over series and origins (see
:func:`pricetune.backtesting.runner.summarise`).
"""

from __future__ import annotations

import numpy as np

# numpy-only, like this module
from pricetune.components.losses import pinball_loss as _elementwise_pinball_loss

__all__ = [
    "coverage",
    "crps_from_quantiles",
    "directional_accuracy",
    "geometric_mean",
    "in_sample_naive_mae",
    "mae",
    "mase",
    "mse",
    "pinball_loss",
    "relative_mae",
    "smape",
    "weighted_quantile_loss",
]


def _arrays(*values):
    return [np.asarray(v, dtype=np.float64) for v in values]


def mae(y_true, y_pred) -> float:
    y_true, y_pred = _arrays(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def mse(y_true, y_pred) -> float:
    y_true, y_pred = _arrays(y_true, y_pred)
    return float(np.mean((y_true - y_pred) ** 2))


def in_sample_naive_mae(y_train, sp: int = 1) -> float:
    """Mean absolute ``sp``-step change of the training history: the
    in-sample error of the (seasonal) no-change forecast, MASE's scale."""
    (y_train,) = _arrays(y_train)
    if len(y_train) <= sp:
        raise ValueError(f"y_train needs more than sp={sp} values")
    return float(np.mean(np.abs(y_train[sp:] - y_train[:-sp])))


def mase(y_true, y_pred, y_train, sp: int = 1) -> float:
    """Mean absolute scaled error (Hyndman & Koehler, 2006): the MAE divided
    by the in-sample MAE of the no-change forecast on ``y_train`` alone."""
    scale = in_sample_naive_mae(y_train, sp)
    return mae(y_true, y_pred) / scale if scale > 0 else float("nan")


def smape(y_true, y_pred) -> float:
    """Symmetric MAPE in percent: ``200 * mean(|y - f| / (|y| + |f|))``
    (a step where both are 0 counts as 0)."""
    y_true, y_pred = _arrays(y_true, y_pred)
    denominator = np.abs(y_true) + np.abs(y_pred)
    ratio = np.divide(
        np.abs(y_true - y_pred),
        denominator,
        out=np.zeros_like(denominator),
        where=denominator > 0,
    )
    return float(200.0 * np.mean(ratio))


def relative_mae(y_true, y_pred, y_train) -> float:
    """MAE of the forecast over MAE of the no-change forecast (the last
    value of ``y_train``) on the same actuals; below 1 beats no-change."""
    y_true, y_train = _arrays(y_true, y_train)
    naive = mae(y_true, np.full_like(y_true, y_train[-1]))
    return mae(y_true, y_pred) / naive if naive > 0 else float("nan")


def geometric_mean(values) -> float:
    """Geometric mean of the positive, finite ``values`` (others ignored;
    NaN when none is left)."""
    (values,) = _arrays(values)
    values = values[np.isfinite(values) & (values > 0)]
    return float(np.exp(np.mean(np.log(values)))) if len(values) else float("nan")


def directional_accuracy(y_true, y_pred, y_train) -> float:
    """Share of steps where the forecast moves from the last observed value
    in the direction the actual moved: ``sign(f - last) == sign(y - last)``.

    A forecast that predicts no change at every step (the naive forecast)
    has no direction: NaN.
    """
    y_true, y_pred, y_train = _arrays(y_true, y_pred, y_train)
    last = y_train[-1]
    predicted = np.sign(y_pred - last)
    if not np.any(predicted):
        return float("nan")
    return float(np.mean(predicted == np.sign(y_true - last)))


def pinball_loss(y_true, quantiles, levels) -> np.ndarray:
    """Pinball (quantile) losses, ``(h, n_levels)``:
    ``max(q (y - f_q), (q - 1) (y - f_q))``, in float64 (the formula is
    :func:`pricetune.components.losses.pinball_loss`)."""
    y_true, quantiles, levels = _arrays(y_true, quantiles, levels)
    return _elementwise_pinball_loss(y_true, quantiles, levels)


def weighted_quantile_loss(y_true, quantiles, levels) -> float:
    """Weighted quantile loss of one forecast (GluonTS's
    ``mean_wQuantileLoss`` on a single series): for each level,
    ``2 * sum_t pinball / sum_t |y_t|``, then the mean over levels."""
    (y_true,) = _arrays(y_true)
    losses = pinball_loss(y_true, quantiles, levels)
    return float(np.mean(2.0 * losses.sum(axis=0) / np.sum(np.abs(y_true))))


def crps_from_quantiles(y_true, quantiles, levels) -> float:
    """CRPS approximated from quantiles: ``mean_t mean_q 2 * pinball``
    (exact as the levels fill (0, 1) evenly), in the data's units."""
    return float(np.mean(2.0 * pinball_loss(y_true, quantiles, levels)))


def coverage(y_true, lower, upper) -> float:
    """Share of actuals inside ``[lower, upper]``."""
    y_true, lower, upper = _arrays(y_true, lower, upper)
    return float(np.mean((y_true >= lower) & (y_true <= upper)))
