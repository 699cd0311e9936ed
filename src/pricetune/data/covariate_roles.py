"""What each column of ``X`` is to a window: known-future (read over the
context and the horizon, the default), past-only (read up to the window's
cut-off only) or static (constant within a series, read once).

The roles become a reading mask over a window's covariate span, which the
model multiplies into its covariates (:class:`~pricetune.nn.model.
PatchForecastModel`): every way windows are gathered (host, device,
panel) then reads the same values, and what the mask zeroes never reaches
the network. At ``predict`` the rows after the cut-off of past-only and
static columns are not taken from ``X`` at all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def check_roles(columns, past, static) -> None:
    """The columns named ``past_covariates`` and ``static_covariates`` are
    columns of ``X`` and have one role each."""
    columns = list(columns)
    for option, names in (("past_covariates", past), ("static_covariates", static)):
        if names and not columns:
            raise ValueError(f"{option} names columns of X, but fit got no X")
        unknown = [name for name in names if name not in columns]
        if unknown:
            raise ValueError(
                f"{option} names columns that X does not have: {unknown} "
                f"(X has {columns})"
            )
    both = sorted(set(past) & set(static))
    if both:
        raise ValueError(
            f"{both} are in both past_covariates and static_covariates: "
            "give each column one role"
        )


def check_static(X: pd.DataFrame, static) -> None:
    """Each static column holds one value per series (per panel instance,
    or over the whole of a single series)."""
    if not static:
        return
    if isinstance(X.index, pd.MultiIndex):
        groups = X[list(static)].groupby(level=list(range(X.index.nlevels - 1)))
        varying = [name for name in static if (groups[name].nunique() > 1).any()]
    else:
        varying = [name for name in static if X[name].nunique() > 1]
    if varying:
        raise ValueError(
            f"static_covariates {varying} change within a series; a static "
            "column holds one value per series (use past_covariates for a "
            "column that changes over time)"
        )


def known_future(columns, past, static) -> list:
    """The columns read over the horizon: every column with neither role."""
    return [name for name in columns if name not in past and name not in static]


def reading_mask(columns, past, static, context_length: int, horizon: int):
    """``(span * C,)`` floats, 1 where a window reads a covariate, in the
    order windows flatten their ``(span, C)`` covariates (time first);
    ``None`` when every column is known-future (nothing to mask)."""
    columns = list(columns)
    if not any(name in past or name in static for name in columns):
        return None
    mask = np.ones((context_length + horizon, len(columns)))
    for position, name in enumerate(columns):
        if name in past:  # up to the cut-off
            mask[context_length:, position] = 0.0
        elif name in static:  # once: the context's last row
            mask[:, position] = 0.0
            mask[context_length - 1, position] = 1.0
    return mask.reshape(-1)
