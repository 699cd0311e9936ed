"""Training: the settings of a fit, the loop and its callbacks,
checkpoints, devices.

* :mod:`~pricetune.training.config`: :class:`TrainingConfig`, every
  setting of a fit, checked once (imports no torch).
* :mod:`~pricetune.training.trainer`: :class:`Trainer`, the loop.
* :mod:`~pricetune.training.callbacks`: :class:`Callback` and the
  built-ins (early stopping, weight averaging, checkpoints, logs, the
  progress bar, the strategy's hooks).
* :mod:`~pricetune.training.checkpoints` and
  :mod:`~pricetune.training.devices`.

The names below are imported when first used, so that importing
``pricetune.training.config`` stays free of torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pricetune.training.callbacks import Callback, TrainingRun
    from pricetune.training.config import (
        COMPILE_MODES,
        LR_SCHEDULES,
        PRECISIONS,
        TrainingConfig,
    )
    from pricetune.training.devices import resolve_device, resolve_precision
    from pricetune.training.trainer import (
        NonFiniteLossError,
        Trainer,
        learning_rate_factor,
        parameter_groups,
    )

_LAZY = {
    "Callback": "pricetune.training.callbacks",
    "TrainingRun": "pricetune.training.callbacks",
    "COMPILE_MODES": "pricetune.training.config",
    "LR_SCHEDULES": "pricetune.training.config",
    "PRECISIONS": "pricetune.training.config",
    "TrainingConfig": "pricetune.training.config",
    "resolve_device": "pricetune.training.devices",
    "resolve_precision": "pricetune.training.devices",
    "NonFiniteLossError": "pricetune.training.trainer",
    "Trainer": "pricetune.training.trainer",
    "learning_rate_factor": "pricetune.training.trainer",
    "parameter_groups": "pricetune.training.trainer",
}
__all__ = [
    "COMPILE_MODES",
    "LR_SCHEDULES",
    "PRECISIONS",
    "Callback",
    "NonFiniteLossError",
    "Trainer",
    "TrainingConfig",
    "TrainingRun",
    "learning_rate_factor",
    "parameter_groups",
    "resolve_device",
    "resolve_precision",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pricetune.training' has no attribute {name!r}")
