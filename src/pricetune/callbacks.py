"""Training callbacks: the public ones, in one place.

Pass them in ``callbacks=`` of any estimator (see docs/callbacks.md):

* :class:`Callback` (and :class:`TrainingRun`, what its hooks see): the
  base class of your own callbacks.
* :class:`MLflowLogger`: logs a fit's parameters and per-epoch metrics to
  MLflow (needs ``pip install 'pricetune[mlflow]'``; see docs/tracking.md).

They are imported when first used, so that ``import pricetune.callbacks``
loads neither torch nor mlflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pricetune.integrations.mlflow_tracking import MLflowLogger
    from pricetune.training.callbacks import Callback, TrainingRun

_LAZY = {
    "Callback": "pricetune.training.callbacks",
    "TrainingRun": "pricetune.training.callbacks",
    "MLflowLogger": "pricetune.integrations.mlflow_tracking",
}
__all__ = ["Callback", "MLflowLogger", "TrainingRun"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pricetune.callbacks' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
