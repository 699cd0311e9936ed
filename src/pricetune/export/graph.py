"""The network as ONNX exports it: raw context windows in, forecasts in
price units out (the model's normalisation and its undoing inside)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: the names of the exported graph's input and outputs
INPUT_NAME = "context"
OUTPUT_NAMES = ("quantiles", "point")


def median_weights(levels) -> np.ndarray:
    """The weights that give the median (level 0.5) as a sum of a head's
    outputs at ``levels``, as the forecaster reads it.

    :func:`pricetune.nn.quantiles.interpolate_quantiles` is linear in the
    values for fixed levels (interpolation inside the grid, a normal tail
    outside it), so its result on the identity matrix is those weights;
    they sum to 1. A point head (``levels=None``) has the one weight 1.
    """
    from pricetune.nn.quantiles import interpolate_quantiles

    if levels is None:
        return np.ones(1)
    return interpolate_quantiles(levels, np.eye(len(levels)), [0.5])[:, 0]


def mixture_reading(levels, n_members: int):
    """What :func:`pricetune.nn.quantiles.mixture_quantiles` computes, as
    fixed arrays, so that a graph can mix an ensemble's quantiles.

    Each member's quantile function read at the mixture grid is linear in
    its quantiles (as for :func:`median_weights`): ``values @ spread``
    with ``spread`` ``(n_levels, n_points)``. The pooled points of
    ``n_members`` members, sorted, give each level's quantile by linear
    interpolation between two fixed ranks (numpy's default "linear"
    method): ``sorted[below] + fraction * (sorted[above] - sorted[below])``.

    Returns
    -------
    spread : array of shape (n_levels, n_points)
    below, above : int arrays of shape (n_levels,)
    fraction : array of shape (n_levels,)
    """
    from pricetune.nn.quantiles import interpolate_quantiles, mixture_grid

    levels = np.asarray(levels, dtype=float)
    grid = mixture_grid()
    spread = interpolate_quantiles(levels, np.eye(len(levels)), grid)
    total = n_members * len(grid)
    positions = levels * (total - 1)
    below = np.floor(positions).astype(np.int64)
    above = np.minimum(below + 1, total - 1)
    return spread, below, above, positions - below


class ForecastGraph(nn.Module):
    """A trained :class:`~pricetune.nn.model.PatchForecastModel`, or the
    members of an ensemble, with the steps of the forecaster's predict
    around it.

    ``(batch, context_length)`` raw values in; out, in the data's units,
    the head's values ``(batch, horizon, n_values)`` (quantiles at the
    head's levels, or one point value) with their distances from the median
    times ``interval_scale`` (``calibrate_intervals``), all of them moved
    toward the context's last value by ``shrinkage``, and the median
    ``(batch, horizon)``: what
    :meth:`~pricetune.estimators.fine_tuning.FineTuningMixin._raw_outputs`
    and ``predict`` compute, in float32. The quantiles of several members
    are mixed as :func:`~pricetune.nn.quantiles.mixture_quantiles` mixes
    them (point forecasts are averaged), before the calibration.

    Parameters
    ----------
    models : list of PatchForecastModel
        one model, or an ensemble's members; in eval mode, on the CPU,
        without covariates.
    interval_scale : float
    weights : array of shape (n_values,)
        :func:`median_weights` of the head's levels.
    margins : array of shape (horizon, n_values), optional
        the ``conformal_margins_`` of ``calibrate_intervals="conformal"``,
        applied as :func:`pricetune.nn.conformal.apply_margins` does.
    levels : sequence of float, optional
        the head's levels (needed with ``margins`` or several members of a
        quantile head).
    shrinkage : float, default 0.0
        the forecaster's ``shrinkage_``: every value moves this share of the
        way from the median to the context's last value, before the
        calibration (which keeps the median where it is).
    """

    def __init__(
        self,
        models: list,
        interval_scale: float,
        weights,
        margins=None,
        levels=None,
        shrinkage: float = 0.0,
    ):
        super().__init__()
        self.members = nn.ModuleList(models)
        self.interval_scale = float(interval_scale)
        self.shrinkage = float(shrinkage)
        self.register_buffer(
            "weights", torch.tensor(np.asarray(weights), dtype=torch.float32)
        )
        self.mixes = len(models) > 1 and levels is not None
        if self.mixes:
            spread, below, above, fraction = mixture_reading(levels, len(models))
            self.register_buffer("spread", torch.tensor(spread, dtype=torch.float32))
            self.register_buffer("below", torch.tensor(below))
            self.register_buffer("above", torch.tensor(above))
            self.register_buffer(
                "fraction", torch.tensor(fraction, dtype=torch.float32)
            )
        self.conformal = margins is not None
        if margins is not None:
            levels = np.asarray(levels, dtype=float)
            self.register_buffer(
                "margins", torch.tensor(np.asarray(margins), dtype=torch.float32)
            )
            self.register_buffer(
                "below_median", torch.tensor(levels < 0.5).reshape(1, 1, -1)
            )
            self.register_buffer(
                "above_median", torch.tensor(levels > 0.5).reshape(1, 1, -1)
            )

    @property
    def model(self) -> nn.Module:
        """The (first) member: its backbone and head name the export."""
        return self.members[0]

    def _member_values(self, member, context):
        output = member.head.to_quantiles(member(context)).float()
        loc, scale = member.scaling(context)
        return output * scale[..., None] + loc[..., None], scale

    def _combined(self, context):
        """The members' values in the data's units, mixed or averaged, and
        the context's scale (every member scales alike)."""
        outputs = [self._member_values(member, context) for member in self.members]
        scale = outputs[0][1]
        if len(outputs) == 1:
            return outputs[0][0], scale
        if not self.mixes:  # point forecasts: their mean
            return torch.stack([value for value, _ in outputs]).mean(dim=0), scale
        # a product and a sum rather than a matrix product: int8 export
        # quantises MatMul inputs per tensor, and these are prices of any
        # scale (a panel's $1 and $2,000 series in one batch)
        pooled = torch.cat(
            [(value.unsqueeze(-1) * self.spread).sum(dim=-2) for value, _ in outputs],
            dim=-1,
        )
        ordered = torch.sort(pooled, dim=-1).values
        low = ordered.index_select(-1, self.below)
        high = ordered.index_select(-1, self.above)
        return low + self.fraction * (high - low), scale

    def forward(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, scale = self._combined(context)
        median = (values * self.weights).sum(dim=-1, keepdim=True)
        if self.shrinkage != 0.0:  # every value moves as far as the median
            shift = self.shrinkage * (context[:, -1, None, None] - median)
            values, median = values + shift, median + shift
        if self.conformal:
            shifted = values + self.margins * scale[..., None]
            # no level crosses the median, and the levels stay in order
            shifted = torch.where(
                self.below_median, torch.minimum(shifted, median), shifted
            )
            shifted = torch.where(
                self.above_median, torch.maximum(shifted, median), shifted
            )
            values = torch.sort(shifted, dim=-1).values
        elif self.interval_scale != 1.0:
            values = median + self.interval_scale * (values - median)
        return values, median[..., 0]
