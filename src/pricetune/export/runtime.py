"""``OnnxForecaster``: forecasts from an exported model with onnxruntime
alone (no torch, no sktime): numpy, pandas and onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pricetune.export.dependencies import require
from pricetune.export.histories import forecast_times, read_history
from pricetune.export.metadata import read_description


class OnnxForecaster:
    """A forecaster exported by :func:`~pricetune.export.export_onnx`, run
    with onnxruntime.

    Parameters
    ----------
    path : str or path-like
        the ``.onnx`` file; its description is read from ``<path>.json``
        when present, else from the file's metadata.
    n_threads : int, optional
        onnxruntime's intra-op threads (default: its own choice).
    providers : list of str, optional
        onnxruntime execution providers (default: the CPU's).

    Attributes
    ----------
    description : dict
        what the export recorded (see :mod:`pricetune.export.metadata`).
    context_length : int
        the past values each forecast reads.
    horizon : int
        the steps the model forecasts.
    fh_steps : list of int
        the steps of the fitted ``fh``, forecast by default.
    quantiles : tuple of float or None
        the head's levels (``None`` for a point head).

    Examples
    --------
    >>> runtime = OnnxForecaster("brent.onnx")  # doctest: +SKIP
    >>> runtime.predict(y)                      # doctest: +SKIP
    """

    def __init__(self, path, *, n_threads: int | None = None, providers=None):
        onnxruntime = require("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: no ONNX file at {str(path)!r}")
        options = onnxruntime.SessionOptions()
        if n_threads is not None:
            options.intra_op_num_threads = int(n_threads)
            options.inter_op_num_threads = 1
        self.path = path
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=providers or ["CPUExecutionProvider"]
        )
        self.description = read_description(path, self.session)
        self.context_length = int(self.description["context_length"])
        self.horizon = int(self.description["horizon"])
        self.fh_steps = [int(step) for step in self.description["fh_steps"]]
        levels = self.description["quantiles"]
        self.quantiles = None if levels is None else tuple(levels)
        self._input = self.description["input"]

    def __repr__(self) -> str:
        return (
            f"OnnxForecaster({str(self.path)!r}, context_length="
            f"{self.context_length}, horizon={self.horizon}, quantize="
            f"{self.description.get('quantize')!r})"
        )

    # ------------------------------------------------------------ the graph
    def run(self, contexts) -> tuple[np.ndarray, np.ndarray]:
        """The graph on raw context windows.

        Parameters
        ----------
        contexts : array of shape (batch, context_length)
            the last ``context_length`` prices of each series, oldest first.

        Returns
        -------
        quantiles : array of shape (batch, horizon, n_levels)
        point : array of shape (batch, horizon)
            float32, in the data's units, for steps 1 to ``horizon``.
        """
        contexts = np.ascontiguousarray(contexts, dtype=np.float32)
        if contexts.ndim != 2 or contexts.shape[1] != self.context_length:
            raise ValueError(
                f"contexts must be (batch, {self.context_length}), got {contexts.shape}"
            )
        quantiles, point = self.session.run(None, {self._input: contexts})
        return quantiles, point

    def _steps(self, fh) -> np.ndarray:
        steps = np.asarray(self.fh_steps if fh is None else np.ravel(fh))
        if (
            steps.size == 0
            or not np.issubdtype(steps.dtype, np.integer)
            or steps.min() < 1
            or steps.max() > self.horizon
        ):
            raise ValueError(
                f"fh must be steps ahead from 1 to {self.horizon} (the horizon "
                f"of the fit), got {steps.tolist()}"
            )
        return steps.astype(int)

    def _index(self, contexts, steps) -> pd.Index:
        """The forecasts' index: the forecast times of one series, or
        (series, time) pairs of several; steps ahead without times."""
        time_name = self.description.get("time_name")
        freq = self.description.get("freq")
        if contexts.ends is None:
            times = [pd.Index(steps, name="step")] * len(contexts.values)
        else:
            times = [forecast_times(end, steps, freq) for end in contexts.ends]
            times = [
                t.rename(t.name if t.name is not None else time_name) for t in times
            ]
        if contexts.names is None:
            return times[0]
        outer = np.repeat(np.arange(len(contexts.names)), len(steps))
        inner = times[0].append(times[1:]) if len(times) > 1 else times[0]
        names = [contexts.names[number] for number in outer]
        if all(isinstance(name, tuple) for name in names):  # a hierarchy
            arrays = [list(level) for level in zip(*names, strict=True)]
        else:
            arrays = [names]
        return pd.MultiIndex.from_arrays(
            [*arrays, inner],
            names=[*(contexts.levels or [None] * len(arrays)), inner.name],
        )

    # ------------------------------------------------------------ forecasts
    def predict(self, history, fh=None):
        """Point forecasts (the median) from the last values of ``history``.

        Parameters
        ----------
        history : array-like, pandas.Series or pandas.DataFrame
            one series (a 1-D array or a Series), several (a 2-D array, one
            a row; a DataFrame, one a column; or sktime's panel, a
            DataFrame with a (series, time) MultiIndex); each needs at least
            ``context_length`` values, of which the last are read.
        fh : sequence of int, optional
            steps ahead, from 1 to ``horizon``; default the fitted ones.

        Returns
        -------
        pandas.Series or pandas.DataFrame
            a Series for one series; for several, a DataFrame with a
            (series, time) MultiIndex and one column. The index holds the
            forecast times when ``history`` has a time index, else the steps.
        """
        contexts = read_history(history, self.context_length)
        steps = self._steps(fh)
        _, point = self.run(contexts.values)
        values = point[:, steps - 1].astype(np.float64).ravel()
        index = self._index(contexts, steps)
        name = self.description.get("name")
        if contexts.names is None:
            return pd.Series(values, index=index, name=name)
        return pd.DataFrame({name if name is not None else 0: values}, index=index)

    def predict_quantiles(self, history, alpha=None, fh=None) -> pd.DataFrame:
        """Quantile forecasts; ``history`` and ``fh`` as for :meth:`predict`.

        Parameters
        ----------
        alpha : sequence of float, optional
            levels in (0, 1); default the head's. Levels between the head's
            are interpolated, beyond them a normal tail is extended (as the
            forecaster does, :func:`pricetune.nn.quantiles.interpolate_quantiles`).

        Returns
        -------
        pandas.DataFrame
            one column a level, rows as :meth:`predict`'s.
        """
        from pricetune.nn.quantiles import interpolate_quantiles

        if self.quantiles is None:
            raise NotImplementedError(
                "this export's head gives point forecasts only; use predict"
            )
        levels = list(self.quantiles if alpha is None else np.atleast_1d(alpha))
        contexts = read_history(history, self.context_length)
        steps = self._steps(fh)
        quantiles, _ = self.run(contexts.values)
        chosen = quantiles[:, steps - 1].astype(np.float64)
        flat = chosen.reshape(-1, chosen.shape[-1])
        if alpha is not None:
            flat = interpolate_quantiles(self.quantiles, flat, levels)
        return pd.DataFrame(
            flat, index=self._index(contexts, steps), columns=[float(a) for a in levels]
        )
