"""The patch model (pricetune.nn.model): covariate effects reach the
forecast through the head's ``shift``, and the floor of a window's scale
keeps flat and jumping series from exploding the loss."""

from __future__ import annotations

import pytest
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


def _linear(min_scale=None):
    from pricetune.components.simple_backbones import NoBackbone

    extra = {} if min_scale is None else {"min_scale": min_scale}
    return PatchForecastModel(
        NoBackbone(patch_length=4, n_patches=5),
        LinearHead(hidden_size=4, n_patches=5, horizon=3),
        context_length=12,
        patch_length=4,
        patch_stride=2,
        **extra,
    )


def test_a_flat_window_is_scaled_by_the_floor():
    """Gold at $35 for years, then a $5 move: with the default floor the
    move is five million typical moves; min_scale=0.01 makes it 14."""
    flat = torch.full((1, 12), 35.0)
    _, scale = _linear().scaling(flat)
    assert float(scale) == pytest.approx(1e-6 * 36)
    _, floored = _linear(min_scale=0.01).scaling(flat)
    assert float(floored) == pytest.approx(0.36)
    moving = 35 + torch.arange(12.0).unsqueeze(0)  # moves of 1 each
    _, scale = _linear(min_scale=0.01).scaling(moving)
    assert float(scale) == pytest.approx(1.0)  # the floor does not bind
    assert 5 / float(floored) < 15


def test_models_pickled_before_the_floor_existed_keep_the_old_one():
    model = _linear(min_scale=0.01)
    del model.__dict__["min_scale"]  # as an instance of 0.1.0 unpickles
    _, scale = model.scaling(torch.full((1, 12), 35.0))
    assert float(scale) == pytest.approx(1e-6 * 36)


def test_the_first_training_loss_stays_bounded_on_flat_and_jumping_series():
    """A price fixed for years, then jumping, near zero, and a clean walk:
    the training loss of the first steps explodes with the default floor
    and stays bounded with min_scale=0.01."""
    import numpy as np

    from pricetune.data.windows import PanelWindows
    from pricetune.training import Trainer, TrainingConfig

    rng = np.random.default_rng(0)
    fixed = np.r_[np.full(60, 35.0), 35.0 * np.exp(np.cumsum(rng.normal(0, 0.05, 60)))]
    near_zero = np.abs(rng.normal(0, 1e-4, 120)) + 1e-6
    walk = 50 + np.cumsum(rng.normal(size=120))
    values = np.concatenate([fixed, near_zero, walk])
    windows = PanelWindows(values, np.array([0, 120, 240, 360]), 12, 3)
    losses = {}
    for floor in (1e-6, 0.01):
        config = TrainingConfig(
            backbone="none",
            head="linear",
            strategy="full",
            context_length=12,
            patch_length=4,
            max_epochs=1,
            steps_per_epoch=4,
            batch_size=64,
            min_scale=floor,
            validation_fraction=0.0,
        )
        torch.manual_seed(0)
        history = Trainer(config, torch.device("cpu"), None).fit(
            _linear(floor), windows, torch.Generator().manual_seed(0)
        )
        losses[floor] = history[0]["train_loss"]
    assert np.isfinite(losses[0.01]) and losses[0.01] < 100
    assert losses[1e-6] > 1000 * losses[0.01]
