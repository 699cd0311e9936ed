"""Built-in heads: a linear point head and a non-crossing quantile head."""

from __future__ import annotations

import math
from statistics import NormalDist

import torch
import torch.nn.functional as F
from torch import nn

from pricetune.components.contract import Head, check_quantile_levels

DEFAULT_QUANTILES = (
    0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98,
)  # fmt: skip
_POINT_LOSSES = {
    "mse": F.mse_loss,
    "mae": F.l1_loss,
    "huber": F.smooth_l1_loss,
}


class LinearHead(Head):
    """Flatten the hidden states and map them linearly to ``horizon`` points.

    Parameters
    ----------
    dropout : float, default 0.0
    loss : {"mse", "mae", "huber"}, default "mse"
    """

    n_outputs = 1
    quantiles = None

    def __init__(
        self,
        *,
        hidden_size: int,
        n_patches: int,
        horizon: int,
        dropout: float = 0.0,
        loss: str = "mse",
    ):
        super().__init__()
        if loss not in _POINT_LOSSES:
            raise ValueError(
                f"loss must be one of {sorted(_POINT_LOSSES)}, got {loss!r}"
            )
        self._loss = _POINT_LOSSES[loss]
        self.dropout = nn.Dropout(dropout)
        self.projection = nn.Linear(n_patches * hidden_size, horizon)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        flat = self.dropout(hidden.flatten(start_dim=1))
        return self.projection(flat).unsqueeze(-1)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._loss(prediction[..., 0], target)


def pinball_loss(
    prediction: torch.Tensor, target: torch.Tensor, levels: torch.Tensor
) -> torch.Tensor:
    """Mean pinball (quantile) loss.

    ``prediction`` is ``(..., n_levels)``, ``target`` is ``prediction``'s
    shape without the last axis, ``levels`` is ``(n_levels,)``.
    """
    error = target.unsqueeze(-1) - prediction
    return torch.maximum(levels * error, (levels - 1.0) * error).mean()


class QuantileHead(Head):
    """Several quantiles per step, trained with the pinball loss.

    The outputs never cross: the head predicts the lowest quantile and
    non-negative (softplus) increments to each next one. The bias starts at a
    standard normal's quantiles, so an untrained head gives sensible spreads
    in normalised units.

    Parameters
    ----------
    quantiles : sequence of float, default 13 levels from 0.02 to 0.98
        strictly increasing levels in (0, 1).
    dropout : float, default 0.0
    """

    probabilistic = True

    def __init__(
        self,
        *,
        hidden_size: int,
        n_patches: int,
        horizon: int,
        quantiles=DEFAULT_QUANTILES,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.quantiles = check_quantile_levels(quantiles)
        self.n_outputs = len(self.quantiles)
        self.horizon = int(horizon)
        self.dropout = nn.Dropout(dropout)
        self.projection = nn.Linear(n_patches * hidden_size, horizon * self.n_outputs)
        self.register_buffer(
            "levels",
            torch.tensor(self.quantiles, dtype=torch.float32),
            persistent=False,
        )
        self._initialise_bias()

    def _initialise_bias(self) -> None:
        normal = NormalDist()
        z = [normal.inv_cdf(level) for level in self.quantiles]
        gaps = [b - a for a, b in zip(z, z[1:], strict=False)]
        # softplus^-1(gap) = log(expm1(gap))
        bias = [z[0]] + [math.log(math.expm1(gap)) for gap in gaps]
        with torch.no_grad():
            self.projection.bias.copy_(torch.tensor(bias).repeat(self.horizon))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        flat = self.dropout(hidden.flatten(start_dim=1))
        raw = self.projection(flat).view(-1, self.horizon, self.n_outputs)
        lowest = raw[..., :1]
        increments = F.softplus(raw[..., 1:])
        return torch.cat([lowest, lowest + increments.cumsum(dim=-1)], dim=-1)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return pinball_loss(prediction, target, self.levels.to(prediction.dtype))
