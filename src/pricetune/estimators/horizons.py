"""Forecasting horizons of a panel, where each series has its own last time
point: the steps a horizon asks of each series, and the (series, time)
index of the forecast rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sktime.forecasting.base import ForecastingHorizon


def with_freq(fh: ForecastingHorizon, freq: str | None) -> ForecastingHorizon:
    """``fh`` with the time points' frequency where sktime found none
    (dates in a panel whose series end at different times)."""
    if fh.freq is not None or freq is None:
        return fh
    return ForecastingHorizon(fh.to_pandas(), is_relative=fh.is_relative, freq=freq)


def steps_by_end(fh: ForecastingHorizon, ends: pd.Index) -> list:
    """``[(end, steps), ...]``: the steps ahead that ``fh`` asks of the
    series ending at each distinct last time point ``end`` (an index of
    length 1); a relative ``fh`` counts from each series' own end."""
    _, distinct = pd.factorize(ends)
    pairs = []
    for position in range(len(distinct)):
        end = distinct[[position]]
        pairs.append((end, np.asarray(fh.to_relative(end), dtype=int)))
    return pairs


def joined(indexes: list) -> pd.Index:
    """The indexes one after another."""
    return indexes[0].append(indexes[1:]) if len(indexes) > 1 else indexes[0]


def panel_index(instances: pd.Index, times: pd.Index, time_name) -> pd.MultiIndex:
    """The (series..., time) index of rows: ``instances`` and ``times`` hold
    one entry per row."""
    if isinstance(instances, pd.MultiIndex):
        levels = [instances.get_level_values(i) for i in range(instances.nlevels)]
    else:
        levels = [instances]
    return pd.MultiIndex.from_arrays(
        [*levels, times], names=[*instances.names, time_name]
    )


def chunks(n: int, size: int):
    """Slices of ``range(n)``, ``size`` at a time."""
    for start in range(0, n, size):
        yield slice(start, start + size)
