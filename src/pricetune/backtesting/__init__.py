"""Backtests: rolling-origin evaluation of pricetune and baseline models on
the same cut-offs, with point, probabilistic and relative metrics, the
Diebold-Mariano test, and the language-model ablation.

>>> from pricetune.backtesting import backtest          # doctest: +SKIP
>>> result = backtest("monthly", ["naive", "theta", "lstm"], horizon=12)
>>> print(result.to_string())

``pricetune.backtest`` is the same function; ``pricetune backtest`` the
command.
"""

from __future__ import annotations

from pricetune.backtesting.metrics import (
    coverage,
    crps_from_quantiles,
    directional_accuracy,
    geometric_mean,
    in_sample_naive_mae,
    mase,
    relative_mae,
    smape,
    weighted_quantile_loss,
)
from pricetune.backtesting.runner import (
    LEVELS,
    BacktestResult,
    ablation,
    backtest,
    score,
    summarise,
)
from pricetune.backtesting.splitter import (
    load_panel,
    make_cutoffs,
    rolling_splits,
    train_test,
)
from pricetune.backtesting.stats import DMResult, dm_test, dm_test_differential

__all__ = [
    "LEVELS",
    "BacktestResult",
    "DMResult",
    "ablation",
    "backtest",
    "coverage",
    "crps_from_quantiles",
    "directional_accuracy",
    "dm_test",
    "dm_test_differential",
    "geometric_mean",
    "in_sample_naive_mae",
    "load_panel",
    "make_cutoffs",
    "mase",
    "relative_mae",
    "rolling_splits",
    "score",
    "smape",
    "summarise",
    "train_test",
    "weighted_quantile_loss",
]
