"""Training windows cut from one series or from a panel of series, without
copying them.

A window at position ``i`` pairs the ``context_length`` values from ``i``
with the ``horizon`` values after them, and (optionally) the covariate rows
over both spans.

* :class:`Windows` (from :func:`series_windows`): one series; its arrays are
  strided views of the series.
* :class:`PanelWindows`: many series stored end to end in one array; a
  window is found from its number through the per-series window counts, so
  memory grows with the data, not with windows x ``context_length``.

Both give a batch as ``(contexts, targets, covariates or None)`` copied only
when it is drawn (:meth:`~Windows.batch`), say how many windows they hold
(``len``) and their ``horizon``, and split themselves in time order for
validation (:meth:`~Windows.split`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


class ShortSeriesWarning(UserWarning):
    """Some series of a panel are too short to give a training window (or
    even a forecast); the message names them."""


def split_windows(n_windows: int, horizon: int, validation_fraction: float):
    """Time-ordered train/validation split of window indices.

    The last ``validation_fraction`` of windows validate. The ``horizon - 1``
    windows before them are dropped, so that no training target overlaps a
    validation target. Returns ``(train, validation)``; ``validation`` is
    empty when there are too few windows to spare.
    """
    n_validation = int(round(n_windows * validation_fraction))
    n_train = n_windows - n_validation - (horizon - 1)
    if n_validation < 1 or n_train < 1:
        return np.arange(n_windows), np.arange(0)
    return np.arange(n_train), np.arange(n_windows - n_validation, n_windows)


@dataclass(frozen=True)
class Windows:
    """Aligned training windows.

    contexts : (n, context_length) past values
    targets : (n, horizon) the values to forecast
    covariates : (n, span, n_covariates) or None, flattened per sample when
        drawn; for a series, ``span`` covers the context and the horizon.
    """

    contexts: np.ndarray
    targets: np.ndarray
    covariates: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.contexts)

    @property
    def horizon(self) -> int:
        """Values forecast per window."""
        return int(self.targets.shape[1])

    @property
    def n_covariate_features(self) -> int:
        if self.covariates is None:
            return 0
        return int(np.prod(self.covariates.shape[1:]))

    def batch(self, indices: np.ndarray):
        """``(contexts, targets, covariates or None)`` for ``indices``, copied."""
        covariates = None
        if self.covariates is not None:
            covariates = self.covariates[indices].reshape(len(indices), -1)
        return self.contexts[indices], self.targets[indices], covariates

    def split(self, validation_fraction: float):
        """``(train, validation)`` window indices: the newest
        ``validation_fraction`` of the windows validate, and the
        ``horizon - 1`` windows before them are left out, so no training
        target overlaps a validation target (see
        :func:`pricetune.training.split_windows`)."""
        return split_windows(len(self), self.horizon, validation_fraction)

    def digest(self) -> str:
        """SHA-256 of the windows' data (to tell training runs apart)."""
        digest = hashlib.sha256()
        for array in (self.contexts, self.targets, self.covariates):
            if array is not None:
                digest.update(str(array.shape).encode())
                digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        return digest.hexdigest()


def series_windows(
    values: np.ndarray,
    context_length: int,
    horizon: int,
    covariates: np.ndarray | None = None,
) -> Windows:
    """Every window of ``values`` (1-D); ``covariates`` is ``(len(values), C)``."""
    width = context_length + horizon
    spans = np.lib.stride_tricks.sliding_window_view(values, width)
    covariate_spans = None
    if covariates is not None:
        # (n, C, width) -> (n, width, C): time first, like the values
        covariate_spans = np.lib.stride_tricks.sliding_window_view(
            covariates, width, axis=0
        ).transpose(0, 2, 1)
    return Windows(
        spans[:, :context_length], spans[:, context_length:], covariate_spans
    )


