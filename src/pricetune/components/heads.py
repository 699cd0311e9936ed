"""Built-in heads: point and non-crossing quantile outputs behind a linear
map, an MLP or a recurrent layer, and a Student-t distribution head.

Every head but ``student_t`` ends in the same output layer
(:class:`ProjectedHead`): one linear map from its features to every step of
the horizon, read either as point forecasts (trained with ``mse``, ``mae``
or ``huber``) or as non-crossing quantiles (trained with the pinball loss).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch
import torch.nn.functional as F
from torch import nn

from pricetune.components import losses
from pricetune.components.contract import Head, check_quantile_levels

DEFAULT_QUANTILES = (
    0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98,
)  # fmt: skip
_POINT_LOSSES = {
    "mse": F.mse_loss,
    "mae": F.l1_loss,
    "huber": F.smooth_l1_loss,
}
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


def _inverse_softplus(value: float) -> float:
    """``x`` such that ``softplus(x) == value`` (``value > 0``)."""
    return math.log(math.expm1(value))


class ProjectedHead(Head):
    """Base for heads whose last layer, ``projection``, maps a feature vector
    per sample to every step of the horizon: point forecasts or quantiles.

    A subclass builds its own layers, calls :meth:`_build_output` with the
    number of features they give, and returns :meth:`_output` of those
    features from ``forward``; ``loss`` is provided.

    * ``quantiles=None``: a point head, ``n_outputs == 1``, trained with
      ``loss`` (``"mse"`` by default, ``"mae"`` or ``"huber"``).
    * a sequence of levels: a quantile head. The outputs never cross: the
      head predicts the lowest quantile and non-negative (softplus)
      increments to each next one, trained with the pinball loss. The bias
      starts at a standard normal's quantiles, so an untrained head gives
      sensible spreads in normalised units. ``loss`` must then be ``None``.
    """

    @classmethod
    def gives_quantiles(cls, head_kwargs: dict) -> bool:
        # a probabilistic head turns into a point head with quantiles=None
        if not cls.probabilistic:
            return False
        return head_kwargs.get("quantiles", DEFAULT_QUANTILES) is not None

    def _build_output(
        self,
        in_features: int,
        horizon: int,
        quantiles=None,
        loss: str | None = None,
    ) -> None:
        self.horizon = int(horizon)
        if quantiles is None:
            loss = "mse" if loss is None else loss
            if loss not in _POINT_LOSSES:
                raise ValueError(
                    f"loss must be one of {sorted(_POINT_LOSSES)}, got {loss!r}"
                )
            self._point_loss = _POINT_LOSSES[loss]
            self.quantiles = None
            self.n_outputs = 1
        else:
            if loss is not None:
                raise ValueError(
                    f"loss={loss!r} is for point outputs (quantiles=None); "
                    "quantile outputs train with the pinball loss"
                )
            self.quantiles = check_quantile_levels(quantiles)
            self.n_outputs = len(self.quantiles)
            self.register_buffer(
                "levels",
                torch.tensor(self.quantiles, dtype=torch.float32),
                persistent=False,
            )
        self.projection = nn.Linear(in_features, self.horizon * self.n_outputs)
        if self.quantiles is not None:
            self._initialise_quantile_bias()

    def _initialise_quantile_bias(self) -> None:
        normal = NormalDist()
        z = [normal.inv_cdf(level) for level in self.quantiles]
        gaps = [b - a for a, b in zip(z, z[1:], strict=False)]
        bias = [z[0]] + [_inverse_softplus(gap) for gap in gaps]
        with torch.no_grad():
            self.projection.bias.copy_(torch.tensor(bias).repeat(self.horizon))

    def _output(self, features: torch.Tensor) -> torch.Tensor:
        """``(batch, in_features)`` -> ``(batch, horizon, n_outputs)``."""
        raw = self.projection(features).view(-1, self.horizon, self.n_outputs)
        if self.quantiles is None:
            return raw
        lowest = raw[..., :1]
        increments = F.softplus(raw[..., 1:])
        return torch.cat([lowest, lowest + increments.cumsum(dim=-1)], dim=-1)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.quantiles is None:
            return self._point_loss(prediction[..., 0], target)
        # called through its module: heads.pinball_loss (prediction first,
        # the mean) is gone, and an old caller fails instead of swapping them
        levels = self.levels.to(prediction.dtype)
        return losses.pinball_loss(target, prediction, levels).mean()


class LinearHead(ProjectedHead):
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
        self.dropout = nn.Dropout(dropout)
        self._build_output(n_patches * hidden_size, horizon, loss=loss)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._output(self.dropout(hidden.flatten(start_dim=1)))


class QuantileHead(ProjectedHead):
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
        self.dropout = nn.Dropout(dropout)
        self._build_output(n_patches * hidden_size, horizon, quantiles=quantiles)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._output(self.dropout(hidden.flatten(start_dim=1)))


class MLPHead(ProjectedHead):
    """Flatten the hidden states, then hidden layers (linear, activation,
    dropout) before the output layer.

    Parameters
    ----------
    hidden_sizes : sequence of int, default (128,)
        width of each hidden layer; at least one.
    activation : {"gelu", "relu", "silu", "tanh"}, default "gelu"
    dropout : float, default 0.0
        after each hidden layer.
    quantiles : sequence of float or None, default 13 levels from 0.02 to 0.98
        non-crossing quantile outputs (pinball loss); ``None`` for a point
        head.
    loss : {"mse", "mae", "huber"}, optional
        the point head's loss (default ``"mse"``); only with
        ``quantiles=None``.
    """

    probabilistic = True  # by default; quantiles=None gives a point head

    def __init__(
        self,
        *,
        hidden_size: int,
        n_patches: int,
        horizon: int,
        hidden_sizes=(128,),
        activation: str = "gelu",
        dropout: float = 0.0,
        quantiles=DEFAULT_QUANTILES,
        loss: str | None = None,
    ):
        super().__init__()
        sizes = [int(size) for size in hidden_sizes]
        if not sizes or min(sizes) < 1:
            raise ValueError(
                f"hidden_sizes must hold at least one positive width, got "
                f"{hidden_sizes!r}; the 'linear' and 'quantile' heads have none"
            )
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        layers: list[nn.Module] = []
        width = n_patches * hidden_size
        for size in sizes:
            layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
            layers.append(nn.Dropout(dropout))
            width = size
        self.layers = nn.Sequential(*layers)
        self._build_output(width, horizon, quantiles=quantiles, loss=loss)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._output(self.layers(hidden.flatten(start_dim=1)))


class RecurrentHead(ProjectedHead):
    """A recurrent adaptation layer over the backbone's hidden states, one
    per patch in time order; its last output feeds the output layer.

    Parameters
    ----------
    rnn_size : int, default 64
        the recurrent layer's width.
    num_layers : int, default 1
    dropout : float, default 0.0
        between recurrent layers and before the output layer.
    quantiles : sequence of float or None, default 13 levels from 0.02 to 0.98
        non-crossing quantile outputs (pinball loss); ``None`` for a point
        head.
    loss : {"mse", "mae", "huber"}, optional
        the point head's loss (default ``"mse"``); only with
        ``quantiles=None``.
    """

    rnn_class: type[nn.RNNBase] = nn.LSTM
    probabilistic = True  # by default; quantiles=None gives a point head

    def __init__(
        self,
        *,
        hidden_size: int,
        n_patches: int,
        horizon: int,
        rnn_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
        quantiles=DEFAULT_QUANTILES,
        loss: str | None = None,
    ):
        super().__init__()
        self.rnn = self.rnn_class(
            hidden_size,
            int(rnn_size),
            num_layers=int(num_layers),
            batch_first=True,
            dropout=float(dropout) if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self._build_output(int(rnn_size), horizon, quantiles=quantiles, loss=loss)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        self.rnn.flatten_parameters()  # as in the recurrent backbones
        output, _ = self.rnn(hidden)
        return self._output(self.dropout(output[:, -1]))


class LSTMHead(RecurrentHead):
    """An LSTM adaptation layer over the hidden states (see
    :class:`RecurrentHead` for the options)."""

    rnn_class = nn.LSTM


class GRUHead(RecurrentHead):
    """A GRU adaptation layer over the hidden states (see
    :class:`RecurrentHead` for the options)."""

    rnn_class = nn.GRU


class StudentTHead(Head):
    """A Student-t distribution per step, trained by its negative
    log-likelihood.

    ``forward`` gives the distribution's parameters per step, ``(batch,
    horizon, 3)``: location, scale (``softplus``, above ``1e-4``) and degrees
    of freedom (``2 + softplus``, so the variance exists). Quantiles and
    intervals come from the distribution (:meth:`to_quantiles`); a covariate
    effect moves the location only (:meth:`shift`). An untrained head starts
    near location 0, scale 1 and 5 degrees of freedom in normalised units.

    Parameters
    ----------
    quantiles : sequence of float, default 13 levels from 0.02 to 0.98
        the levels :meth:`to_quantiles` gives, from which the forecaster
        interpolates any other level.
    dropout : float, default 0.0
    """

    probabilistic = True
    n_outputs = 3
    min_scale = 1e-4
    initial_df = 5.0

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
        self.horizon = int(horizon)
        self.dropout = nn.Dropout(dropout)
        self.projection = nn.Linear(n_patches * hidden_size, 3 * self.horizon)
        bias = [0.0, _inverse_softplus(1.0), _inverse_softplus(self.initial_df - 2)]
        with torch.no_grad():
            self.projection.bias.copy_(torch.tensor(bias).repeat(self.horizon))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        flat = self.dropout(hidden.flatten(start_dim=1))
        raw = self.projection(flat).view(-1, self.horizon, 3)
        loc = raw[..., 0]
        scale = F.softplus(raw[..., 1]) + self.min_scale
        df = 2.0 + F.softplus(raw[..., 2])
        return torch.stack([loc, scale, df], dim=-1)

    def distribution(self, prediction: torch.Tensor) -> torch.distributions.StudentT:
        """The Student-t distributions of ``forward``'s output, shape
        ``(batch, horizon)``."""
        loc, scale, df = prediction.unbind(dim=-1)
        return torch.distributions.StudentT(df, loc, scale, validate_args=False)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return -self.distribution(prediction).log_prob(target).mean()

    def to_quantiles(self, prediction: torch.Tensor) -> torch.Tensor:
        """The quantiles at :attr:`quantiles`, ``(batch, horizon, n_levels)``
        float32: ``loc + scale * t_df.ppf(level)``.

        torch has no Student-t quantile function: the standard ones come
        from :func:`scipy.stats.t.ppf` on the CPU, so gradients reach the
        location and scale but not the degrees of freedom.
        """
        from scipy import stats

        loc, scale, df = prediction.float().unbind(dim=-1)
        standard = stats.t.ppf(
            torch.tensor(self.quantiles, dtype=torch.float64).numpy(),
            df.detach().cpu().double().numpy()[..., None],
        )
        standard = torch.as_tensor(
            standard, dtype=torch.float32, device=prediction.device
        )
        return loc.unsqueeze(-1) + scale.unsqueeze(-1) * standard

    def shift(self, prediction: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """Move the location by ``offset``; scale and degrees of freedom stay."""
        loc = prediction[..., :1] + offset.unsqueeze(-1)
        return torch.cat([loc, prediction[..., 1:]], dim=-1)
