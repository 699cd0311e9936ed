"""Rolling-origin (expanding window) splits shared by every model.

A *panel* here is a ``dict`` of series (name -> :class:`pandas.Series`) on
one calendar (monthly periods, business days...). Cut-offs are time points
of that calendar, the same for every series and every model: at a cut-off
``c`` a model sees each series up to and including ``c`` and nothing after
(:func:`train_test`); it is scored on the ``horizon`` values that follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pricetune.reading import to_panel_dict

__all__ = [
    "Split",
    "load_panel",
    "make_cutoffs",
    "panel_frame",
    "rolling_splits",
    "to_panel",
    "train_test",
]

MONTHLY_PANEL = ("brent", "wti", "henry_hub", "gold")
DAILY_PANEL = ("brent", "wti", "henry_hub")


@dataclass(frozen=True)
class Split:
    """One (series, origin): ``train`` ends at ``cutoff``; ``test`` holds the
    ``horizon`` values after it."""

    series: str
    cutoff: object
    train: pd.Series
    test: pd.Series


def to_panel(data) -> dict[str, pd.Series]:
    """A panel from a Series, a dict of Series, a wide DataFrame (one column
    per series) or a (series, time) MultiIndex DataFrame."""
    if isinstance(data, pd.Series):
        if isinstance(data.index, pd.MultiIndex):
            return to_panel(data.to_frame())
        return {str(data.name or "y"): data.astype(float).sort_index()}
    if isinstance(data, Mapping):
        return {
            str(k): pd.Series(v).astype(float).sort_index() for k, v in data.items()
        }
    if isinstance(data, pd.DataFrame):
        if isinstance(data.index, pd.MultiIndex):
            column = data.iloc[:, 0]
            return {
                str(name): group.droplevel(list(range(data.index.nlevels - 1)))
                .astype(float)
                .sort_index()
                .rename(str(name))
                for name, group in column.groupby(level=0, sort=False)
            }
        return to_panel_dict(data.astype(float).sort_index())
    raise TypeError(
        "data must be a dataset name, a CSV path, a Series, a dict of Series or "
        f"a DataFrame; got {type(data).__name__}"
    )


FILE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")


def load_panel(
    data,
    frequency: str | None = None,
    missing: str = "fill",
    notes: list | None = None,
) -> dict[str, pd.Series]:
    """Resolve ``data`` into a panel.

    ``data`` may be ``"monthly"`` (Brent, WTI, Henry Hub and gold from
    1960, monthly), ``"daily"`` (Brent, WTI, Henry Hub, business days),
    ``"pinksheet"`` (the 63 complete series of the World Bank Pink Sheet,
    monthly, 1960-2011: :func:`pricetune.datasets.load_pinksheet`), a
    built-in dataset name or comma-separated names (at ``frequency``,
    monthly by default), the path of a CSV or Parquet file (read by
    :func:`pricetune.reading.read_prices` with ``frequency`` and the
    ``missing`` policy; what the reader did is appended to ``notes``), or
    data as accepted by :func:`to_panel`.
    """
    from pricetune.datasets import load_dataset, load_pinksheet

    if not isinstance(data, str | Path):
        return to_panel(data)
    text = str(data)
    if text.lower().endswith(FILE_SUFFIXES) or Path(text).is_file():
        from pricetune.reading import read_prices

        frame = read_prices(text, freq=frequency, missing=missing)
        if notes is not None:
            notes.extend(frame.attrs["notes"])
        return to_panel_dict(frame)
    if text.lower() == "pinksheet":
        return to_panel(load_pinksheet())
    if text in ("monthly", "daily"):
        frequency, names = text, MONTHLY_PANEL if text == "monthly" else DAILY_PANEL
    else:
        names = [name.strip() for name in text.split(",") if name.strip()]
    frequency = frequency or "monthly"
    panel = {}
    for name in names:
        series = load_dataset(name) if name == "gold" else load_dataset(name, frequency)
        panel[name] = series.rename(name)
    return panel


def _calendar(panel: Mapping[str, pd.Series]) -> pd.Index:
    indexes = [series.index for series in panel.values()]
    calendar = indexes[0]
    for index in indexes[1:]:
        calendar = calendar.union(index)
    return calendar.sort_values()


def make_cutoffs(
    panel: Mapping[str, pd.Series],
    horizon: int,
    n_origins: int = 5,
    step: int | None = None,
    gap: int | None = None,
) -> list:
    """``n_origins`` cut-offs, ``step`` calendar steps apart (default
    ``horizon``), the last ``gap`` steps (default ``horizon``) before the
    end of the series that ends first, so that every series has actuals for
    the whole horizon at every origin. Oldest first."""
    if not panel:
        raise ValueError("the panel has no series")
    horizon, n_origins = int(horizon), int(n_origins)
    step = horizon if step is None else int(step)
    gap = horizon if gap is None else int(gap)
    if horizon < 1 or n_origins < 1 or step < 1 or gap < horizon:
        raise ValueError(
            "need horizon >= 1, n_origins >= 1, step >= 1 and gap >= horizon; got "
            f"horizon={horizon}, n_origins={n_origins}, step={step}, gap={gap}"
        )
    calendar = _calendar(panel)
    first_end = min(series.index[-1] for series in panel.values())
    last = calendar.get_loc(first_end) - gap
    positions = [last - step * k for k in reversed(range(n_origins))]
    if positions[0] < 1:
        raise ValueError(
            f"the data are too short for {n_origins} origins {step} steps apart "
            f"ending {gap} steps before {first_end}"
        )
    return [calendar[p] for p in positions]


def train_test(series: pd.Series, cutoff, horizon: int):
    """``(train, test)``: the values up to and including ``cutoff``, and the
    ``horizon`` values after it (fewer when the series ends sooner)."""
    n_train = int(np.searchsorted(series.index, cutoff, side="right"))
    return series.iloc[:n_train], series.iloc[n_train : n_train + int(horizon)]


def rolling_splits(
    panel: Mapping[str, pd.Series],
    cutoffs,
    horizon: int,
    min_train: int | None = None,
    notes: list | None = None,
) -> list[Split]:
    """Every (series, origin) pair that has at least ``min_train`` values
    (default ``3 * horizon``) up to the cut-off, ends exactly at the cut-off
    and has an actual at each of the ``horizon`` steps after it.

    Forecasts are for steps 1..``horizon`` after the cut-off, so a series
    with a gap in its test window (a missing month, say) is left out at
    that origin rather than scored against the wrong actuals. The steps are
    the series' own (its index's frequency) or, without one, the panel's
    calendar (every time point of any series). Each pair left out is a line
    in ``notes`` (when given), saying why.
    """
    min_train = 3 * int(horizon) if min_train is None else int(min_train)
    calendar = _calendar(panel)
    splits = []
    for cutoff in cutoffs:
        for name, series in panel.items():
            train, test = train_test(series, cutoff, horizon)
            reason = None
            if len(train) < min_train:
                reason = f"{len(train)} values up to it, fewer than {min_train}"
            elif len(test) < horizon:
                reason = f"{len(test)} actuals after it, fewer than {horizon}"
            elif train.index[-1] != cutoff:
                reason = "no value at the cut-off itself"
            elif not test.index.equals(_next_steps(series, calendar, cutoff, horizon)):
                reason = "a gap in the test window"
            if reason is None:
                splits.append(Split(name, cutoff, train, test))
            elif notes is not None:
                notes.append(f"{name} at origin {cutoff} left out: {reason}")
    return splits


def _next_steps(series: pd.Series, calendar: pd.Index, cutoff, horizon: int):
    """The ``horizon`` time points after ``cutoff`` that forecasts are for."""
    index = series.index
    freq = getattr(index, "freq", None)
    if isinstance(index, pd.PeriodIndex):
        return pd.period_range(cutoff, periods=horizon + 1, freq=index.freq)[1:]
    if isinstance(index, pd.DatetimeIndex) and freq is not None:
        steps = pd.date_range(cutoff, periods=horizon + 1, freq=freq)[1:]
        return steps.rename(index.name)
    position = calendar.get_loc(cutoff)
    return calendar[position + 1 : position + 1 + horizon]


def panel_frame(trains: Mapping[str, pd.Series], column: str = "price"):
    """The (series, time) MultiIndex DataFrame that global models fit on."""
    frame = pd.concat(
        {name: series.rename(column) for name, series in trains.items()},
        names=["series", trains[next(iter(trains))].index.name or "time"],
    ).to_frame(column)
    return frame
