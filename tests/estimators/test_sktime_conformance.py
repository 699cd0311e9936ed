"""sktime's and scikit-learn's estimator conventions."""

from __future__ import annotations

import pytest
from sklearn.base import clone
from sktime.utils.estimator_checks import check_estimator

from pricetune import FineTunedPriceForecaster
from pricetune.training import resolve_device

TEST_PARAMS = FineTunedPriceForecaster.get_test_params()


def test_get_test_params_gives_cheap_distinct_settings():
    assert len(TEST_PARAMS) >= 2
    backbones = {params["backbone"] for params in TEST_PARAMS}
    assert len(backbones) == len(TEST_PARAMS)
    assert all(params["max_epochs"] <= 2 for params in TEST_PARAMS)


@pytest.mark.parametrize(
    "params", TEST_PARAMS, ids=[params["backbone"] for params in TEST_PARAMS]
)
def test_sktime_check_estimator(params):
    # every applicable test of sktime's conformance suite, none excluded
    results = check_estimator(
        FineTunedPriceForecaster(**params), raise_exceptions=True, verbose=False
    )
    failed = {name: result for name, result in results.items() if result != "PASSED"}
    assert not failed
    assert len(results) > 100


def test_init_stores_arguments_verbatim():
    kwargs = {"r": 4}
    forecaster = FineTunedPriceForecaster(strategy_kwargs=kwargs, context_length=7)
    params = forecaster.get_params()
    assert params["strategy_kwargs"] is kwargs
    assert params["context_length"] == 7
    # the defaults chosen on the Pink Sheet panel (docs/accuracy.md)
    assert params["backbone"] == "lstm"
    assert params["head"] == "quantile"
    assert params["strategy"] == "full"
    assert params["n_ensemble"] == 3
    assert params["device"] == "auto"


def test_set_params_and_clone(brent_monthly):
    forecaster = FineTunedPriceForecaster(**TEST_PARAMS[0])
    forecaster.set_params(learning_rate=0.01, backbone="gru")
    assert forecaster.get_params()["backbone"] == "gru"
    forecaster.fit(brent_monthly, fh=[1, 2])
    copy = clone(forecaster)
    assert copy.get_params() == forecaster.get_params()
    assert not hasattr(copy, "model_")
    assert hasattr(forecaster, "model_")


def test_pred_int_tag_follows_the_head():
    assert FineTunedPriceForecaster(head="quantile").get_tag("capability:pred_int")
    assert not FineTunedPriceForecaster(head="linear").get_tag("capability:pred_int")


def test_fitted_attributes_end_in_underscore(brent_monthly):
    forecaster = FineTunedPriceForecaster(**TEST_PARAMS[1]).fit(
        brent_monthly, fh=[1, 2, 3]
    )
    assert forecaster.horizon_ == 3
    assert forecaster.quantiles_ == (0.1, 0.5, 0.9)
    assert 0 < forecaster.n_trainable_parameters_ <= forecaster.n_parameters_
    # the LSTM set is an ensemble, as the default is: a row per member and epoch
    assert forecaster.get_params()["n_ensemble"] == 3
    assert list(forecaster.training_history_.columns[:3]) == [
        "member",
        "epoch",
        "train_loss",
    ]
    # "auto": the CPU here and in CI, CUDA where there is a GPU
    assert forecaster.device_ == resolve_device("auto")
