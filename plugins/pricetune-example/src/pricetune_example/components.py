"""The example plugin's components, one of each kind.

Each follows its contract in :mod:`pricetune.components.contract`:
constructors take keyword arguments only (the forecaster's structural ones
plus the user's ``*_kwargs``), so an unknown argument raises ``TypeError``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from pricetune.components.contract import Backbone, Head, Strategy
from torch import nn


class ExampleMLPBackbone(Backbone):
    """A per-patch MLP: each patch is embedded and transformed on its own.

    ``embedding`` is ``Linear(patch_length, hidden_size)``; ``body`` is
    ``GELU -> Linear(hidden_size, hidden_size) -> LayerNorm``. Patches do not
    see each other; the head combines them.

    Parameters
    ----------
    hidden_size : int, default 32
        width of the hidden states.
    """

    # LoRA (the built-in "lora" strategy) adapts the body's Linear layer.
    lora_target_modules = ["linear"]

    def __init__(self, *, patch_length: int, n_patches: int, hidden_size: int = 32):
        super().__init__()  # sets embedding and body to None first
        self.hidden_size = int(hidden_size)
        self.embedding = nn.Linear(patch_length, self.hidden_size)
        self.body = nn.Sequential(
            OrderedDict(
                activation=nn.GELU(),
                linear=nn.Linear(self.hidden_size, self.hidden_size),
                norm=nn.LayerNorm(self.hidden_size),
            )
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        # (batch, n_patches, patch_length) -> (batch, n_patches, hidden_size)
        return self.body(self.embedding(patches))


class ExampleMeanPoolHead(Head):
    """Average the hidden states over patches, then map linearly to the
    horizon. A point head trained with the mean squared error."""

    n_outputs = 1
    quantiles = None
    probabilistic = False

    def __init__(self, *, hidden_size: int, n_patches: int, horizon: int):
        super().__init__()
        self.projection = nn.Linear(hidden_size, horizon)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # (batch, n_patches, hidden_size) -> (batch, horizon, 1)
        return self.projection(hidden.mean(dim=1)).unsqueeze(-1)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(prediction[..., 0], target)


class ExampleHeadOnly(Strategy):
    """Only the head trains; the whole backbone (embedding included) is
    frozen at its initial weights."""

    def apply(self, model: nn.Module) -> None:
        model.requires_grad_(False)
        model.head.requires_grad_(True)
        if not any(p.requires_grad for p in model.head.parameters()):
            raise ValueError(
                f"strategy 'example-head-only' needs a head with parameters; "
                f"{type(model.head).__name__} has none"
            )
