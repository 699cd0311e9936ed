"""pricetune: fine-tune pretrained models to forecast commodity prices.

``import pricetune`` is light: torch, transformers and sktime load when the
forecaster is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pricetune.hookspecs import PLUGIN_API_VERSION, hookimpl

__version__ = "0.1.0"
__all__ = [
    "CombinedForecaster",
    "FineTunedPriceDirectionClassifier",
    "FineTunedPriceForecaster",
    "FineTunedPriceRegressor",
    "PLUGIN_API_VERSION",
    "backtest",
    "hookimpl",
    "__version__",
]

if TYPE_CHECKING:
    from pricetune.backtesting import backtest
    from pricetune.estimators.classifier import FineTunedPriceDirectionClassifier
    from pricetune.estimators.combined import CombinedForecaster
    from pricetune.estimators.forecaster import FineTunedPriceForecaster
    from pricetune.estimators.regressor import FineTunedPriceRegressor

_LAZY = {
    "CombinedForecaster": "pricetune.estimators.combined",
    "FineTunedPriceDirectionClassifier": "pricetune.estimators.classifier",
    "FineTunedPriceForecaster": "pricetune.estimators.forecaster",
    "FineTunedPriceRegressor": "pricetune.estimators.regressor",
    "backtest": "pricetune.backtesting",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pricetune' has no attribute {name!r}")
