"""The import path of pricetune 0.1.0, kept so that its imports and pickles
still work; the forecaster lives in :mod:`pricetune.estimators.forecaster`."""

from pricetune.estimators.forecaster import FineTunedPriceForecaster

__all__ = ["FineTunedPriceForecaster"]
