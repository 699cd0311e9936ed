"""Split-conformal intervals: conformalized quantile regression (Romano,
Patterson and Candès, NeurIPS 2019) on held-out windows.

For each pair of levels ``q`` and ``1 - q`` of a head's quantile grid, and
each horizon step, the conformity score of a held-out window is how far its
actual value lies outside the pair's interval, ``max(low - y, y - high)``,
in units of the window's scale (so every series of a panel weighs alike).
The ``ceil((n + 1)(1 - 2q)) / n`` empirical quantile of the ``n`` scores
widens (or, when negative, narrows) that interval on both sides: with
exchangeable windows the interval then covers at least ``1 - 2q``.

Written here rather than taken from a library: MAPIE and sktime's
``ConformalIntervals`` wrap a whole estimator and refit it per fold, while
this calibrates the quantiles the network already gives on the validation
windows it already holds, at no extra training.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np


def level_pairs(levels: Sequence[float]) -> list[tuple[int, int]]:
    """Index pairs ``(low, high)`` of the levels ``q`` < 0.5 whose partner
    ``1 - q`` is on the grid too (to 1e-9)."""
    levels = np.asarray(levels, dtype=float)
    pairs = []
    for low, level in enumerate(levels):
        if level >= 0.5:
            continue
        partners = np.flatnonzero(np.isclose(levels, 1.0 - level, atol=1e-9))
        if partners.size:
            pairs.append((low, int(partners[0])))
    return pairs


def conformal_margins(
    levels: Sequence[float], outputs: np.ndarray, targets: np.ndarray, scale
) -> np.ndarray:
    """Each level's shift ``(steps, n_levels)``, in units of each window's
    scale, from ``n`` held-out windows: ``outputs`` ``(n, steps, n_levels)``
    (quantiles in the data's units), ``targets`` ``(n, steps)`` and
    ``scale`` ``(n, 1)``. A pair's low level gets ``-margin``, its high
    level ``+margin``; the median and levels without a partner get 0.

    Raises
    ------
    ValueError
        no pair of levels ``q``, ``1 - q`` on the grid, or no window.
    """
    pairs = level_pairs(levels)
    if not pairs:
        raise ValueError(
            "conformal intervals need quantile levels in pairs q and 1 - q; "
            f"the head gives {list(levels)}"
        )
    n, steps, n_levels = outputs.shape
    if n == 0:
        raise ValueError("conformal intervals need at least one held-out window")
    scale = np.asarray(scale, dtype=np.float64).reshape(n, 1)
    margins = np.zeros((steps, n_levels))
    short = []
    for low, high in pairs:
        nominal = 1.0 - 2.0 * float(levels[low])
        scores = (
            np.maximum(outputs[:, :, low] - targets, targets - outputs[:, :, high])
            / scale
        )  # (n, steps)
        # the k-th smallest score, k = ceil((n + 1)(1 - 2q)), counted in
        # integers (a quantile at k / n can round to the next one); with
        # k > n no score is large enough and the largest is used
        k = math.ceil(round((n + 1) * nominal, 9))
        if k > n:
            short.append(f"{levels[low]:g}-{levels[high]:g}")
        margin = np.sort(scores, axis=0)[min(k, n) - 1]
        margins[:, low] = -margin
        margins[:, high] = margin
    if short:
        warnings.warn(
            f"conformal intervals: {n} held-out windows are too few to guarantee "
            f"the coverage of the levels {', '.join(short)}; their margins are "
            "the largest score seen",
            UserWarning,
            stacklevel=2,
        )
    return margins


def apply_margins(
    levels: Sequence[float], outputs: np.ndarray, margins: np.ndarray, scale
) -> np.ndarray:
    """``outputs`` ``(n, steps, n_levels)`` shifted by ``margins`` ``(steps,
    n_levels)`` times each window's ``scale`` ``(n, 1)``. No level crosses
    the median (an interval narrowed past it stops there), and the levels
    stay in order."""
    from pricetune.nn.quantiles import interpolate_quantiles

    levels = np.asarray(levels, dtype=float)
    scale = np.asarray(scale, dtype=np.float64).reshape(-1, 1, 1)
    shifted = outputs + margins[None] * scale
    below, above = levels < 0.5, levels > 0.5
    # the median as predict reads it (interpolated when 0.5 is not a level)
    n, steps, n_levels = outputs.shape
    median = interpolate_quantiles(
        levels, outputs.reshape(n * steps, n_levels), [0.5]
    ).reshape(n, steps, 1)
    shifted[:, :, below] = np.minimum(shifted[:, :, below], median)
    shifted[:, :, above] = np.maximum(shifted[:, :, above], median)
    return np.sort(shifted, axis=-1)
