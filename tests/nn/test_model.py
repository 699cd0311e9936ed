"""The patch model (pricetune.nn.model): covariate effects reach the
forecast through the head's ``shift``."""

from __future__ import annotations

import torch
from torch import nn

from pricetune.components.heads import LinearHead
from pricetune.components.simple_backbones import LSTMBackbone
from pricetune.nn.model import PatchForecastModel


class ShiftOnlyFirst(LinearHead):
    """A head whose covariate shift moves nothing (to see ``shift`` used)."""

    def shift(self, prediction, offset):
        return prediction


def test_the_model_applies_covariate_effects_through_the_head():
    torch.manual_seed(0)
    model = PatchForecastModel(
        LSTMBackbone(patch_length=4, n_patches=5, hidden_size=6),
        ShiftOnlyFirst(hidden_size=6, n_patches=5, horizon=3),
        context_length=12,
        patch_length=4,
        patch_stride=2,
        horizon=3,
        n_covariate_features=2,
    )
    nn.init.ones_(model.covariate_effect.weight)
    context = torch.randn(4, 12).cumsum(1) + 10
    with torch.no_grad():
        one = model(context, torch.ones(4, 2))
        other = model(context, torch.full((4, 2), 5.0))
    torch.testing.assert_close(one, other)
