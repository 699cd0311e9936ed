"""What happens to a missing value (an empty cell, ``NA``, or a date the
calendar has and the series lacks): the ``missing`` policy.

* ``"fill"`` (default): carry the last price forward, as a market that did
  not trade keeps its last price;
* ``"drop"``: keep only the values after the series' last gap, so what is
  left has none (the earlier history is dropped);
* ``"error"``: refuse the file, naming the first missing date.

Leading and trailing missing values are never filled: a series starts at
its first value and ends at its last. On business days, a weekday absent
from the whole file is a holiday and is always carried forward (and
counted in the notes).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pricetune.reading.calendars import calendar, label_text
from pricetune.reading.errors import DataFileError

POLICIES = ("fill", "drop", "error")


def check_policy(missing: str) -> str:
    if missing not in POLICIES:
        raise ValueError(
            f"unknown missing-value policy {missing!r}: use "
            + ", ".join(repr(p) for p in POLICIES)
        )
    return missing


def regular_series(
    observed: pd.Series,
    freq: str,
    file_labels: pd.Index,
    missing: str,
    path: Path,
    notes: list[str],
) -> pd.Series:
    """``observed`` (values on their labels, NaN where the file had no
    value) on its full calendar, with the policy applied."""
    name = observed.name
    values = observed.dropna()
    if values.empty:
        raise DataFileError(f"{path}: series {name!r} has no values")
    full = observed.reindex(calendar(values.index[0], values.index[-1], freq))
    holidays = pd.Index([])
    if freq == "B":
        holidays = full.index.difference(file_labels)
        full.loc[holidays] = full.ffill().loc[holidays]
        if len(holidays):
            notes.append(
                f"{name}: {len(holidays)} business days absent from the file "
                "(holidays) carry the previous price"
            )
    gaps = full.index[full.isna().to_numpy()]
    if len(gaps) == 0:
        return full.rename(name)
    first = label_text(gaps[0])
    if missing == "error":
        raise DataFileError(
            f"{path}: series {name!r} has {len(gaps)} missing values (first "
            f"{first}); use --missing fill or --missing drop"
        )
    if missing == "fill":
        notes.append(
            f"{name}: {len(gaps)} missing values carry the previous price "
            f"(first {first})"
        )
        return full.ffill().rename(name)
    kept = full.loc[full.index > gaps[-1]]
    notes.append(
        f"{name}: {len(full) - len(kept)} values up to the last missing one "
        f"({label_text(gaps[-1])}) dropped"
    )
    if kept.empty:
        raise DataFileError(
            f"{path}: series {name!r} has no values after its last missing one"
        )
    return kept.rename(name)
