"""Quantile arithmetic (pricetune.nn.quantiles): interpolating a head's
quantiles between its levels and beyond them (and, through the forecaster,
never crossing), and mixing the quantiles of ensemble members."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from pricetune import FineTunedPriceForecaster
from pricetune.nn.quantiles import interpolate_quantiles, mixture_quantiles


# --------------------------------------------------------------- interpolation
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


# --------------------------------------------------------------------- mixture
LEVELS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)


def normal_quantiles(mean, sd):
    return np.array([[NormalDist(mean, sd).inv_cdf(q) for q in LEVELS]])


def test_mixture_of_identical_members_is_that_member():
    member = normal_quantiles(3.0, 2.0)
    mixed = mixture_quantiles(LEVELS, np.stack([member, member, member]))
    np.testing.assert_allclose(mixed, member, atol=0.03)


def test_mixture_of_two_normals_matches_its_cdf():
    members = np.stack([normal_quantiles(-1.0, 1.0), normal_quantiles(1.0, 1.0)])
    mixed = mixture_quantiles(LEVELS, members)[0]

    def cdf(x):
        return 0.5 * (NormalDist(-1, 1).cdf(x) + NormalDist(1, 1).cdf(x))

    # the mixture's CDF at the mixed quantiles gives back the levels
    assert [cdf(x) for x in mixed] == pytest.approx(LEVELS, abs=0.01)
    assert mixed[3] == pytest.approx(0.0, abs=0.02)
    assert np.all(np.diff(mixed) > 0)
    # wider than either member: their disagreement is uncertainty too
    assert mixed[-1] - mixed[0] > members[0, 0, -1] - members[0, 0, 0]