class _WindowRows:
    """One part of :class:`PanelWindows` (``"contexts"``, ``"targets"`` or
    ``"covariates"``) seen as an ``(n, ...)`` array whose rows are gathered
    when indexed: ``rows[indices]`` copies those rows only.

    ``np.asarray(rows)`` gathers every row: it is there for code that wants
    the whole array (small panels); prefer indexing.
    """

    def __init__(self, windows: PanelWindows, part: str):
        self._windows = windows
        self._part = part

    @property
    def shape(self) -> tuple[int, ...]:
        return self._windows._part_shape(self._part)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self):
        return self._windows._part_dtype(self._part)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, indices) -> np.ndarray:
        if isinstance(indices, slice):
            indices = np.arange(len(self))[indices]
        return self._windows._gather(self._part, np.asarray(indices))

    def __array__(self, dtype=None, copy=None):
        rows = self[np.arange(len(self))]
        return rows if dtype is None else rows.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"<{self._part} rows of {self._windows!r}: shape {self.shape}>"


class PanelWindows:
    """Every window of every series of a panel, produced on demand.

    Parameters
    ----------
    values : (n_values,) float array
        the series end to end: series ``s`` is
        ``values[offsets[s]:offsets[s + 1]]``, oldest first. Kept as given
        (no copy when it is already a contiguous float64 array).
    offsets : (n_series + 1,) int array
        where each series starts, then the total length; non-decreasing,
        from 0 to ``len(values)``.
    context_length, horizon : int
    covariates : (n_values, C) float array, optional
        covariate rows aligned with ``values``; a window reads them over its
        context and its horizon (known-future covariates).

    Window numbers run series by series, oldest first within a series.
    Window ``i`` lies in series ``s`` with
    ``window_offsets[s] <= i < window_offsets[s + 1]`` and starts at
    ``offsets[s] + i - window_offsets[s]`` in ``values``: that pair is the
    index map, and it is computed per batch from the ``n_series + 1``
    window counts, never stored per window. Series shorter than
    ``context_length + horizon`` have no window (see :attr:`short_series`).

    ``contexts``, ``targets`` and ``covariates`` are row views that gather
    rows when indexed (``windows.targets[indices]``) and report ``shape``
    like the arrays of :class:`Windows`.
    """

    def __init__(
        self,
        values: np.ndarray,
        offsets: np.ndarray,
        context_length: int,
        horizon: int,
        covariates: np.ndarray | None = None,
    ):
        values = np.ascontiguousarray(values, dtype=np.float64)
        offsets = np.asarray(offsets, dtype=np.int64)
        if values.ndim != 1:
            raise ValueError(f"values must be 1-D, got shape {values.shape}")
        if (
            offsets.ndim != 1
            or len(offsets) < 1
            or offsets[0] != 0
            or offsets[-1] != len(values)
            or np.any(np.diff(offsets) < 0)
        ):
            raise ValueError(
                "offsets must rise from 0 to len(values) "
                f"({len(values)}), one entry per series plus one"
            )
        if int(context_length) < 1 or int(horizon) < 1:
            raise ValueError(
                f"context_length and horizon must be positive, got "
                f"{context_length} and {horizon}"
            )
        if covariates is not None:
            covariates = np.ascontiguousarray(covariates, dtype=np.float64)
            if covariates.ndim != 2 or len(covariates) != len(values):
                raise ValueError(
                    f"covariates must be (len(values), C) = ({len(values)}, C), "
                    f"got shape {covariates.shape}"
                )
        self.values = values
        self.offsets = offsets
        self.context_length = int(context_length)
        self._horizon = int(horizon)
        self.covariates_data = covariates
        width = self.context_length + self._horizon
        lengths = np.diff(offsets)
        #: windows per series
        self.n_windows_per_series = np.maximum(lengths - width + 1, 0)
        #: window numbers where each series starts, then the total
        self.window_offsets = np.concatenate(
            [[0], np.cumsum(self.n_windows_per_series)]
        ).astype(np.int64)
        self._span = np.arange(width, dtype=np.int64)

    # ------------------------------------------------------------ the shape
    def __len__(self) -> int:
        return int(self.window_offsets[-1])

    def __repr__(self) -> str:
        return (
            f"PanelWindows({self.n_series} series, {len(self)} windows, "
            f"context_length={self.context_length}, horizon={self.horizon})"
        )

    @property
    def n_series(self) -> int:
        return len(self.offsets) - 1

    @property
    def horizon(self) -> int:
        """Values forecast per window."""
        return self._horizon

    @property
    def short_series(self) -> np.ndarray:
        """Positions of the series too short for one window."""
        return np.flatnonzero(self.n_windows_per_series == 0)

    @property
    def n_covariate_features(self) -> int:
        if self.covariates_data is None:
            return 0
        width = self.context_length + self._horizon
        return width * self.covariates_data.shape[1]

    @property
    def contexts(self) -> _WindowRows:
        return _WindowRows(self, "contexts")

    @property
    def targets(self) -> _WindowRows:
        return _WindowRows(self, "targets")

    @property
    def covariates(self) -> _WindowRows | None:
        if self.covariates_data is None:
            return None
        return _WindowRows(self, "covariates")

    def _part_shape(self, part: str) -> tuple[int, ...]:
        n = len(self)
        if part == "contexts":
            return (n, self.context_length)
        if part == "targets":
            return (n, self._horizon)
        width = self.context_length + self._horizon
        return (n, width, self.covariates_data.shape[1])

    def _part_dtype(self, part: str):
        return (self.values if part != "covariates" else self.covariates_data).dtype

    # --------------------------------------------------------- the index map
    def locate(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """``(series, start)`` of the windows ``indices``: the series each
        lies in and the position of its first context value in ``values``."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if len(indices) and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"window index out of range for {n} windows")
        indices = np.where(indices < 0, indices + n, indices)
        series = np.searchsorted(self.window_offsets, indices, side="right") - 1
        starts = self.offsets[series] + (indices - self.window_offsets[series])
        return series, starts

    def _gather(self, part: str, indices: np.ndarray) -> np.ndarray:
        _, starts = self.locate(indices)
        if part == "contexts":
            return self.values[starts[:, None] + self._span[: self.context_length]]
        if part == "targets":
            return self.values[starts[:, None] + self._span[self.context_length :]]
        return self.covariates_data[starts[:, None] + self._span]

    def batch(self, indices: np.ndarray):
        """``(contexts, targets, covariates or None)`` for ``indices``, copied:
        ``(b, context_length)``, ``(b, horizon)`` and ``(b, span * C)``."""
        indices = np.asarray(indices)
        _, starts = self.locate(indices)
        rows = starts[:, None] + self._span
        spans = self.values[rows]
        covariates = None
        if self.covariates_data is not None:
            covariates = self.covariates_data[rows].reshape(len(indices), -1)
        return (
            spans[:, : self.context_length],
            spans[:, self.context_length :],
            covariates,
        )

    # ------------------------------------------------------------- the split
    def split(self, validation_fraction: float):
        """``(train, validation)`` window indices, in time order *within each
        series*: every series keeps its newest ``validation_fraction`` of
        windows for validation and leaves out the ``horizon - 1`` windows
        before them, by the rule of :func:`pricetune.training.split_windows`
        applied to that series. A series with too few windows to spare a
        purged tail trains on all of them."""
        layouts = {}  # window count -> that count's split: few distinct counts
        counts = self.n_windows_per_series
        for count in np.unique(counts).tolist():
            train, validation = split_windows(count, self._horizon, validation_fraction)
            layouts[count] = (
                np.asarray(train, dtype=np.int64),
                np.asarray(validation, dtype=np.int64),
            )
        sizes = np.array(
            [[len(layouts[c][0]), len(layouts[c][1])] for c in counts.tolist()],
            dtype=np.int64,
        ).reshape(-1, 2)
        train = np.empty(int(sizes[:, 0].sum()), dtype=np.int64)
        validation = np.empty(int(sizes[:, 1].sum()), dtype=np.int64)
        at_train = at_validation = 0
        starts = self.window_offsets[:-1].tolist()
        for start, count, (n_train, n_validation) in zip(
            starts, counts.tolist(), sizes.tolist(), strict=True
        ):
            train_layout, validation_layout = layouts[count]
            train[at_train : at_train + n_train] = train_layout + start
            validation[at_validation : at_validation + n_validation] = (
                validation_layout + start
            )
            at_train += n_train
            at_validation += n_validation
        return train, validation

    def digest(self) -> str:
        """SHA-256 of the panel's data and window settings (to tell training
        runs apart)."""
        digest = hashlib.sha256()
        digest.update(f"{self.context_length}:{self._horizon}".encode())
        digest.update(self.offsets.tobytes())
        digest.update(self.values.tobytes())
        if self.covariates_data is not None:
            digest.update(str(self.covariates_data.shape).encode())
            digest.update(self.covariates_data.tobytes())
        return digest.hexdigest()
