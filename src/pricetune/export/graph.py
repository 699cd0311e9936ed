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


class ForecastGraph(nn.Module):
    """A trained :class:`~pricetune.nn.model.PatchForecastModel` with the
    steps of the forecaster's predict around it.

    ``(batch, context_length)`` raw values in; out, in the data's units,
    the head's values ``(batch, horizon, n_values)`` (quantiles at the
    head's levels, or one point value) with their distances from the median
    times ``interval_scale`` (``calibrate_intervals``), and the median
    ``(batch, horizon)``: what
    :meth:`~pricetune.estimators.fine_tuning.FineTuningMixin._raw_outputs`
    and ``predict`` compute, in float32.

    Parameters
    ----------
    model : PatchForecastModel
        in eval mode, on the CPU, without covariates.
    interval_scale : float
    weights : array of shape (n_values,)
        :func:`median_weights` of the head's levels.
    margins : array of shape (horizon, n_values), optional
        the ``conformal_margins_`` of ``calibrate_intervals="conformal"``,
        applied as :func:`pricetune.nn.conformal.apply_margins` does.
    levels : sequence of float, optional
        the head's levels (needed with ``margins``).
    """

    def __init__(
        self,
        model: nn.Module,
        interval_scale: float,
        weights,
        margins=None,
        levels=None,
    ):
        super().__init__()
        self.model = model
        self.interval_scale = float(interval_scale)
        self.register_buffer(
            "weights", torch.tensor(np.asarray(weights), dtype=torch.float32)
        )
        self.conformal = margins is not None
        if margins is not None:
            levels = np.asarray(levels, dtype=float)
            self.register_buffer(
                "margins", torch.tensor(np.asarray(margins), dtype=torch.float32)
            )
            self.register_buffer("below", torch.tensor(levels < 0.5).reshape(1, 1, -1))
            self.register_buffer("above", torch.tensor(levels > 0.5).reshape(1, 1, -1))

    def forward(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.model.head.to_quantiles(self.model(context)).float()
        loc, scale = self.model.scaling(context)
        values = output * scale[..., None] + loc[..., None]
        median = (values * self.weights).sum(dim=-1, keepdim=True)
        if self.conformal:
            shifted = values + self.margins * scale[..., None]
            # no level crosses the median, and the levels stay in order
            shifted = torch.where(self.below, torch.minimum(shifted, median), shifted)
            shifted = torch.where(self.above, torch.maximum(shifted, median), shifted)
            values = torch.sort(shifted, dim=-1).values
        elif self.interval_scale != 1.0:
            values = median + self.interval_scale * (values - median)
        return values, median[..., 0]
