"""Issue 16's defects that need more than one bad input and its message
(those are cases of the matrix in test_bad_inputs.py): update repeating the
history unchanged, large values that float32 still holds, a loss that
turns NaN, non-finite forecasts, and the contract error naming a
registered component's distribution."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pricetune import FineTunedPriceForecaster
from pricetune.nn.forward_contract import ComponentOutputError, check_forward_contract
from pricetune.training import Callback, NonFiniteLossError

# one network (the default mixes three: test_ensembles.py)
CHEAP = dict(
    n_ensemble=1,
    backbone="none",
    head="quantile",
    strategy="full",
    max_epochs=1,
    verbose=0,
    random_state=0,
)


@pytest.fixture
def prices(brent_monthly):
    return brent_monthly.iloc[-120:].copy()


def test_update_repeating_the_history_unchanged_equals_appending_only(prices):
    """sktime's evaluate passes the whole window again: equal values are
    dropped, the new ones appended, as if only they had been passed."""
    first = FineTunedPriceForecaster(**CHEAP).fit(prices.iloc[:100], fh=[1, 2])
    second = FineTunedPriceForecaster(**CHEAP).fit(prices.iloc[:100], fh=[1, 2])
    first.update(prices.iloc[:110], update_params=False)
    second.update(prices.iloc[100:110], update_params=False)
    pd.testing.assert_series_equal(first.predict(), second.predict())
    assert first._store.values.shape == (110,)


def test_large_values_within_float32_still_fit(prices):
    forecast = FineTunedPriceForecaster(**CHEAP).fit(prices * 1e20, fh=[1]).predict()
    assert np.isfinite(forecast).all()


class _PoisonedLoss(Callback):
    def loss_penalty(self, run):
        return torch.tensor(float("nan")) if run.epoch == 2 else None


def test_a_non_finite_training_loss_stops_training_with_its_epoch(prices):
    forecaster = FineTunedPriceForecaster(
        **{**CHEAP, "max_epochs": 3}, callbacks=[_PoisonedLoss()]
    )
    with pytest.raises(
        NonFiniteLossError, match=r"training loss became nan in epoch 2 .*learning"
    ):
        forecaster.fit(prices, fh=[1])


def test_predict_never_returns_non_finite_values(prices):
    forecaster = FineTunedPriceForecaster(**CHEAP).fit(prices, fh=[1, 2])
    with torch.no_grad():
        next(forecaster.model_.head.parameters()).fill_(float("nan"))
    with pytest.raises(ValueError, match="non-finite value"):
        forecaster.predict()


def test_the_contract_error_names_a_registered_component_and_its_distribution(
    prices,
):
    forecaster = FineTunedPriceForecaster(**CHEAP).fit(prices, fh=[1, 2])
    context = torch.tensor(prices.to_numpy()[-2 * 24 :].reshape(2, 24)).float()
    # the model forecasts 2 steps: asking for 3 is what a wrong head gives
    with pytest.raises(
        ComponentOutputError,
        match=r"head 'quantile' \(QuantileHead, from pricetune [\d.]+\) returned "
        r"shape \(2, 2, (\d+)\); the contract is \(2, 3, \1\)",
    ):
        check_forward_contract(forecaster.model_, context, horizon=3)
