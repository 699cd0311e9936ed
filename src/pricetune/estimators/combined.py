"""``CombinedForecaster``: a weighted combination of sktime forecasters whose
weights are learned on rolling origins inside the training data, so they
never use a value after the cut-off."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sktime.forecasting.base import BaseForecaster, ForecastingHorizon
from sktime.forecasting.base._meta import _HeterogenousEnsembleForecaster
from sktime.registry import is_scitype

WEIGHTINGS = ("inverse_mae", "equal", "best")
#: the shrinkage values ``shrinkage="auto"`` chooses from
SHRINKAGE_GRID = (0.0, 0.25, 0.5, 0.75)


class CombinedForecaster(_HeterogenousEnsembleForecaster):
    """Weighted mean of forecasters, weights learned on earlier origins only.

    ``fit`` cuts the training series at ``n_origins`` inner origins, the
    ``k``-th keeping the first ``len(y) - k * step`` values; it fits a clone of
    every member on each cut, forecasts the next ``h`` steps and scores them
    against the values that follow, still inside ``y``. The weights come from
    those errors; then every member is refitted on the whole of ``y``.
    ``predict`` gives the weighted mean of the members' forecasts, moved
    toward the no-change forecast (the last value) by ``shrinkage``.

    Parameters
    ----------
    forecasters : list of (str, sktime forecaster) tuples
        The members, each with a unique name (``name__param`` reaches their
        parameters in ``get_params``/``set_params``).
    shrinkage : float in [0, 1] or "auto", default=0.0
        ``final = (1 - shrinkage) * combined + shrinkage * last_value``;
        ``"auto"`` picks the value of ``(0, 0.25, 0.5, 0.75)`` with the lowest
        mean absolute error on the inner origins (0 when ``y`` is too short
        for them). Quantiles move by as much as the point forecast, so
        intervals keep the combination's width.
    n_origins : int, default=3
        Number of inner origins. ``0``: none, so no member is fitted more
        than once; then ``weights`` must be ``"equal"`` and ``shrinkage`` a
        number (a fixed combination, such as the simple average that is
        hard to beat in the forecast-combination literature).
    step : int or None, default=None
        Distance between inner origins, in time steps; None: ``h``.
    horizon : int or None, default=None
        ``h``, the steps forecast from each inner origin; None: the largest
        step of the ``fh`` passed to ``fit`` (which then needs ``fh``).
    weights : {"inverse_mae", "equal", "best"}, default="inverse_mae"
        ``"inverse_mae"``: proportional to 1 / MAE (members with a zero MAE
        share all the weight); ``"equal"``: 1 / m; ``"best"``: all on the
        lowest MAE.
    min_train : int or None, default=None
        Fewest values the shortest inner cut may have (None: ``2 * h``);
        below it the weights are equal and ``weights_source_`` says so.

    Attributes
    ----------
    weights_ : pd.Series
        Weight of each member, indexed by name, summing to 1.
    shrinkage_ : float
        The shrinkage used.
    inner_errors_ : pd.DataFrame
        MAE of each member (columns) at each inner cut-off (rows); on a
        panel, of errors divided by each series' mean absolute one-step
        change; empty when the series is too short.
    weights_source_ : str
        ``"inner origins"``, ``"equal (too short)"`` or ``"equal (no inner
        origins)"`` (``n_origins=0``).
    failed_members_ : dict of str to str
        Members that raised (or forecast NaN) on an inner origin, with the
        reason; they get weight 0 and are not refitted.
    forecasters_ : list of (str, forecaster) tuples
        The members fitted on all of ``y``. A panel ``y`` is passed to each
        member whole (a global member such as ``FineTunedPriceForecaster``
        trains one model on every series; a local one is fitted per series
        by sktime), and the weights are shared by all series.

    Examples
    --------
    >>> from sktime.forecasting.naive import NaiveForecaster
    >>> from pricetune import CombinedForecaster
    >>> from pricetune.datasets import load_brent
    >>> y = load_brent("monthly")
    >>> forecaster = CombinedForecaster(
    ...     [("last", NaiveForecaster()), ("drift", NaiveForecaster("drift"))],
    ...     shrinkage="auto",
    ... )
    >>> forecaster.fit(y, fh=[1, 2, 3])
    CombinedForecaster(...)
    >>> y_pred = forecaster.predict()
    >>> bool(abs(forecaster.weights_.sum() - 1) < 1e-9)
    True
    """

    _tags = {
        "authors": ["pricetune"],
        "scitype:y": "univariate",
        # a panel is passed whole to the members, so that a global member
        # (a FineTunedPriceForecaster) trains one model on every series
        "y_inner_mtype": ["pd.Series", "pd-multiindex"],
        "X_inner_mtype": ["pd.DataFrame", "pd-multiindex"],
        "capability:exogenous": False,
        "capability:missing_values": False,
        "requires-fh-in-fit": True,
        "capability:pred_int": False,
        # out of sample only: the no-change forecast is the value at the cut-off
        "capability:insample": False,
        "capability:pred_int:insample": False,
        "fit_is_empty": False,
    }

    # the members keep the data they need; this wrapper keeps the last value
    _config = {"remember_data": False}
    _steps_attr = "_forecasters"
    _steps_fitted_attr = "forecasters_"

    def __init__(
        self,
        forecasters,
        shrinkage=0.0,
        n_origins=3,
        step=None,
        horizon=None,
        weights="inverse_mae",
        min_train=None,
    ):
        self.forecasters = forecasters
        self.shrinkage = shrinkage
        self.n_origins = n_origins
        self.step = step
        self.horizon = horizon
        self.weights = weights
        self.min_train = min_train
        # BaseForecaster's constructor: the parent's would validate here
        BaseForecaster.__init__(self)
        self._y = None  # sktime's conformance tests switch remember_data on
        self._X = None
        # lenient here, strict in fit: keep the well-formed (name, forecaster)
        self._forecasters = [
            (member[0], member[1])
            for member in (forecasters if isinstance(forecasters, list | tuple) else [])
            if isinstance(member, tuple)
            and len(member) == 2
            and is_scitype(member[1], "forecaster")
        ]
        members = [est for _, est in self._forecasters]
        every = bool(members)
        self.set_tags(
            **{
                "capability:pred_int": every
                and all(e.get_tag("capability:pred_int") for e in members),
                "requires-fh-in-fit": horizon is None
                or any(e.get_tag("requires-fh-in-fit") for e in members),
            }
        )

    # ------------------------------------------------------------- validation
    def _check_params(self) -> list[tuple[str, object]]:
        members = self.forecasters
        if not isinstance(members, list | tuple) or len(members) == 0:
            raise ValueError(
                "forecasters must be a non-empty list of (name, forecaster) tuples"
            )
        for member in members:
            if not (isinstance(member, tuple) and len(member) == 2):
                raise TypeError(
                    f"forecasters must hold (name, forecaster) tuples, got {member!r}"
                )
            if not isinstance(member[0], str):
                raise TypeError(f"forecasters: name {member[0]!r} is not a string")
            if not is_scitype(member[1], "forecaster"):
                raise TypeError(
                    f"forecasters: {member[0]!r} is not an sktime forecaster "
                    f"(got {type(member[1]).__name__})"
                )
        names = [name for name, _ in members]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"forecasters: duplicate names {duplicated}")
        shrinkage = self.shrinkage
        if isinstance(shrinkage, str):
            if shrinkage != "auto":
                raise ValueError(
                    f"shrinkage must be a number in [0, 1] or 'auto', got {shrinkage!r}"
                )
        elif (
            isinstance(shrinkage, bool)
            or not isinstance(shrinkage, int | float | np.number)
            or not 0 <= shrinkage <= 1
        ):
            raise ValueError(
                f"shrinkage must be a number in [0, 1] or 'auto', got {shrinkage!r}"
            )
        if self.weights not in WEIGHTINGS:
            raise ValueError(
                f"weights must be one of {WEIGHTINGS}, got {self.weights!r}"
            )
        for name in ("n_origins", "step", "horizon", "min_train"):
            value = getattr(self, name)
            if value is None and name != "n_origins":
                continue
            # no inner origins at all is allowed (a fixed combination)
            least = 0 if name == "n_origins" else 1
            kind = "a whole number >= 0" if least == 0 else "a positive integer"
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise TypeError(f"{name} must be {kind}, got {value!r}")
            if value < least:
                raise ValueError(f"{name} must be {kind}, got {value!r}")
        if self.n_origins == 0 and (self.weights != "equal" or shrinkage == "auto"):
            raise ValueError(
                "n_origins=0 learns nothing: it needs weights='equal' and a "
                f"numeric shrinkage, got weights={self.weights!r}, "
                f"shrinkage={shrinkage!r}"
            )
        return [(name, est) for name, est in members]

    # -------------------------------------------------------------- fitting
    def _fit(self, y, X, fh):
        members = self._check_params()
        names = [name for name, _ in members]
        if self.horizon is not None:
            h = int(self.horizon)
        else:
            h = max(1, int(np.max(fh.to_relative(self.cutoff))))
        step = self.step or h
        min_train = self.min_train or 2 * h
        times = _times(y)
        shortest = len(times) - self.n_origins * step

        self.failed_members_ = {}
        if self.n_origins == 0 or shortest < min_train:
            self.weights_source_ = (
                "equal (no inner origins)"
                if self.n_origins == 0
                else "equal (too short)"
            )
            self.inner_errors_ = pd.DataFrame(columns=names, dtype=float)
            self.weights_ = pd.Series(1.0 / len(names), index=names, name="weight")
            self.shrinkage_ = 0.0 if self.shrinkage == "auto" else float(self.shrinkage)
        else:
            self.weights_source_ = "inner origins"
            self._learn_weights(y, members, h, step, times)

        self.forecasters_ = []
        for name, est in members:
            if name not in self.failed_members_:
                self.forecasters_.append((name, est.clone().fit(y, X=None, fh=fh)))
        self._last_value = _last_values(y)
        return self

    def _inner_forecasts(self, y, members, h, step, times):
        """Per inner origin (oldest first): its cut-off, the members'
        forecasts ``(n_members, n_values)``, the actual values and the
        no-change forecasts, over the values every working member forecast.
        On a panel each series' errors are divided by its mean absolute
        one-step change up to the cut-off, so that series of any price
        level weigh alike."""
        steps = ForecastingHorizon(np.arange(1, h + 1), is_relative=True)
        origins = []
        for k in range(self.n_origins, 0, -1):  # oldest origin first
            cutoff = times[len(times) - k * step - 1]
            train, truth = _cut(y, cutoff, times, h)
            predictions = {}
            for name, est in members:
                if name in self.failed_members_:
                    continue
                try:
                    pred = est.clone().fit(train, fh=steps).predict()
                except Exception as error:  # noqa: BLE001 - a failing member: weight 0
                    message = str(error).strip().splitlines() or [""]
                    self.failed_members_[name] = f"{type(error).__name__}: {message[0]}"
                    continue
                pred = _values(pred).reindex(truth.index)
                if not np.isfinite(pred.to_numpy(float)).all():
                    self.failed_members_[name] = "forecast is not finite"
                    continue
                predictions[name] = pred.to_numpy(float)
            row = np.full((len(members), len(truth)), np.nan)
            for i, (name, _) in enumerate(members):
                if name in predictions and name not in self.failed_members_:
                    row[i] = predictions[name]
            last = _per_row(_last_values(train), truth.index)
            scale = _per_row(_scales(train), truth.index)
            origins.append((cutoff, row, truth.to_numpy(float), last, scale))
        return origins

    def _learn_weights(self, y, members, h, step, times):
        """Rolling inner origins: weights_, shrinkage_, inner_errors_."""
        names = [name for name, _ in members]
        origins = self._inner_forecasts(y, members, h, step, times)
        if len(self.failed_members_) == len(names):
            reasons = "; ".join(f"{n}: {r}" for n, r in self.failed_members_.items())
            raise ValueError(f"every member failed on the inner origins: {reasons}")
        ok = np.array([name not in self.failed_members_ for name in names])
        errors = [
            np.where(ok[:, None], np.abs(row - truth) / scale, np.nan)
            for _, row, truth, _, scale in origins
        ]
        self.inner_errors_ = pd.DataFrame(
            [e.mean(axis=1) for e in errors],
            index=pd.Index([o[0] for o in origins], name="inner_cutoff"),
            columns=names,
        )
        mae = np.concatenate(errors, axis=1).mean(axis=1)
        self.weights_ = pd.Series(_weigh(mae, ok, self.weights), names, name="weight")

        if self.shrinkage != "auto":
            self.shrinkage_ = float(self.shrinkage)
            return
        w = np.where(ok, self.weights_.to_numpy(), 0.0)
        score = {
            s: np.mean(
                np.concatenate(
                    [
                        np.abs((1 - s) * (np.nan_to_num(row).T @ w) + s * last - truth)
                        / scale
                        for _, row, truth, last, scale in origins
                    ]
                )
            )
            for s in SHRINKAGE_GRID
        }
        self.shrinkage_ = float(min(SHRINKAGE_GRID, key=score.__getitem__))

    def _update(self, y, X=None, update_params=True):
        for _, est in self.forecasters_:
            est.update(y, X=None, update_params=update_params)
        self._last_value = _last_values(y)
        return self

    # ------------------------------------------------------------ predicting
    def _weighted(self, frames):
        """The weighted sum of the members' outputs (same index and columns)."""
        return sum(
            self.weights_[name] * frame.to_numpy(float)
            for (name, _), frame in zip(self.forecasters_, frames, strict=True)
        )

    def _combined_points(self, fh):
        """``(members' weighted point forecast, how far shrinkage moves
        it)``, each one value per row of the forecast."""
        points = [est.predict(fh=fh) for _, est in self.forecasters_]
        combined = self._weighted(points).reshape(len(points[0]))
        last = _per_row(self._last_value, points[0].index)
        return points[0], combined, self.shrinkage_ * (last - combined)

    def _predict(self, fh, X=None):
        template, combined, shift = self._combined_points(fh)
        out = template.astype(float)
        # a one-column frame for a panel, a series for one series
        out[:] = (combined + shift).reshape(out.shape)
        return out

    def _predict_quantiles(self, fh, X=None, alpha=None):
        # every quantile moves as far as the point forecast, so shrinkage
        # keeps the intervals' width (shrinking them toward one value would
        # narrow them)
        quantiles = [
            est.predict_quantiles(fh=fh, alpha=alpha) for _, est in self.forecasters_
        ]
        _, _, shift = self._combined_points(fh)
        out = quantiles[0].astype(float)
        out[:] = self._weighted(quantiles) + shift[:, None]
        return out

    @classmethod
    def get_test_params(cls, parameter_set="default"):
        """Three cheap settings for sktime's conformance suite.

        Parameters
        ----------
        parameter_set : str, default="default"

        Returns
        -------
        list of dict
        """
        from sktime.forecasting.naive import NaiveForecaster

        return [
            {
                "forecasters": [
                    ("last", NaiveForecaster("last")),
                    ("drift", NaiveForecaster("drift")),
                ],
                "n_origins": 1,
            },
            {
                "forecasters": [
                    ("last", NaiveForecaster("last")),
                    ("mean", NaiveForecaster("mean", window_length=4)),
                ],
                "shrinkage": "auto",
                "weights": "best",
                "n_origins": 2,
                "step": 1,
                "horizon": 2,
            },
            {
                "forecasters": [
                    ("last", NaiveForecaster("last")),
                    ("drift", NaiveForecaster("drift")),
                ],
                "n_origins": 0,
                "weights": "equal",
                "shrinkage": 0.5,
            },
        ]


