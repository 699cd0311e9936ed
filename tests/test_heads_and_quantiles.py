"""Heads, the pinball loss and quantile interpolation."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest
import torch

from pricetune import FineTunedPriceForecaster
from pricetune.components.heads import LinearHead, QuantileHead
from pricetune.components.losses import pinball_loss
from pricetune.nn.quantiles import interpolate_quantiles


def test_quantile_head_shapes_and_no_crossing():
    torch.manual_seed(0)
    head = QuantileHead(
        hidden_size=8, n_patches=5, horizon=4, quantiles=[0.1, 0.5, 0.9]
    )
    output = head(torch.randn(64, 5, 8) * 10)
    assert output.shape == (64, 4, 3)
    assert output.dtype == torch.float32
    assert (output.diff(dim=-1) >= 0).all()


def test_untrained_quantile_head_starts_at_standard_normal_quantiles():
    levels = [0.1, 0.5, 0.9]
    head = QuantileHead(hidden_size=3, n_patches=2, horizon=2, quantiles=levels)
    torch.nn.init.zeros_(head.projection.weight)
    output = head(torch.randn(1, 2, 3))[0, 0]
    expected = torch.tensor([NormalDist().inv_cdf(q) for q in levels])
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=0)


def test_pinball_loss_matches_hand_computation():
    prediction = torch.tensor([[[1.0, 2.0]], [[0.0, 4.0]]])  # (batch 2, h 1, q 2)
    target = torch.tensor([[3.0], [1.0]])
    levels = torch.tensor([0.2, 0.8])
    # errors: [2, 1], [1, -3] -> losses 0.2*2, 0.8*1, 0.2*1, (0.8-1)*-3
    expected = (0.4 + 0.8 + 0.2 + 0.6) / 4
    loss = pinball_loss(target, prediction, levels).mean()
    assert float(loss) == pytest.approx(expected)


def test_quantile_levels_are_validated():
    for bad, message in [
        ([0.5], "at least two"),
        ([0.0, 0.5], r"\(0, 1\)"),
        ([0.6, 0.4], "increasing"),
    ]:
        with pytest.raises(ValueError, match=message):
            QuantileHead(hidden_size=2, n_patches=1, horizon=1, quantiles=bad)


def test_linear_head_losses():
    head = LinearHead(hidden_size=2, n_patches=3, horizon=2, loss="mae")
    prediction = torch.tensor([[[1.0], [2.0]]])
    target = torch.tensor([[2.0, 0.0]])
    assert float(head.loss(prediction, target)) == pytest.approx(1.5)
    assert head(torch.randn(7, 3, 2)).shape == (7, 2, 1)
    with pytest.raises(ValueError, match="loss must be one of"):
        LinearHead(hidden_size=2, n_patches=3, horizon=2, loss="mape")


def test_interpolation_hits_the_grid_and_interpolates_inside():
    levels = [0.1, 0.5, 0.9]
    values = np.array([[1.0, 2.0, 4.0], [0.0, 0.0, 1.0]])
    out = interpolate_quantiles(levels, values, [0.1, 0.3, 0.5, 0.7, 0.9])
    np.testing.assert_allclose(out[0], [1.0, 1.5, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(out[1], [0.0, 0.0, 0.0, 0.5, 1.0])


def test_interpolation_extends_tails_like_a_normal():
    normal = NormalDist(mu=3.0, sigma=2.0)
    levels = [0.1, 0.2, 0.5, 0.8, 0.9]
    values = np.array([[normal.inv_cdf(q) for q in levels]])
    alpha = [0.01, 0.05, 0.95, 0.99]
    out = interpolate_quantiles(levels, values, alpha)
    np.testing.assert_allclose(out[0], [normal.inv_cdf(a) for a in alpha], rtol=1e-9)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        interpolate_quantiles(levels, values, [1.0])


def test_predicted_quantiles_never_cross(brent_monthly):
    forecaster = FineTunedPriceForecaster(
        backbone="lstm",
        backbone_kwargs={"hidden_size": 8},
        strategy="full",
        context_length=24,
        max_epochs=2,
        random_state=0,
        verbose=0,
    ).fit(brent_monthly, fh=[1, 2, 3])
    alpha = [0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99]
    quantiles = forecaster.predict_quantiles(alpha=alpha).to_numpy()
    assert quantiles.shape == (3, len(alpha))
    assert (np.diff(quantiles, axis=1) >= 0).all()
    # the point forecast of a quantile head is its median
    np.testing.assert_allclose(
        forecaster.predict().to_numpy(), quantiles[:, alpha.index(0.5)]
    )


def test_point_head_has_no_quantiles(brent_monthly):
    forecaster = FineTunedPriceForecaster(
        backbone="none",
        head="linear",
        strategy="full",
        context_length=16,
        max_epochs=1,
        random_state=0,
        verbose=0,
    ).fit(brent_monthly, fh=[1])
    assert forecaster.quantiles_ is None
    with pytest.raises(NotImplementedError):
        forecaster.predict_quantiles(alpha=[0.5])
