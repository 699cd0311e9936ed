"""Models saved by pricetune 0.1.0 (``tests/fixtures/v0_1_0``, written by
``tests/fixtures/make_v0_1_0.py``) still load, in the safe format and from
a pickle, and forecast bitwise as they did when they were saved."""

from __future__ import annotations

import json
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from pricetune import (
    FineTunedPriceDirectionClassifier,
    FineTunedPriceForecaster,
    FineTunedPriceRegressor,
)
from pricetune.persistence import load

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v0_1_0"
HOW = ["safe", "pickle"]


def _inputs(case: str) -> dict:
    with np.load(FIXTURES / case / "inputs.npz") as data:
        return {name: data[name] for name in data.files}


def _expected(case: str) -> dict:
    with np.load(FIXTURES / case / "expected.npz") as data:
        return {name: data[name] for name in data.files}


def _load(case: str, how: str, cls, tmp_path: Path):
    if how == "pickle":
        with open(FIXTURES / case / "model.pkl", "rb") as handle:
            return pickle.load(handle)
    directory = tmp_path / case
    shutil.copytree(FIXTURES / case / "safe", directory)
    document_path = directory / "pricetune.json"
    document = json.loads(document_path.read_text())
    path = (document["params"].get("backbone_kwargs") or {}).get("path")
    if path is not None:
        # the checkpoint was saved beside the fixtures, at another absolute path
        document["params"]["backbone_kwargs"]["path"] = str(FIXTURES / "tiny-gpt2")
        document_path.write_text(json.dumps(document))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same components, same versions: no notes
        loaded = cls.load(directory)
    assert type(load(directory)) is cls  # the generic loader agrees
    return loaded


def _future(X: pd.DataFrame, index: pd.PeriodIndex, steps: int) -> pd.DataFrame:
    """Known-future covariates for ``steps`` months after ``index``: the
    last row of ``X`` repeated."""
    future = pd.period_range(index[-1] + 1, periods=steps, freq="M")
    return pd.DataFrame(
        np.repeat(X.to_numpy()[-1:], steps, axis=0), index=future, columns=X.columns
    )


def _same(actual, expected) -> None:
    actual = np.asarray(actual)
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    assert np.array_equal(actual, expected), np.max(np.abs(actual - expected))


@pytest.mark.parametrize("how", HOW)
def test_single_series_forecaster_with_covariates(how, tmp_path):
    inputs, expected = _inputs("forecaster-single"), _expected("forecaster-single")
    forecaster = _load("forecaster-single", how, FineTunedPriceForecaster, tmp_path)
    n, values = int(inputs["n"]), inputs["values"]
    index = pd.period_range(str(inputs["start"]), periods=len(values), freq="M")
    X = pd.DataFrame(inputs["X"], index=index, columns=list(inputs["X_columns"]))
    _same(forecaster.predict(X=X.iloc[n : n + 3]), expected["predict"])
    _same(
        forecaster.predict_quantiles(X=X.iloc[n : n + 3], alpha=[0.05, 0.5, 0.8]),
        expected["quantiles"],
    )
    new = pd.Series(values[n : n + 3], index=index[n : n + 3], name="price")
    forecaster.update(new, X=X.iloc[n : n + 3], update_params=False)
    _same(forecaster.predict(X=X.iloc[n + 3 : n + 6]), expected["predict_after_update"])
    # an old model is an ordinary one: its parameters (those added since
    # 0.1.0 at their defaults), a clone, and further fine-tuning
    assert forecaster.get_params()["callbacks"] is None
    assert clone(forecaster).get_params() == forecaster.get_params()
    before = len(forecaster.training_history_)
    more = pd.Series(values[n + 3 :], index=index[n + 3 :], name="price")
    forecaster.update(more, X=X.iloc[n + 3 :], update_params=True)
    assert len(forecaster.training_history_) > before
    assert np.isfinite(forecaster.predict(X=_future(X, index, 3)).to_numpy()).all()


@pytest.mark.parametrize("how", HOW)
def test_panel_forecaster(how, tmp_path):
    inputs, expected = _inputs("forecaster-panel"), _expected("forecaster-panel")
    forecaster = _load("forecaster-panel", how, FineTunedPriceForecaster, tmp_path)
    predicted = forecaster.predict()
    _same(predicted, expected["predict"])
    labels = [f"{s}|{t}" for s, t in predicted.index]
    assert labels == expected["predict_index"].tolist()
    _same(forecaster.predict_quantiles(alpha=[0.1, 0.9]), expected["quantiles"])
    index = pd.MultiIndex.from_arrays(
        [inputs["new_series"], pd.DatetimeIndex(inputs["new_dates"])],
        names=["series", "date"],
    )
    new = pd.DataFrame({"price": inputs["new_values"]}, index=index)
    forecaster.update(new, update_params=False)
    _same(forecaster.predict(), expected["predict_after_update"])


@pytest.mark.parametrize("how", HOW)
def test_lora_ensemble_forecaster(how, tmp_path):
    expected = _expected("forecaster-lora-ensemble")
    forecaster = _load(
        "forecaster-lora-ensemble", how, FineTunedPriceForecaster, tmp_path
    )
    _same(forecaster.predict(), expected["predict"])
    _same(forecaster.predict_quantiles(alpha=[0.1, 0.5, 0.9]), expected["quantiles"])


@pytest.mark.parametrize("how", HOW)
def test_regressor(how, tmp_path):
    inputs, expected = _inputs("regressor"), _expected("regressor")
    regressor = _load("regressor", how, FineTunedPriceRegressor, tmp_path)
    test = pd.DataFrame(inputs["X"][100:], columns=list(inputs["columns"]))
    _same(regressor.predict(test), expected["predict"])
    refitted = clone(regressor).fit(
        pd.DataFrame(inputs["X"][:100], columns=list(inputs["columns"])),
        regressor.predict(
            pd.DataFrame(inputs["X"][:100], columns=list(inputs["columns"]))
        ),
    )
    assert refitted.get_params() == regressor.get_params()
    _same(
        regressor.predict_quantiles(test, quantiles=[0.05, 0.5, 0.95]),
        expected["quantiles"],
    )


@pytest.mark.parametrize("how", HOW)
def test_classifier(how, tmp_path):
    inputs, expected = _inputs("classifier"), _expected("classifier")
    classifier = _load("classifier", how, FineTunedPriceDirectionClassifier, tmp_path)
    X = inputs["X"][120:]
    _same(classifier.predict(X), expected["predict"])
    _same(classifier.predict_proba(X), expected["predict_proba"])
    _same(classifier.decision_function(X), expected["decision_function"])