def _weigh(mae: np.ndarray, ok: np.ndarray, how: str) -> np.ndarray:
    """Weights (summing to 1) from each member's inner MAE; 0 where not ok."""
    m = np.where(ok, mae, np.inf)
    if how == "equal":
        w = ok.astype(float)
    elif how == "best":
        w = (np.arange(len(m)) == np.argmin(m)).astype(float)
    elif (m == 0).any():  # exact members share all the weight
        w = (m == 0).astype(float)
    else:
        w = 1.0 / m
    return w / w.sum()


# ----------------------------------------------------------------- series
# y is a pd.Series or a panel (pd-multiindex: instances, then time)
def _is_panel(y) -> bool:
    return isinstance(y.index, pd.MultiIndex)


def _values(frame):
    """The values of a Series or a one-column DataFrame, as a Series."""
    return frame.iloc[:, 0] if isinstance(frame, pd.DataFrame) else frame


def _times(y) -> pd.Index:
    """The sorted time points of ``y`` (of all its series)."""
    if not _is_panel(y):
        return y.index
    return y.index.get_level_values(-1).unique().sort_values()


def _cut(y, cutoff, times, h: int):
    """``(train, truth)``: ``y`` up to ``cutoff``, and its values at the
    ``h`` time points after it (fewer where it ends sooner)."""
    position = times.get_loc(cutoff)
    future = times[position + 1 : position + 1 + h]
    if not _is_panel(y):
        return y.loc[:cutoff], _values(y).loc[future]
    time = y.index.get_level_values(-1)
    train = y[time <= cutoff]
    return train, _values(y)[time.isin(future)]


def _last_values(y):
    """The no-change forecast: the last value (of each series of a panel)."""
    if not _is_panel(y):
        return float(_values(y).iloc[-1])
    return _values(y).groupby(level=0, sort=False).last()


def _scales(y):
    """1 for a series; each series' mean absolute one-step change for a
    panel (its errors are divided by it)."""
    if not _is_panel(y):
        return 1.0
    values = _values(y)
    changes = values.groupby(level=0, sort=False).diff().abs()
    scale = changes.groupby(level=0, sort=False).mean()
    return scale.where(scale > 0, 1.0).fillna(1.0)


def _per_row(value, index) -> np.ndarray:
    """``value`` (a number, or one per series) for each row of ``index``."""
    if not isinstance(value, pd.Series):
        return np.full(len(index), float(value))
    return value.reindex(index.get_level_values(0)).to_numpy(float)
