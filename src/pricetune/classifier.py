"""The import path of pricetune 0.1.0, kept so that its imports and pickles
still work; the classifier lives in :mod:`pricetune.estimators.classifier`."""

from pricetune.estimators.classifier import (
    DirectionHead,
    FineTunedPriceDirectionClassifier,
    direction_rows,
)

__all__ = ["DirectionHead", "FineTunedPriceDirectionClassifier", "direction_rows"]
