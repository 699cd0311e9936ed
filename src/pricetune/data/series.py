"""The fitted history of one series or of a panel of series."""

from __future__ import annotations

import warnings
from collections.abc import Hashable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from pricetune.data.checks import finite_values, labels, require_panel
from pricetune.data.scaling import Standardiser
from pricetune.data.windows import PanelWindows, series_windows


@dataclass(frozen=True, eq=False)
class SeriesStore:
    """What a fitted forecaster knows of its data: every value it trained
    on, in order, and the covariates that go with them.

    The series are stored end to end: ``values[offsets[s]:offsets[s + 1]]``
    is series ``s`` (``instances[s]`` in a panel), oldest first, and
    ``ends[s]`` is its last time point. A single series is a store of one
    series with ``instances=None``. ``covariates`` (``(len(values), C)``)
    are the columns ``covariate_names`` of ``X``, standardised by
    ``scaling`` (fitted on the rows of ``fit``, pooled over a panel's
    series).

    :meth:`from_y` builds a store from ``fit``'s data, :meth:`append` adds
    ``update``'s, :meth:`windows` cuts training windows, :meth:`contexts`
    gives the last values each forecast reads, and :meth:`to_json` /
    :meth:`from_json` save it.
    """

    values: np.ndarray
    offsets: np.ndarray
    ends: pd.Index
    instances: pd.Index | None = None
    #: the time points' frequency (dates only; ``None`` for periods and
    #: integers, which count steps themselves)
    freq: str | None = None
    #: y's name (a series' name, a panel's column) and its time index name
    name: Hashable = None
    time_name: Hashable = None
    covariate_names: tuple = ()
    covariates: np.ndarray | None = None
    scaling: Standardiser | None = None

    # ----------------------------------------------------------- the shape
    @property
    def is_panel(self) -> bool:
        return self.instances is not None

    @property
    def n_series(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def to_panel(self) -> dict:
        """``{name: Series}``: every stored series on its own time index
        (for plots; a single series is named by y's name, or ``"y"``)."""
        out = {}
        for s, end in enumerate(self.ends):
            values = self.values[self.offsets[s] : self.offsets[s + 1]]
            n = len(values)
            if isinstance(end, pd.Period):
                index = pd.period_range(end=end, periods=n, freq=end.freq)
            elif isinstance(end, pd.Timestamp):
                index = pd.date_range(end=end, periods=n, freq=self.freq)
            else:
                index = pd.RangeIndex(int(end) - n + 1, int(end) + 1)
            name = self.instances[s] if self.is_panel else (self.name or "y")
            out[str(name)] = pd.Series(values.astype(np.float64), index=index)
        return out

    def equals(self, other: SeriesStore) -> bool:
        """Whether ``other`` holds exactly the same data (values bitwise,
        the same time points, names and covariates)."""

        def same(a, b) -> bool:
            if a is None or b is None:
                return a is b
            if isinstance(a, pd.Index):
                return isinstance(b, pd.Index) and a.equals(b) and a.dtype == b.dtype
            return np.array_equal(a, b) and np.asarray(a).dtype == np.asarray(b).dtype

        return (
            isinstance(other, SeriesStore)
            and same(self.values, other.values)
            and same(self.offsets, other.offsets)
            and same(self.ends, other.ends)
            and same(self.instances, other.instances)
            and (self.freq, self.name, self.time_name, self.covariate_names)
            == (other.freq, other.name, other.time_name, other.covariate_names)
            and same(self.covariates, other.covariates)
            and (self.scaling is None) == (other.scaling is None)
            and (
                self.scaling is None
                or same(self.scaling.loc, other.scaling.loc)
                and same(self.scaling.scale, other.scaling.scale)
            )
        )

    # -------------------------------------------------------------- build
    @classmethod
    def from_y(cls, y, X=None, freq=None) -> SeriesStore:
        """The store of ``fit``'s ``y`` (a series, or a one-column frame
        with a (series..., time) MultiIndex) and ``X`` (the same index,
        numeric columns). ``freq`` is sktime's frequency of the time points
        when it knows one."""
        if len(y) == 0:
            raise ValueError("y is empty: fit needs at least one series of values")
        if isinstance(y.index, pd.MultiIndex):
            return cls._from_panel(y, X, freq)
        values = finite_values(y, "y")
        store = cls(
            values=values,
            offsets=np.array([0, len(values)], dtype=np.int64),
            ends=y.index[-1:],
            freq=_regular_freq(y.index, freq),
            name=y.name,
            time_name=y.index.name,
        )
        if X is None:
            return store
        raw = covariate_rows(X, y.index, "X", list(X.columns))
        return store._with_covariates(list(X.columns), raw)

    @classmethod
    def _from_panel(cls, y, X, freq) -> SeriesStore:
        require_panel(y, "y")
        codes, instances = pd.factorize(y.index.droplevel(-1))
        instances = instances.set_names(y.index.droplevel(-1).names)
        order = np.argsort(codes, kind="stable")  # series by series
        counts = np.bincount(codes, minlength=len(instances))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        times = y.index.get_level_values(-1)
        ends = times.take(order[offsets[1:] - 1]).rename(y.index.names[-1])
        store = cls(
            values=finite_values(y.iloc[:, 0], "y")[order],
            offsets=offsets,
            ends=ends,
            instances=instances,
            freq=_panel_freq(times, order, offsets, freq),
            name=y.columns[0],
            time_name=y.index.names[-1],
        )
        if X is None:
            return store
        require_panel(X, "X")
        raw = covariate_rows(X, y.index, "X", list(X.columns))[order]
        return store._with_covariates(list(X.columns), raw)

    def _with_covariates(self, names: list, raw: np.ndarray) -> SeriesStore:
        scaling = Standardiser.fit(raw)
        return replace(
            self,
            covariate_names=tuple(names),
            covariates=scaling.transform(raw),
            scaling=scaling,
        )

    # ------------------------------------------------------------- update
    def append(self, y, X=None) -> SeriesStore:
        """The store with ``update``'s new observations added.

        Observations at or before a series' last time point are in the
        store already and are left out (sktime's ``evaluate`` with
        ``strategy="update"`` passes the whole training window again). What
        remains must start right after that last time point: a gap raises.
        A panel's ``y`` may bring some of the fitted series only, never a
        new one. With covariates, ``X`` must cover every new observation.
        """
        if self.is_panel:
            if not isinstance(y.index, pd.MultiIndex):
                raise ValueError(
                    "this forecaster was fitted on a panel: update it with a panel "
                    "too (a MultiIndex of series and time, like y in fit)"
                )
            new = SeriesStore._from_panel(y, None, self.freq)
            ids = self.instances.get_indexer(new.instances)
            if (ids < 0).any():
                raise ValueError(
                    "update got series that fit did not see: "
                    f"{labels(new.instances, np.flatnonzero(ids < 0))}; a fitted "
                    "forecaster updates its own series only (fit again to add series)"
                )
            # the rows of y in the new store's order (series by series)
            codes, _ = pd.factorize(y.index.droplevel(-1))
            order = np.argsort(codes, kind="stable")
        else:
            if isinstance(y.index, pd.MultiIndex):
                raise ValueError(
                    "this forecaster was fitted on a single series; update it with "
                    "new observations of that series, not with a panel"
                )
            values = finite_values(y, "y")
            new = SeriesStore(
                values=values,
                offsets=np.array([0, len(values)], dtype=np.int64),
                ends=y.index[-1:],
            )
            ids = np.zeros(1, dtype=np.int64)
            order = np.arange(len(values))
        times = y.index.get_level_values(-1).take(order)
        keep = self._new_rows(times, new.offsets, ids, new.values)
        covariates = None
        if self.covariate_names:
            if X is None:
                raise ValueError(
                    f"this forecaster was fitted with X ({list(self.covariate_names)});"
                    " update needs X for the new observations too"
                )
            if self.is_panel:
                require_panel(X, "X")
            covariates = self.scaled_covariates(X, y.index[order][keep])
        series_of_row = np.repeat(np.arange(new.n_series), new.lengths)
        counts = np.bincount(series_of_row[keep], minlength=new.n_series)
        return self._merged(new.values[keep], covariates, ids, counts, new.ends)

    def _new_rows(
        self, times: pd.Index, offsets: np.ndarray, ids, values: np.ndarray
    ) -> np.ndarray:
        """Which rows (series by series) come after their series' last time
        point; raises when the first of them leaves a gap, or when a row
        for a time point already stored has another value (sktime's
        ``evaluate`` passes the whole training window again: equal values
        are dropped, different ones would silently forecast from a history
        that is not the user's)."""
        keep = np.zeros(len(times), dtype=bool)
        for position, series in enumerate(ids.tolist()):
            span = slice(offsets[position], offsets[position + 1])
            end = self.ends[series]
            later = np.asarray(times[span] > end)
            keep[span] = later
            self._check_repeated(series, times[span][~later], values[span][~later])
            if not later.any():
                continue
            first = times[span][int(np.argmax(later))]
            expected = self._next_time(end)
            if expected is not None and first != expected:
                where = f"series {self.instances[series]!r}" if self.is_panel else "y"
                raise ValueError(
                    f"update must continue each series right after its last time "
                    f"point: {where} ends at {end}, so its next observation is "
                    f"{expected}, but the new data start at {first}; pass the "
                    "observations in between too"
                )
        return keep

    def _check_repeated(self, series: int, times: pd.Index, values) -> None:
        """``values`` at ``times`` (all at or before the series' end) must
        be the stored ones."""
        if len(times) == 0:
            return
        stored = self.values[self.offsets[series] : self.offsets[series + 1]]
        history = self._history_index(series, len(stored))
        where = f"series {self.instances[series]!r}" if self.is_panel else "y"
        positions = history.get_indexer(times)
        if (positions < 0).any():
            first = times[int(np.argmax(positions < 0))]
            raise ValueError(
                f"update got {where} at {first}, which is not one of the time "
                f"points it was fitted on ({history[0]} to {history[-1]}); update "
                "appends observations after the last one"
            )
        # the values went through the same float64 conversion as fit's
        differs = ~np.isclose(values, stored[positions], rtol=1e-12, atol=0.0)
        if differs.any():
            at = int(np.argmax(differs))
            raise ValueError(
                f"update got {where} at {times[at]} = {float(values[at])!r}, but "
                f"the forecaster was fitted with {float(stored[positions[at]])!r} "
                "there; "
                "update only appends new observations (fit again to revise the "
                "history)"
            )

    def _history_index(self, series: int, length: int) -> pd.Index:
        """The time points of the ``length`` stored values of ``series``."""
        end = self.ends[series]
        if isinstance(self.ends, pd.PeriodIndex):
            return pd.period_range(end=end, periods=length, freq=end.freq)
        if isinstance(self.ends, pd.DatetimeIndex) and self.freq is not None:
            return pd.date_range(end=end, periods=length, freq=self.freq)
        if pd.api.types.is_integer_dtype(self.ends.dtype):
            return pd.Index(np.arange(end - length + 1, end + 1))
        raise ValueError(
            "update cannot place new observations on dates without a frequency"
        )

    def _next_time(self, end):
        """The time point after ``end``, or ``None`` where the store cannot
        tell (dates without a known frequency)."""
        if isinstance(self.ends, pd.PeriodIndex):
            return end + 1
        if isinstance(self.ends, pd.DatetimeIndex):
            if self.freq is None:
                return None
            return end + pd.tseries.frequencies.to_offset(self.freq)
        if pd.api.types.is_integer_dtype(self.ends.dtype):
            return end + 1
        return None

    def _merged(self, values, covariates, ids, counts, new_ends) -> SeriesStore:
        """The store with ``counts[i]`` of ``values`` (series by series)
        appended to series ``ids[i]``, which then ends at ``new_ends[i]``."""
        old_lengths = self.lengths
        added = np.zeros_like(old_lengths)
        added[ids] = counts
        offsets = np.concatenate([[0], np.cumsum(old_lengths + added)]).astype(np.int64)
        # where each old and each new value goes in the merged arrays
        old_to = np.arange(len(self.values)) + np.repeat(
            offsets[:-1] - self.offsets[:-1], old_lengths
        )
        new_starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        new_to = np.arange(len(values)) + np.repeat(
            offsets[ids] + old_lengths[ids] - new_starts, counts
        )
        merged = np.empty(offsets[-1])
        merged[old_to], merged[new_to] = self.values, values
        merged_covariates = None
        if covariates is not None:
            merged_covariates = np.empty((offsets[-1], covariates.shape[1]))
            merged_covariates[old_to] = self.covariates
            merged_covariates[new_to] = covariates
        grew = counts > 0
        positions = np.arange(len(self.ends))
        positions[ids[grew]] = len(self.ends) + np.arange(int(grew.sum()))
        ends = self.ends.append(new_ends[grew]).take(positions)
        return replace(
            self,
            values=merged,
            offsets=offsets,
            ends=ends.rename(self.ends.name),
            covariates=merged_covariates,
        )

    # ------------------------------------------------------------- reading
    def windows(self, context_length: int, horizon: int):
        """Every training window: :class:`~pricetune.data.windows.Windows`
        views of a single series, or
        :class:`~pricetune.data.windows.PanelWindows` of a panel."""
        if not self.is_panel:
            return series_windows(self.values, context_length, horizon, self.covariates)
        return PanelWindows(
            self.values, self.offsets, context_length, horizon, self.covariates
        )

    def contexts(self, context_length: int, series: np.ndarray):
        """The last ``context_length`` values of each of ``series``
        (positions, each with at least that many values), ``(n, L)``, and
        their covariate rows ``(n, L, C)`` (``None`` without covariates)."""
        rows = self.offsets[1:][series][:, None] + np.arange(-context_length, 0)
        past = None if self.covariates is None else self.covariates[rows]
        return self.values[rows], past

    def scaled_covariates(self, X, index, columns=None, name: str = "X") -> np.ndarray:
        """Rows ``index`` of ``X`` in the fitted columns, standardised. With
        ``columns`` (some of the fitted ones), only those are read from
        ``X``; the others are 0 (the predict rows of past-only and static
        columns, which the model does not read)."""
        if columns is None or list(columns) == list(self.covariate_names):
            rows = covariate_rows(X, index, name, self.covariate_names)
            return self.scaling.transform(rows)
        scaled = np.zeros((len(index), len(self.covariate_names)))
        if not len(columns):
            return scaled
        positions = [self.covariate_names.index(c) for c in columns]
        rows = covariate_rows(X, index, name, columns)
        loc, scale = self.scaling.loc[positions], self.scaling.scale[positions]
        scaled[:, positions] = (rows - loc) / scale
        return scaled

    # --------------------------------------------------------- persistence
    def to_json(self) -> dict:
        """The store as JSON: the series under ``"history"`` (a single
        series) or ``"panel"``, and ``"covariates"``; the names and, for a
        single series, the last time point travel with the estimator's own
        state (see :meth:`from_json`)."""
        from pricetune.persistence.codec import (
            encode_index,
            encode_instances,
            floats,
            json_label,
        )

        covariates = None
        if self.covariate_names:
            covariates = {
                "names": [json_label(n, "covariate") for n in self.covariate_names],
                **self.scaling.to_json(),
                "history": np.asarray(self.covariates, dtype=np.float64).tolist(),
            }
        if not self.is_panel:
            return {"history": floats(self.values), "covariates": covariates}
        # no "history" key: a reader that knows single series only stops at
        # a missing entry instead of misreading the panel
        return {
            "panel": {
                "series": encode_instances(self.instances),
                "ends": encode_index(self.ends, "the series' last time points"),
                "freq": self.freq,
                "offsets": np.asarray(self.offsets, dtype=np.int64).tolist(),
                "values": floats(self.values),
            },
            "covariates": covariates,
        }

    @classmethod
    def from_json(
        cls, data: dict, *, name=None, time_name=None, end: pd.Index | None = None
    ) -> SeriesStore:
        """The store :meth:`to_json` wrote; ``end`` is a single series' last
        time point (a panel saves its own). Raises ``ValueError`` when the
        parts do not fit together."""
        from pricetune.persistence.codec import decode_index, decode_instances

        panel = data.get("panel")
        if panel is None:
            values = np.asarray(data["history"], dtype=np.float64)
            offsets = np.array([0, len(values)], dtype=np.int64)
            instances, ends = None, end
            freq = _date_freq(end, getattr(end, "freq", None))
        else:
            values = np.asarray(panel["values"], dtype=np.float64)
            offsets = np.asarray(panel["offsets"], dtype=np.int64)
            instances = decode_instances(panel["series"])
            ends, freq = decode_index(panel["ends"]), panel["freq"]
        if (
            values.ndim != 1
            or offsets.ndim != 1
            or len(offsets) < 2
            or offsets[0] != 0
            or offsets[-1] != len(values)
            or np.any(np.diff(offsets) < 0)
            or ends is None
            or len(ends) != len(offsets) - 1
            or (instances is not None and len(instances) != len(ends))
        ):
            raise ValueError(
                "the saved series' values, offsets and last time points do not "
                "fit together"
            )
        store = cls(
            values=values,
            offsets=offsets,
            ends=ends,
            instances=instances,
            freq=freq,
            name=name,
            time_name=time_name,
        )
        covariates = data.get("covariates")
        if covariates is None:
            return store
        names = list(covariates["names"])
        scaling = Standardiser.from_json(covariates)
        history = np.asarray(covariates["history"], dtype=np.float64)
        if scaling.n_columns != len(names) or history.size != len(values) * len(names):
            raise ValueError(
                f"the saved covariates do not fit {len(names)} column(s) of "
                f"{len(values)} rows"
            )
        return replace(
            store,
            covariate_names=tuple(names),
            covariates=history.reshape(len(values), len(names)),
            scaling=scaling,
        )


def covariate_rows(X, index, name: str, columns) -> np.ndarray:
    """Rows ``index`` of ``X[columns]`` as floats; every row must be there."""
    columns = list(columns)
    missing_columns = [c for c in columns if c not in X.columns]
    if missing_columns:
        raise ValueError(f"{name} lacks the covariates {missing_columns} seen in fit")
    rows = X[columns].reindex(index)
    missing = rows.index[rows.isna().any(axis=1)]
    if len(missing):
        shown = list(missing[:5])
        raise ValueError(
            f"{name} must have a row for every series and time point needed "
            f"({len(index)} rows); {len(missing)} are missing or NaN, "
            f"first {shown}"
            if isinstance(index, pd.MultiIndex)
            else f"{name} must cover {list(index)}; missing or NaN at {list(missing)}"
        )
    return finite_values(rows, name)


def _freq_string(freq) -> str | None:
    if freq is None:
        return None
    return pd.tseries.frequencies.to_offset(freq).freqstr


def _date_freq(times: pd.Index, freq) -> str | None:
    """``freq`` for dates (``None`` for periods and integers, which count
    steps themselves)."""
    return _freq_string(freq) if isinstance(times, pd.DatetimeIndex) else None


def _regular_freq(times: pd.Index, freq) -> str | None:
    """The frequency of one series' dates: ``freq`` (sktime's) or the one
    pandas infers; ``None`` for periods and integers. Dates without one
    (mixed daily and monthly points, say) are refused here, as a panel's
    are, rather than failing later when ``predict`` counts steps ahead."""
    if not isinstance(times, pd.DatetimeIndex):
        return None
    if freq is None:
        freq = _inferred_freq(times)
    return _checked_freq(freq)


def _inferred_freq(times: pd.DatetimeIndex) -> str | None:
    """pandas' frequency of ``times`` (None when it finds none, or for fewer
    than the 3 points it needs), without its warnings."""
    if len(times) < 3:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.infer_freq(times)


def _checked_freq(freq) -> str:
    if freq is None:
        raise ValueError(
            "y's time points are dates without a frequency that sktime or pandas "
            "can infer; give the series regular dates (or a PeriodIndex)"
        )
    return _freq_string(freq)


def _panel_freq(times: pd.Index, order, offsets, freq) -> str | None:
    """The frequency of a panel's datetime time level: ``freq`` (sktime's,
    from the cutoff) when known, else inferred from the longest series;
    ``None`` for period and integer time points, which count steps alone."""
    if not isinstance(times, pd.DatetimeIndex):
        return None
    if freq is None:
        longest = int(np.argmax(np.diff(offsets)))
        rows = order[offsets[longest] : offsets[longest + 1]]
        freq = _inferred_freq(times.take(rows))
    return _checked_freq(freq)
