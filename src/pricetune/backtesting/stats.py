"""The Diebold-Mariano test with the Harvey-Leybourne-Newbold correction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DMResult", "dm_test", "dm_test_differential"]


@dataclass(frozen=True)
class DMResult:
    """``statistic`` is HLN-corrected; negative means the first forecast has
    the smaller loss. ``p_value`` is two-sided, ``p_value_less`` one-sided
    (alternative: the first forecast is more accurate). ``h`` is the
    horizon used for the long-run variance (1 after a fallback, when the
    ``h``-lag estimate was not positive)."""

    statistic: float
    p_value: float
    p_value_less: float
    mean_differential: float
    n: int
    h: int


def _loss(errors: np.ndarray, loss: str) -> np.ndarray:
    if loss == "squared":
        return errors**2
    if loss == "absolute":
        return np.abs(errors)
    raise ValueError(f"loss must be 'squared' or 'absolute', got {loss!r}")


def dm_test(e1, e2, h: int = 1, loss: str = "squared") -> DMResult:
    """Diebold-Mariano (1995) test of equal accuracy of two forecasts from
    their errors ``e1`` and ``e2`` (time-ordered), with the small-sample
    correction of Harvey, Leybourne and Newbold (1997).

    ``d_t = L(e1_t) - L(e2_t)``; its long-run variance adds the
    autocovariances up to lag ``h - 1`` (forecasts ``h`` steps ahead have
    MA(h-1) errors)::

        DM = mean(d) / sqrt((g_0 + 2 sum_{k<h} g_k) / n)
        HLN = DM * sqrt((n + 1 - 2h + h(h-1)/n) / n)

    with ``g_k = 1/n sum_t (d_t - mean)(d_{t-k} - mean)``, and p-values from
    Student's t with ``n - 1`` degrees of freedom (as R's
    ``forecast::dm.test``). When that variance is not positive, the test
    falls back to ``h = 1``, as ``dm.test`` does; with ``n <= h``
    differentials the statistic is NaN.
    """
    e1 = np.asarray(e1, dtype=np.float64)
    e2 = np.asarray(e2, dtype=np.float64)
    if e1.shape != e2.shape or e1.ndim != 1:
        raise ValueError("e1 and e2 must be 1-d arrays of the same length")
    return dm_test_differential(_loss(e1, loss) - _loss(e2, loss), h)


def dm_test_differential(d, h: int = 1) -> DMResult:
    """:func:`dm_test` from the loss differentials ``d`` themselves."""
    from scipy import stats

    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 1:
        raise ValueError("d must be a 1-d array")
    h = int(h)
    if h < 1:
        raise ValueError(f"h must be at least 1, got {h}")
    n = len(d)
    if n < 2:
        raise ValueError("the DM test needs at least 2 loss differentials")
    if n <= h:  # the HLN factor vanishes: no test with so few differentials
        nan = float("nan")
        return DMResult(nan, nan, nan, float(d.mean()), n, h)
    mean = float(d.mean())
    centred = d - mean
    while True:
        lags = min(h, n) - 1
        gamma = [float(centred[k:] @ centred[: n - k]) / n for k in range(lags + 1)]
        variance = (gamma[0] + 2.0 * sum(gamma[1:])) / n
        if variance > 0 or h == 1:
            break
        h = 1
    if variance <= 0:  # every differential equal: no evidence either way
        statistic = 0.0 if mean == 0 else float(np.sign(mean) * np.inf)
    else:
        correction = np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
        statistic = float(mean / np.sqrt(variance) * correction)
    p_value = float(2 * stats.t.cdf(-abs(statistic), df=n - 1))
    p_less = float(stats.t.cdf(statistic, df=n - 1))
    return DMResult(statistic, p_value, p_less, mean, n, h)
