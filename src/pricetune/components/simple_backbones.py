"""Backbones trained from scratch (LSTM, GRU) and the no-backbone baseline."""

from __future__ import annotations

import torch
from torch import nn

from pricetune.components.contract import Backbone


class RecurrentBackbone(Backbone):
    """A linear patch embedding followed by a recurrent network.

    Parameters
    ----------
    hidden_size : int, default 64
    num_layers : int, default 1
    dropout : float, default 0.0
        between recurrent layers (only used when ``num_layers > 1``).
    """

    rnn_class: type[nn.Module] = nn.LSTM

    def __init__(
        self,
        *,
        patch_length: int,
        n_patches: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.hidden_size = int(hidden_size)
        self.embedding = nn.Linear(patch_length, self.hidden_size)
        self.body = self.rnn_class(
            self.hidden_size,
            self.hidden_size,
            num_layers=int(num_layers),
            batch_first=True,
            dropout=float(dropout) if num_layers > 1 else 0.0,
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        # cuDNN wants one contiguous weight buffer; after a copy or a device
        # move it may not be (no-op on the CPU)
        self.body.flatten_parameters()
        output, _ = self.body(self.embedding(patches))
        return output


class LSTMBackbone(RecurrentBackbone):
    """LSTM over patch embeddings, trained from scratch."""

    rnn_class = nn.LSTM


class GRUBackbone(RecurrentBackbone):
    """GRU over patch embeddings, trained from scratch."""

    rnn_class = nn.GRU


class NoBackbone(Backbone):
    """No backbone: the patches go straight to the head (ablation baseline).

    With the ``linear`` head this is a linear model of the normalised context
    window, in the spirit of NLinear.
    """

    def __init__(self, *, patch_length: int, n_patches: int):
        super().__init__()
        self.hidden_size = int(patch_length)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return patches
