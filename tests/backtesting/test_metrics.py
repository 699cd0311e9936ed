"""The backtest's metrics and the Diebold-Mariano test against values
computed by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pricetune.backtesting import metrics as M
from pricetune.backtesting.stats import dm_test, dm_test_differential

Y_TRAIN = [10.0, 12.0, 11.0, 13.0]  # in-sample |changes| 2, 1, 2: mean 5/3
Y_TRUE = [14.0, 12.0]
Y_PRED = [14.0, 13.0]  # MAE 0.5; no-change (13) has MAE 1
LEVELS = [0.1, 0.5, 0.9]
QUANTILES = np.array([[12.0, 14.0, 15.0], [11.0, 13.0, 16.0]])


def test_mae_and_mse():
    assert M.mae(Y_TRUE, Y_PRED) == 0.5
    assert M.mse(Y_TRUE, Y_PRED) == 0.5


def test_mase_scales_by_the_in_sample_no_change_error():
    assert M.in_sample_naive_mae(Y_TRAIN) == pytest.approx(5 / 3)
    assert M.mase(Y_TRUE, Y_PRED, Y_TRAIN) == pytest.approx(0.5 / (5 / 3))
    # seasonality 2: |11 - 10|, |13 - 12|
    assert M.in_sample_naive_mae(Y_TRAIN, sp=2) == 1.0


def test_smape_in_percent():
    # 200 * mean(0 / 28, 1 / 25)
    assert M.smape(Y_TRUE, Y_PRED) == pytest.approx(4.0)
    assert M.smape([0.0], [0.0]) == 0.0


def test_relative_mae_against_no_change():
    assert M.relative_mae(Y_TRUE, Y_PRED, Y_TRAIN) == pytest.approx(0.5)
    assert M.relative_mae(Y_TRUE, [13.0, 13.0], Y_TRAIN) == pytest.approx(1.0)


def test_geometric_mean_ignores_non_positive_and_nan():
    assert M.geometric_mean([1.0, 4.0]) == pytest.approx(2.0)
    assert M.geometric_mean([1.0, 4.0, np.nan, 0.0]) == pytest.approx(2.0)
    assert math.isnan(M.geometric_mean([np.nan]))


def test_directional_accuracy():
    # last 13: predicted moves (+1, 0), actual moves (+1, -1): one of two
    assert M.directional_accuracy(Y_TRUE, Y_PRED, Y_TRAIN) == 0.5
    assert M.directional_accuracy(Y_TRUE, [15.0, 12.5], Y_TRAIN) == 1.0
    # no change predicted anywhere: no direction
    assert math.isnan(M.directional_accuracy(Y_TRUE, [13.0, 13.0], Y_TRAIN))


def test_pinball_loss_by_hand():
    expected = np.array([[0.2, 0.0, 0.1], [0.1, 0.5, 0.4]])
    np.testing.assert_allclose(M.pinball_loss(Y_TRUE, QUANTILES, LEVELS), expected)


def test_weighted_quantile_loss_as_gluonts():
    # per level 2 * sum(pinball) / sum|y|: 0.6/26, 1.0/26, 1.0/26
    expected = np.mean([0.6 / 26, 1.0 / 26, 1.0 / 26])
    assert M.weighted_quantile_loss(Y_TRUE, QUANTILES, LEVELS) == pytest.approx(
        expected
    )


def test_crps_from_quantiles():
    # mean of 2 * pinball over the 6 (step, level) pairs
    assert M.crps_from_quantiles(Y_TRUE, QUANTILES, LEVELS) == pytest.approx(
        2 * 1.3 / 6
    )


def test_crps_from_many_quantiles_approaches_the_normal_closed_form():
    levels = np.linspace(0.005, 0.995, 199)
    quantiles = stats.norm.ppf(levels)[None, :]
    # CRPS(N(0, 1), 0) = 2 phi(0) - 1/sqrt(pi)
    exact = 2 * stats.norm.pdf(0) - 1 / np.sqrt(np.pi)
    assert M.crps_from_quantiles([0.0], quantiles, levels) == pytest.approx(
        exact, rel=0.02
    )


def test_coverage_counts_actuals_inside():
    assert M.coverage([1.0, 3.0, -1.0, 2.0], [0.0] * 4, [2.0] * 4) == 0.5


# ---------------------------------------------------------------- DM test
# e1 = [1, 2, 1, 3], e2 = [1, 1, 1, 1], absolute loss: d = [0, 1, 0, 2]
# mean 0.75; centred [-.75, .25, -.75, 1.25]; gamma_0 = 2.75 / 4 = 0.6875
# gamma_1 = (.25 * -.75 + -.75 * .25 + 1.25 * -.75) / 4 = -0.328125
E1, E2 = [1.0, 2.0, 1.0, 3.0], [1.0, 1.0, 1.0, 1.0]


def test_dm_test_known_case_h1():
    result = dm_test(E1, E2, h=1, loss="absolute")
    # DM = 0.75 / sqrt(0.6875 / 4); HLN factor sqrt((4 + 1 - 2) / 4)
    expected = 0.75 / math.sqrt(0.6875 / 4) * math.sqrt(0.75)
    assert expected == pytest.approx(1.566699, abs=1e-6)
    assert result.statistic == pytest.approx(expected)
    assert result.p_value == pytest.approx(2 * stats.t.sf(expected, df=3))
    assert result.p_value_less == pytest.approx(stats.t.cdf(expected, df=3))
    assert (result.n, result.h, result.mean_differential) == (4, 1, 0.75)


def test_dm_test_known_case_h2():
    result = dm_test(E1, E2, h=2, loss="absolute")
    # variance (0.6875 - 2 * 0.328125) / 4 = 0.0078125; HLN sqrt(1.5 / 4)
    # statistic 0.75 / sqrt(0.0078125) * sqrt(0.375) = 3 * sqrt(3)
    assert result.statistic == pytest.approx(3 * math.sqrt(3))
    assert result.h == 2


def test_dm_test_squared_loss_and_symmetry():
    d = np.square(E1) - np.square(E2)  # [0, 3, 0, 8]
    assert dm_test(E1, E2, h=1).statistic == pytest.approx(
        dm_test_differential(d, h=1).statistic
    )
    assert dm_test(E2, E1).statistic == pytest.approx(-dm_test(E1, E2).statistic)


def test_dm_test_falls_back_to_h1_when_the_variance_is_negative():
    # d = [1, 0, 1, 0]: gamma_0 = 0.25, gamma_1 = -0.1875 -> negative for h=2
    result = dm_test_differential([1.0, 0.0, 1.0, 0.0], h=2)
    assert result.h == 1
    assert result.statistic == pytest.approx(
        dm_test_differential([1.0, 0.0, 1.0, 0.0], h=1).statistic
    )


def test_dm_test_equal_forecasts():
    result = dm_test(E1, E1)
    assert result.statistic == 0.0 and result.p_value == 1.0


def test_dm_test_rejects_bad_input():
    with pytest.raises(ValueError):
        dm_test([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        dm_test(E1, E2, h=0)
    with pytest.raises(ValueError):
        dm_test(E1, E2, loss="huber")


def test_dm_test_needs_more_differentials_than_steps():
    result = dm_test(E1, E2, h=4)
    assert math.isnan(result.statistic) and math.isnan(result.p_value)
