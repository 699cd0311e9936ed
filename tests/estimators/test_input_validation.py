"""Bad input gets a clear error and the caller's data is left untouched."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pricetune import FineTunedPriceForecaster
from pricetune.registry import UnknownComponentError

CHEAP = {
    "backbone": "none",
    "head": "linear",
    "strategy": "full",
    "context_length": 12,
    "patch_length": 4,
    "max_epochs": 1,
    "random_state": 0,
    "verbose": 0,
}


def _fails(y, fh=(1, 2), error=ValueError, match=None, **params):
    before = y.copy()
    forecaster = FineTunedPriceForecaster(**{**CHEAP, **params})
    with pytest.raises(error, match=match):
        forecaster.fit(y, fh=list(fh))
    pd.testing.assert_series_equal(y, before)
    assert y.index.equals(before.index)


def test_nan_in_y(brent_monthly):
    y = brent_monthly.copy()
    y.iloc[100] = np.nan
    _fails(y, match="(?i)nan|missing")


def test_inf_in_y(brent_monthly):
    y = brent_monthly.copy()
    y.iloc[50] = np.inf
    _fails(y, match="NaN or infinite")


def test_series_too_short_for_the_context(brent_monthly):
    _fails(brent_monthly.iloc[:20], fh=range(1, 13), match="needs at least 24")


def test_non_monotonic_index(brent_monthly):
    y = brent_monthly.iloc[:60]
    shuffled = y.iloc[np.r_[10:60, 0:10]]
    _fails(shuffled, match="(?i)monoton|sorted|increasing")


def test_duplicated_index(brent_monthly):
    y = brent_monthly.iloc[:60]
    duplicated = pd.concat([y.iloc[:30], y.iloc[29:]])
    _fails(duplicated, match="(?i)duplicate|unique|monoton")


def test_fh_not_in_the_future(brent_monthly):
    # sktime's own check (capability:insample is False) answers first
    for fh in ([0, 1], [-2]):
        _fails(
            brent_monthly,
            fh=fh,
            error=NotImplementedError,
            match="can not perform in-sample prediction",
        )


def test_unknown_component_names(brent_monthly):
    _fails(
        brent_monthly,
        error=UnknownComponentError,
        match="Did you mean 'lstm'",
        backbone="lstn",
    )
    _fails(
        brent_monthly,
        error=UnknownComponentError,
        match=r"known heads: (\w+, )*linear, .*Did you mean 'quantile'",
        head="qantile",
    )
    _fails(
        brent_monthly,
        error=UnknownComponentError,
        match="Did you mean 'lora'",
        strategy="lorra",
    )


def test_bad_settings(brent_monthly):
    _fails(brent_monthly, match="context_length must be at least 2", context_length=0)
    _fails(
        brent_monthly,
        error=TypeError,
        match="max_epochs must be an integer",
        max_epochs=2.5,
    )
    _fails(brent_monthly, match="patch_length .* must not exceed", patch_length=40)
    _fails(brent_monthly, match="validation_fraction", validation_fraction=1.5)
    _fails(brent_monthly, match="normalization must be one of", normalization="z")
    _fails(brent_monthly, match="precision must be one of", precision="fp8")


def test_component_kwargs_are_checked(brent_monthly):
    _fails(
        brent_monthly,
        error=TypeError,
        match="backbone 'lstm'.*hidden_sise",
        backbone="lstm",
        backbone_kwargs={"hidden_sise": 8},
    )
    _fails(
        brent_monthly, match="must not set \\['horizon'\\]", head_kwargs={"horizon": 3}
    )
    _fails(
        brent_monthly,
        error=TypeError,
        match="must be a dict",
        strategy_kwargs=[("r", 2)],
    )


def test_cuda_requested_without_a_gpu(brent_monthly, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _fails(
        brent_monthly, error=RuntimeError, match="CUDA is not available", device="cuda"
    )
    _fails(brent_monthly, match="bf16", precision="bf16", device="cpu")


def test_predict_beyond_the_fitted_horizon(brent_monthly):
    forecaster = FineTunedPriceForecaster(**CHEAP).fit(brent_monthly, fh=[1, 2])
    with pytest.raises(ValueError, match="(?i)different|horizon"):
        forecaster.predict(fh=[5])
