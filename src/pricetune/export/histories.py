"""From what a caller passes to :meth:`OnnxForecaster.predict` to the
context windows the graph reads, and the forecasts' index."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Contexts:
    """Context windows and where their forecasts go.

    ``values`` is float32 ``(n, context_length)``; ``names`` the series'
    names (``None`` for a single series); ``ends`` each series' last time
    point (``None`` for a numpy history, whose forecasts are indexed by
    step); ``levels`` the names of a panel's series levels.
    """

    values: np.ndarray
    names: list | None
    ends: list | None
    levels: list | None = None


def _window(values, context_length: int, name) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if len(values) < context_length:
        raise ValueError(
            f"history{'' if name is None else f' {name!r}'} has {len(values)} "
            f"values; the model reads the last context_length={context_length}"
        )
    window = values[-context_length:]
    if not np.isfinite(window).all():
        raise ValueError(
            f"history{'' if name is None else f' {name!r}'} has missing or "
            f"non-finite values among its last {context_length}"
        )
    return window


def _series_window(series: pd.Series, context_length: int, name):
    """The last window of one series (leading missing values, before it
    starts, are left out) and its last time point."""
    start = series.first_valid_index()
    series = series.iloc[:0] if start is None else series.loc[start:]
    return _window(series.to_numpy(), context_length, name), series.index[-1:]


def read_history(history, context_length: int) -> Contexts:
    """The context windows of ``history``.

    Parameters
    ----------
    history : array-like, pandas.Series or pandas.DataFrame
        a 1-D array or a Series: one series (at least its last
        ``context_length`` values); a 2-D array: one series a row; a
        DataFrame: one series a column, or, with a MultiIndex (series,
        time), sktime's panel with one column.
    context_length : int

    Returns
    -------
    Contexts
    """
    if isinstance(history, pd.DataFrame) and isinstance(history.index, pd.MultiIndex):
        if history.shape[1] != 1:
            raise ValueError(
                f"a panel history has one column of prices, got {history.shape[1]}"
            )
        history = history.iloc[:, 0]
    if isinstance(history, pd.Series) and isinstance(history.index, pd.MultiIndex):
        return _panel_contexts(history, context_length)
    if isinstance(history, pd.Series):
        window, end = _series_window(history, context_length, None)
        return Contexts(window[None].astype(np.float32), None, [end])
    if isinstance(history, pd.DataFrame):
        pairs = [
            (name, _series_window(history[name], context_length, name))
            for name in history.columns
        ]
        return _contexts(pairs)
    array = np.asarray(history, dtype=np.float64)
    if array.ndim not in (1, 2):
        raise ValueError(
            f"history must be 1-D (one series) or 2-D (one series a row), got "
            f"{array.ndim} dimensions"
        )
    if array.ndim == 1:
        return Contexts(
            _window(array, context_length, None)[None].astype(np.float32), None, None
        )
    windows = [_window(row, context_length, number) for number, row in enumerate(array)]
    return Contexts(np.stack(windows).astype(np.float32), list(range(len(array))), None)


def _panel_contexts(history: pd.Series, context_length: int) -> Contexts:
    """The windows of a (series, ..., time) MultiIndex Series, in the order
    its series first appear (positions by array, not one groupby a series:
    a panel of hundreds of series stays a few milliseconds)."""
    index = history.index
    outer = index.droplevel(-1)
    codes, names = pd.factorize(outer)
    values = history.to_numpy(dtype=np.float64)
    times = index.get_level_values(-1)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    pairs = []
    for number, name in enumerate(names):
        positions = order[bounds[number] : bounds[number + 1]]
        finite = np.flatnonzero(~np.isnan(values[positions]))
        if len(finite):  # leading missing values: before the series starts
            positions = positions[finite[0] :]
        name = tuple(name) if isinstance(name, tuple) else name
        window = _window(values[positions], context_length, name)
        pairs.append((name, (window, times[positions[-1:]])))
    contexts = _contexts(pairs)
    contexts.levels = list(index.names[:-1])
    return contexts


def _contexts(pairs) -> Contexts:
    if not pairs:
        raise ValueError("history holds no series")
    names = [name for name, _ in pairs]
    windows = np.stack([window for _, (window, _) in pairs]).astype(np.float32)
    return Contexts(windows, names, [end for _, (_, end) in pairs])


def forecast_times(end: pd.Index, steps, freq) -> pd.Index:
    """The time points ``steps`` after ``end`` (an index of one time point):
    periods and integers count steps themselves; dates need ``freq`` (the
    index's own, else the fitted one)."""
    steps = np.asarray(steps, dtype=int)
    if isinstance(end, pd.PeriodIndex):
        return pd.PeriodIndex([end[0] + int(step) for step in steps], name=end.name)
    if isinstance(end, pd.DatetimeIndex):
        freq = end.freq or freq
        if freq is None:
            raise ValueError(
                "history has a DatetimeIndex without a frequency and the export "
                "records none: give the index a freq"
            )
        offset = pd.tseries.frequencies.to_offset(freq)
        return pd.DatetimeIndex(
            [end[0] + int(step) * offset for step in steps], name=end.name
        )
    return pd.Index(end[0] + steps, name=end.name)
