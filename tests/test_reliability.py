"""Issue 16's defects, one test each: silently wrong results (update with
revised history, values beyond float32, a loss that turns NaN, non-finite
forecasts), inputs accepted and then failing deep inside (dates without a
frequency, a plugin component of the wrong shape), messages from inside
other libraries (X not covering y) and a safe save whose sizes were edited.
Each checks the error's type and message and that the caller's data are
unchanged."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from pricetune import FineTunedPriceForecaster, FineTunedPriceRegressor
from pricetune.components.contract import Backbone
from pricetune.nn.forward_contract import ComponentOutputError, check_forward_contract
from pricetune.persistence import METADATA_FILE, PersistenceError, load, save
from pricetune.training import Callback, NonFiniteLossError

CHEAP = dict(
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


def _same(a: pd.Series, b: pd.Series) -> None:
    pd.testing.assert_series_equal(a, b)
    assert a.attrs == b.attrs


def test_update_with_revised_history_is_refused(prices):
    forecaster = FineTunedPriceForecaster(**CHEAP).fit(prices.iloc[:100], fh=[1, 2])
    revised = prices.iloc[90:110].copy()
    revised.iloc[3] += 5.0
    before = revised.copy()
    with pytest.raises(
        ValueError,
        match=r"update got y at 2024-05 = 86.75, but the "
        r"forecaster was fitted with 81.75 there; update only appends",
    ):
        forecaster.update(revised, update_params=False)
    _same(revised, before)


def test_update_repeating_the_history_unchanged_equals_appending_only(prices):
    """sktime's evaluate passes the whole window again: equal values are
    dropped, the new ones appended, as if only they had been passed."""
    first = FineTunedPriceForecaster(**CHEAP).fit(prices.iloc[:100], fh=[1, 2])
    second = FineTunedPriceForecaster(**CHEAP).fit(prices.iloc[:100], fh=[1, 2])
    first.update(prices.iloc[:110], update_params=False)
    second.update(prices.iloc[100:110], update_params=False)
    pd.testing.assert_series_equal(first.predict(), second.predict())
    assert first._store.values.shape == (110,)


def test_dates_without_a_frequency_are_refused_at_fit():
    dates = pd.DatetimeIndex(
        list(pd.date_range("2000-01-01", periods=60, freq="D"))
        + list(pd.date_range("2000-06-01", periods=60, freq="MS"))
    )
    y = pd.Series(np.linspace(10.0, 20.0, 120), index=dates, name="mixed")
    before = y.copy()
    with pytest.raises(ValueError, match="dates without a frequency"):
        FineTunedPriceForecaster(**CHEAP).fit(y, fh=[1])
    _same(y, before)


@pytest.mark.parametrize("factor", [1e39, 1e150])
def test_values_beyond_float32_are_refused(prices, factor):
    y = prices * factor  # finite in float64, not in float32
    before = y.copy()
    with pytest.raises(ValueError, match=r"y holds values as large as .*\(float32"):
        FineTunedPriceForecaster(**CHEAP).fit(y, fh=[1])
    _same(y, before)
    X = np.lib.stride_tricks.sliding_window_view(y.to_numpy(), 13)
    past = r"X \(its past-value columns\) holds values as large as"
    with pytest.raises(ValueError, match=past):
        FineTunedPriceRegressor(**CHEAP).fit(X[:, :12], X[:, 12] / factor)


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


def test_x_not_covering_y_is_named(prices):
    X = pd.DataFrame({"flag": np.zeros(len(prices))}, index=prices.index)
    with pytest.raises(
        ValueError, match=r"X must have a row for every time point of y; 20 of"
    ):
        FineTunedPriceForecaster(**CHEAP).fit(prices, X=X.iloc[:100], fh=[1])


class _WideBackbone(Backbone):
    """Breaks the contract: says 8 hidden units, gives 5."""

    hidden_size = 8

    def __init__(self, patch_length, n_patches):
        super().__init__()
        self.embedding = torch.nn.Linear(patch_length, 5)

    def forward(self, patches):
        return self.embedding(patches)


def test_a_component_of_the_wrong_shape_is_named_at_fit(prices):
    with pytest.raises(
        ComponentOutputError,
        match=r"backbone .*_WideBackbone returned shape \(2, \d+, 5\); the "
        r"contract is \(2, \d+, 8\)",
    ):
        FineTunedPriceForecaster(**{**CHEAP, "backbone": _WideBackbone}).fit(
            prices, fh=[1]
        )


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


def test_a_safe_save_with_an_edited_size_is_refused_before_building(prices, tmp_path):
    forecaster = FineTunedPriceForecaster(**CHEAP).fit(prices, fh=[1])
    path = save(forecaster, tmp_path / "model")
    document = json.loads((path / METADATA_FILE).read_text())
    document["model"]["horizon"] = 10**13
    (path / METADATA_FILE).write_text(json.dumps(document))
    with pytest.raises(PersistenceError, match=r"model.horizon is 10000000000000"):
        load(path)


def test_an_empty_series_is_named():
    empty = pd.Series(
        [], dtype=float, index=pd.period_range("2000-01", periods=0, freq="M")
    )
    with pytest.raises(ValueError, match="y is empty"):
        FineTunedPriceForecaster(**CHEAP).fit(empty, fh=[1])
