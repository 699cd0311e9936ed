"""The units of price series, for plot labels and the results' config."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress

import pandas as pd


def series_unit(series, name=None) -> str | None:
    """The unit of a price series, when known: ``series.attrs["unit"]``
    (the built-in datasets set it) or ``series.attrs["units"][name]`` (the
    Pink Sheet's panel); None otherwise."""
    attrs = getattr(series, "attrs", None) or {}
    unit = attrs.get("unit")
    if not unit and isinstance(attrs.get("units"), Mapping):
        key = name if name is not None else getattr(series, "name", None)
        unit = attrs["units"].get(key)
    return str(unit) if unit else None


def shared_unit(panel: Mapping) -> str | None:
    """The one unit every series of ``{name: series}`` with a known unit
    has (for a plot's axis label); None when none is known or they differ."""
    units = {series_unit(series, name) for name, series in panel.items()} - {None}
    return units.pop() if len(units) == 1 else None


def series_units(panel, data) -> dict:
    """``{series: unit}`` of the series whose unit is known: from the
    panel's series or, when building the panel dropped their ``attrs``, from
    the data as given (a dict of series, a DataFrame and its columns)."""
    units = {}
    for name, series in panel.items():
        candidates = [series]
        if isinstance(data, Mapping | pd.DataFrame):
            with suppress(Exception):
                candidates.append(data[name])
        if isinstance(data, pd.Series | pd.DataFrame):
            candidates.append(data)
        for candidate in candidates:
            unit = series_unit(candidate, name)
            if unit is not None:
                units[name] = unit
                break
    return units
