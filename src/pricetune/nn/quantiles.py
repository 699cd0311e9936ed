"""Quantiles at any level from a head's fixed grid of quantile levels."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()


def interpolate_quantiles(
    levels: Sequence[float], values: np.ndarray, alpha: Sequence[float]
) -> np.ndarray:
    """Quantiles at levels ``alpha`` from quantiles ``values`` at ``levels``.

    Inside the grid, linear interpolation in the level. Outside it, the tails
    are extended as a normal distribution would be, with the scale implied by
    the two outermost levels on that side. The result is non-decreasing in
    ``alpha`` whenever ``values`` is non-decreasing in ``levels``.

    Parameters
    ----------
    levels : (n_levels,) strictly increasing in (0, 1)
    values : (n_steps, n_levels)
    alpha : (n_alpha,) levels in (0, 1)

    Returns
    -------
    (n_steps, n_alpha) array
    """
    levels = np.asarray(levels, dtype=float)
    values = np.asarray(values, dtype=float)
    alpha = np.asarray(alpha, dtype=float)
    if np.any((alpha <= 0) | (alpha >= 1)):
        raise ValueError(f"quantile levels must lie in (0, 1), got {alpha.tolist()}")
    z = np.array([_NORMAL.inv_cdf(level) for level in levels])
    z_alpha = np.array([_NORMAL.inv_cdf(a) for a in alpha])
    out = np.empty((values.shape[0], alpha.size))
    for step, row in enumerate(values):
        out[step] = np.interp(alpha, levels, row)
    low, high = alpha < levels[0], alpha > levels[-1]
    if low.any():
        scale = (values[:, 1] - values[:, 0]) / (z[1] - z[0])
        out[:, low] = values[:, :1] + np.outer(scale, z_alpha[low] - z[0])
    if high.any():
        scale = (values[:, -1] - values[:, -2]) / (z[-1] - z[-2])
        out[:, high] = values[:, -1:] + np.outer(scale, z_alpha[high] - z[-1])
    return out


#: levels read off each member's quantile function to sample a mixture
MIXTURE_POINTS = 256


def mixture_grid(n_points: int = MIXTURE_POINTS) -> np.ndarray:
    """The ``n_points`` evenly spread levels :func:`mixture_quantiles` reads
    each member's quantile function at."""
    return (np.arange(n_points) + 0.5) / n_points


def mixture_quantiles(
    levels: Sequence[float], members: np.ndarray, n_points: int = MIXTURE_POINTS
) -> np.ndarray:
    """Quantiles at ``levels`` of an equal-weight mixture of distributions.

    ``members`` is ``(n_members, n_steps, n_levels)``: each member's
    quantiles at ``levels``. Each member's quantile function (with the tails
    of :func:`interpolate_quantiles`) is read at ``n_points`` evenly spread
    levels; pooled, those points sample the mixture, whose quantiles are read
    off them. The spread between members widens the result, as it should,
    and the result never crosses. Returns ``(n_steps, n_levels)``.
    """
    members = np.asarray(members, dtype=float)
    grid = mixture_grid(n_points)
    pooled = np.concatenate(
        [interpolate_quantiles(levels, member, grid) for member in members], axis=1
    )
    return np.quantile(pooled, np.asarray(levels, dtype=float), axis=1).T


#: the factors :func:`best_interval_scale` tries, from a quarter to four times
INTERVAL_SCALES = np.geomspace(0.25, 4.0, 49)


def best_interval_scale(
    levels: Sequence[float], outputs: np.ndarray, targets: np.ndarray, scale
) -> float:
    """The factor on the quantiles' distances from the median that
    minimises the mean quantile loss of ``outputs`` ``(n, steps, n_levels)``
    against ``targets`` ``(n, steps)``, both in units of each window's
    ``scale`` ``(n, 1)`` (so every series weighs alike), from
    :data:`INTERVAL_SCALES`."""
    from pricetune.components.losses import pinball_loss

    scale = np.asarray(scale, dtype=np.float64)[:, :, None]  # (n, 1, 1)
    n, steps, n_levels = outputs.shape
    median = interpolate_quantiles(
        levels, outputs.reshape(n * steps, n_levels), [0.5]
    ).reshape(n, steps, 1)
    spread = ((outputs - median) / scale).reshape(-1, n_levels)
    actual = (targets[:, :, None] / scale).reshape(-1)
    centre = (median / scale).reshape(-1, 1)
    losses = [
        pinball_loss(actual, centre + factor * spread, np.asarray(levels)).mean()
        for factor in INTERVAL_SCALES
    ]
    return float(INTERVAL_SCALES[int(np.argmin(losses))])
