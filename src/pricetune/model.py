"""The import path of pricetune 0.1.0, kept so that its pickles still load;
the network lives in :mod:`pricetune.nn.model`."""

from pricetune.nn.model import EnsembleModel, PatchForecastModel, count_patches

__all__ = ["EnsembleModel", "PatchForecastModel", "count_patches"]
