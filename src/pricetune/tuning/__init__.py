"""Tuning with Optuna: a search over FineTunedPriceForecaster's settings,
scored over rolling origins, with pruning of bad trials while they train.

* :func:`tune` runs the search and refits the best settings on all the
  data (:mod:`pricetune.tuning.search`); ``pricetune tune`` is the
  command.
* :class:`OptunaPruning` is the callback that reports each epoch's
  validation loss to a trial and stops training when its pruner says so;
  it works in your own Optuna objective too
  (:mod:`pricetune.tuning.pruning`).
* :data:`DEFAULT_SPACE` and the format of a search space
  (:mod:`pricetune.tuning.space`).

Optuna is optional (``pip install 'pricetune[optuna]'``): importing this
module does not need it, :func:`tune` does. The names below load when
first used, so that importing :mod:`pricetune.tuning.space` stays free of
torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pricetune.tuning.pruning import OptunaPruning
    from pricetune.tuning.search import METRICS, TuningResult, import_optuna, tune
    from pricetune.tuning.space import DEFAULT_SPACE, FROM_SCRATCH, read_space

_LAZY = {
    "OptunaPruning": "pricetune.tuning.pruning",
    "METRICS": "pricetune.tuning.search",
    "TuningResult": "pricetune.tuning.search",
    "import_optuna": "pricetune.tuning.search",
    "tune": "pricetune.tuning.search",
    "DEFAULT_SPACE": "pricetune.tuning.space",
    "FROM_SCRATCH": "pricetune.tuning.space",
    "read_space": "pricetune.tuning.space",
}
__all__ = [
    "DEFAULT_SPACE",
    "FROM_SCRATCH",
    "METRICS",
    "OptunaPruning",
    "TuningResult",
    "import_optuna",
    "read_space",
    "tune",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pricetune.tuning' has no attribute {name!r}")
