"""Shared by the examples: hide one sktime 1.2 notice, keep every other
warning."""

from __future__ import annotations

import contextlib
import warnings

NOTICE = "The default of config ``remember_data``"


@contextlib.contextmanager
def without_sktime_notice():
    """Hide sktime 1.2's FutureWarning about its ``remember_data`` default,
    raised for every forecaster it builds; show each other warning once.

    ``warnings.simplefilter("ignore", FutureWarning)`` is not enough: sktime
    re-inserts a "default" FutureWarning filter while it runs.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    seen = set()
    for warning in caught:
        key = (warning.category, str(warning.message))
        if NOTICE not in key[1] and key not in seen:
            seen.add(key)
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
