"""Fitted tiny forecasters and their exports, shared by the export tests."""

from __future__ import annotations

import pytest

from pricetune import FineTunedPriceForecaster
from pricetune.datasets import load_brent

# one network (the default mixes three: test_ensembles.py)
TINY = {
    "n_ensemble": 1,
    "head": "quantile",
    "strategy": "full",
    "context_length": 24,
    "max_epochs": 2,
    "random_state": 0,
    "verbose": 0,
}


@pytest.fixture(scope="session")
def brent():
    return load_brent("monthly")


def _fit(y, fh=(1, 2, 3), X=None, **params):
    """A tiny forecaster (``TINY`` updated by ``params``) fitted on ``y``."""
    forecaster = FineTunedPriceForecaster(**{**TINY, **params})
    return forecaster.fit(y, X=X, fh=list(fh))


@pytest.fixture(scope="session")
def fit():
    """``fit(y, fh=(1, 2, 3), X=None, **params)``: a tiny forecaster fitted."""
    return _fit


@pytest.fixture(scope="session")
def fitted_none(brent, fit):
    return fit(brent, backbone="none")


@pytest.fixture(scope="session")
def exported_none(fitted_none, tmp_path_factory):
    from pricetune.export import export_onnx

    return export_onnx(fitted_none, tmp_path_factory.mktemp("none") / "brent.onnx")
