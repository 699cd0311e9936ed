"""The one error the reader raises for a file it cannot use."""

from __future__ import annotations


class DataFileError(ValueError):
    """A price file that cannot be read as a price series or panel: the
    message names the file, the problem and, where there is one, the row or
    column, on one line. A ``ValueError``, so callers that catch bad input
    as ``ValueError`` keep working."""
