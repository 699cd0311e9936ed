"""The import path of pricetune 0.1.0, kept so that its imports and pickles
still work; the regressor lives in :mod:`pricetune.estimators.regressor`."""

from pricetune.estimators.regressor import FineTunedPriceRegressor

__all__ = ["FineTunedPriceRegressor"]
