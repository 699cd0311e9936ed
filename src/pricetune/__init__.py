"""pricetune: fine-tune pretrained models to forecast commodity prices.

``import pricetune`` is light: torch, transformers and sktime load when the
forecaster is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pricetune.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["FineTunedPriceForecaster", "hookimpl", "__version__"]

if TYPE_CHECKING:
    from pricetune.forecaster import FineTunedPriceForecaster


def __getattr__(name: str):
    if name == "FineTunedPriceForecaster":
        from pricetune.forecaster import FineTunedPriceForecaster

        return FineTunedPriceForecaster
    raise AttributeError(f"module 'pricetune' has no attribute {name!r}")
