"""``FineTunedPriceForecaster``: the sktime forecaster behind pricetune.

Its data live in a :class:`~pricetune.data.series.SeriesStore`; training,
inference and the model's state come from
:class:`~pricetune.estimators.fine_tuning.FineTuningMixin`; what the safe
format stores is in :mod:`pricetune.estimators.forecaster_state`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sktime.forecasting.base import BaseForecaster, ForecastingHorizon

from pricetune.data.checks import (
    check_covers,
    check_time_index,
    labels,
    require_panel,
)
from pricetune.data.covariate_roles import check_roles, check_static, known_future
from pricetune.data.series import SeriesStore
from pricetune.data.windows import ShortSeriesWarning
from pricetune.estimators.fine_tuning import FineTuningMixin, with_missing_fitted_state
from pricetune.estimators.forecaster_state import (
    covariate_mask,
    fitted_state,
    refit_from_save,
    restore_fitted,
    upgrade_pickled_state,
)
from pricetune.estimators.horizons import (
    chunks,
    joined,
    panel_index,
    steps_by_end,
    with_freq,
)
from pricetune.estimators.parameters import (
    training_parameters,
    with_missing_parameters,
)
from pricetune.persistence.restore import pending_restore
from pricetune.training.config import head_gives_quantiles

# series forecast per model call in a panel's predict
_PREDICT_CHUNK = 4096

#: the forecaster's own defaults where they differ from TrainingConfig's,
#: chosen on the World Bank Pink Sheet panel (docs/accuracy.md): three LSTMs
#: from scratch, mixed, each forecast moved three quarters of the way back to
#: the last value; a fit's cost does not grow with the number of windows,
#: and a flat stretch of prices cannot make one window's loss explode
FORECASTER_DEFAULTS = {
    "backbone": "lstm",
    "strategy": "full",
    "n_ensemble": 3,
    "batch_size": 64,
    "steps_per_epoch": 40,
    "max_validation_windows": 1024,
    "min_scale": 0.01,
    "shrinkage": 0.75,
}


# linear_baseline is the regressor's: the forecaster reads its own windows
@training_parameters(exclude=("linear_baseline",), defaults=FORECASTER_DEFAULTS)
class FineTunedPriceForecaster(FineTuningMixin, BaseForecaster):
    """Train or fine-tune a network to forecast a price series.

    The series is cut into overlapping windows of ``context_length`` past
    values followed by the ``max(fh)`` next values. Each window is normalised
    on its own, cut into patches, and passed through a *backbone* (a
    recurrent network, a pretrained language model or time-series model,
    or nothing) and a *head* that gives every step of the horizon at once
    (direct multi-step). A *strategy* chooses what trains. Backbones, heads
    and strategies are plugins, chosen by name; ``pricetune plugins`` lists
    them. The default is three LSTMs trained from scratch with a quantile
    head, their forecasts mixed and moved three quarters of the way back to
    the last value (``shrinkage=0.75``; chosen on the Pink Sheet panel and
    the daily series, docs/accuracy.md; ``n_ensemble=1`` fits one, three
    times faster); MiniLM with LoRA is ``backbone="minilm", strategy="lora"``.

    {parameters}
    Exogenous data
    --------------
    ``X`` (a DataFrame of numeric columns on the same time index as ``y``)
    is optional. When ``fit`` gets it, each column is standardised with its
    training mean and standard deviation, and the model reads every
    covariate over the context window *and over the forecast horizon*:
    covariates are treated as known in advance (calendar features, planned
    events, promotion flags, forward curves). ``predict`` then needs ``X``
    for every step from the cutoff to ``max(fh)``. Columns named in
    ``past_covariates`` are known only up to each time point (inventories,
    another market's price): a window reads them up to its cut-off only,
    and ``predict`` needs no future values of them; columns named in
    ``static_covariates`` hold one value per series and are read once.
    Covariates act through one linear map, started at zero, that shifts
    the forecast of each step (all quantiles alike). The shift is learned
    in normalised units, so in price units it scales with each window's
    recent volatility (an event worth "two typical monthly moves"): it
    transfers across price levels and regimes, rather than being a fixed
    number of dollars. ``shrinkage`` moves the whole forecast, the
    covariates' shift included: with covariates whose effect you trust,
    set ``shrinkage=0``.

    Panels: one model for many series
    ---------------------------------
    ``y`` may be a panel or a hierarchy of series (sktime's
    ``pd-multiindex`` and ``pd_multiindex_hier`` mtypes: a DataFrame with a
    MultiIndex whose last level is time, or a list of series, which sktime
    converts). ``fit`` then trains **one** model on the windows of every
    series (a global model), not one model per series. Windows are drawn
    lazily from the series stored end to end, so memory grows with the data.
    Each series is forecast from its own last ``context_length`` values, and
    a relative ``fh`` counts from each series' own last time point (as
    sktime does when it fits one forecaster per series). A series shorter
    than ``context_length`` plus the horizon gives no training window and is
    named in a :class:`~pricetune.data.windows.ShortSeriesWarning`; it is still
    forecast when it has ``context_length`` values (fitting fails when no
    series is long enough). Validation takes the newest windows *of each
    series*. ``X`` on a panel has the same index structure as ``y``, the
    same meaning per series, and one standardisation pooled over all
    series. ``update`` takes new observations for any fitted series.

    Attributes
    ----------
    context_length_ : int
        the past values each forecast reads (``context_length`` at ``fit``).
    model_ : torch.nn.Module
        the trained :class:`~pricetune.nn.model.PatchForecastModel` (an
        :class:`~pricetune.nn.model.EnsembleModel` of them when ``n_ensemble`` > 1).
    device_ : torch.device
    horizon_ : int
        number of steps the model forecasts (``max(fh)`` seen in ``fit``).
    quantiles_ : tuple of float or None
        quantile levels the head predicts.
    interval_scale_ : float
        the factor ``calibrate_intervals=True`` chose (1.0 otherwise).
    conformal_margins_ : ndarray of shape (horizon, n_quantiles) or None
        each quantile level's shift per horizon step, in units of the
        context's scale, that ``calibrate_intervals="conformal"`` chose
        (None otherwise).
    shrinkage_ : float
        the ``shrinkage`` the forecasts use (its value at ``fit``).
    n_parameters_, n_trainable_parameters_ : int
    training_history_ : pandas.DataFrame
        one row per epoch: train and validation loss, seconds.
    covariate_names_ : list
        the columns of ``X`` seen in ``fit`` (empty without ``X``).
    future_covariates_ : list
        those of them ``predict`` needs after the cutoff: every column not
        in ``past_covariates`` or ``static_covariates``.
    n_series_ : int
        number of series seen in ``fit`` (1 for a single series).

    Notes
    -----
    ``update(y, update_params=True)`` continues fine-tuning the current
    weights (it does not start again) on windows of the whole history seen so
    far, with the training settings of the parameters (epochs, early
    stopping, learning rate...); with ``update_params=False`` it only moves
    the forecast origin: the next prediction reads the newest
    ``context_length_`` values. Observations of ``y`` at or before the
    cutoff are already in the history and are left out (sktime's
    ``evaluate(strategy="update")`` passes the whole training window); the
    rest must start right after the cutoff (a gap raises).

    Examples
    --------
    >>> from pricetune import FineTunedPriceForecaster
    >>> from pricetune.datasets import load_brent
    >>> y = load_brent("monthly")
    >>> forecaster = FineTunedPriceForecaster(
    ...     backbone="none", head="quantile", strategy="full",
    ...     context_length=24, max_epochs=3, random_state=0, verbose=0)
    >>> forecaster.fit(y, fh=[1, 2, 3])
    FineTunedPriceForecaster(...)
    >>> forecaster.predict().shape
    (3,)
    >>> forecaster.predict_interval(coverage=0.8).shape
    (3, 2)
    """

    _tags = {
        "authors": ["pricetune developers"],
        "maintainers": ["pricetune developers"],
        "python_dependencies": ["torch", "transformers", "peft"],
        "object_type": "forecaster",
        # panels and hierarchies reach _fit whole: one model for all series
        "y_inner_mtype": ["pd.Series", "pd-multiindex", "pd_multiindex_hier"],
        "X_inner_mtype": ["pd.DataFrame", "pd-multiindex", "pd_multiindex_hier"],
        "capability:multivariate": False,
        "capability:exogenous": True,
        "capability:categorical_in_X": False,
        # the model reads X at every step from the cutoff to max(fh)
        "capability:non_contiguous_X": False,
        "requires-fh-in-fit": True,
        "capability:insample": False,
        "capability:pred_int": True,
        "capability:pred_int:insample": False,
        "capability:missing_values": False,
        "capability:update": True,
        "fit_is_empty": False,
        "capability:random_state": True,
    }

    # the forecaster keeps the values it needs itself (``_store``)
    _config = {"remember_data": False}

    def _init_base(self) -> None:
        # called by the generated __init__ once the parameters are stored
        BaseForecaster.__init__(self)
        # sktime stores these only when remember_data is on; its own
        # conformance tests switch it on after construction and expect them
        self._y = None
        self._X = None
        self.set_tags(
            **{"capability:pred_int": head_gives_quantiles(self.head, self.head_kwargs)}
        )

    # ------------------------------------------------------------------ fit
    def fit(self, y, X=None, fh=None):
        """Fit to training data; see :meth:`sktime.forecasting.base.BaseForecaster.fit`.

        Checks the time index of ``y`` and ``X`` first, so that an unsorted or
        duplicated index gets a short, direct message. A panel or hierarchy
        ``y`` trains one model on all its series (see the class notes).
        """
        check_time_index(y, "y")
        check_time_index(X, "X")
        check_covers(y, X)
        super().fit(y, X=X, fh=fh)
        return self._fit_ended()

    def update(self, y, X=None, update_params=True):
        """Update with new data; see the class notes for what ``update_params`` does."""
        check_time_index(y, "y")
        check_time_index(X, "X")
        check_covers(y, X)
        super().update(y, X=X, update_params=update_params)
        return self._fit_ended() if update_params else self

    def _fit(self, y, X=None, fh=None):
        # persistence: load() rebuilds a saved fit through fit(); restore()
        # assembles the model, loads the weights and sets the fitted state
        restore = pending_restore(self)
        if restore is not None:
            restore()
            return self
        config = self._training_config()
        check_roles(
            [] if X is None else X.columns,
            config.past_covariates,
            config.static_covariates,
        )
        if X is not None:
            check_static(X, config.static_covariates)
        store = SeriesStore.from_y(y, X, freq=fh.freq)
        fh = with_freq(fh, store.freq)
        horizon = max(int(steps.max()) for _, steps in steps_by_end(fh, store.ends))
        _check_training_windows(store, config.context_length, horizon)
        windows = store.windows(config.context_length, horizon)
        self._set_store(store, config)
        self._fit_model(
            config,
            windows,
            horizon,
            covariate_mask=covariate_mask(config, store, horizon),
        )
        return self

    def _set_store(self, store: SeriesStore, config) -> None:
        self._store = store
        self.context_length_ = config.context_length
        self.covariate_names_ = list(store.covariate_names)
        self.future_covariates_ = known_future(
            store.covariate_names, config.past_covariates, config.static_covariates
        )
        self.n_series_ = store.n_series

    # -------------------------------------------------------------- predict
    def _forecast(self, fh, X):
        """``(outputs, index)``: raw-unit outputs ``(rows, n_outputs)`` at the
        steps of ``fh`` for every series that can be forecast, and the index
        of those rows (a panel's: series, then time)."""
        store, context_length, horizon = (
            self._store,
            self.context_length_,
            self.horizon_,
        )
        forecastable = np.flatnonzero(store.lengths >= context_length)
        if len(forecastable) < store.n_series:
            left_out = np.flatnonzero(store.lengths < context_length)
            warnings.warn(
                f"{len(left_out)} series have fewer than context_length="
                f"{context_length} observations and are left out of the "
                f"forecasts: {labels(store.instances, left_out)}",
                ShortSeriesWarning,
                stacklevel=4,
            )
        # past-only and static columns are never read after the cut-off
        future_columns = getattr(self, "future_covariates_", self.covariate_names_)
        if future_columns and X is None:
            after = "each series' last time point" if store.is_panel else "the cutoff"
            needed = (
                ""
                if future_columns == self.covariate_names_
                else f" (its known-future columns {future_columns})"
            )
            raise ValueError(
                f"this forecaster was fitted with X ({self.covariate_names_}); "
                f"predict needs X for the {horizon} steps after {after}{needed}"
            )
        if X is not None and future_columns and store.is_panel:
            require_panel(X, "X")
        fh = with_freq(fh, store.freq)
        ends = store.ends if store.is_panel else self.cutoff
        codes, _ = pd.factorize(ends)
        groups = steps_by_end(fh, ends)
        steps = np.stack([group_steps for _, group_steps in groups])  # (groups, k)
        bad = (steps.min(axis=1) < 1) | (steps.max(axis=1) > horizon)
        if bad.any():
            group = int(np.flatnonzero(bad)[0])
            if not store.is_panel:
                raise ValueError(
                    f"this forecaster was fitted for steps 1..{horizon}; got "
                    f"{steps[group].tolist()}. Fit again with the fh you need"
                )
            series = np.flatnonzero(codes == group)
            raise ValueError(
                f"this forecaster was fitted for steps 1..{horizon}; the series "
                f"ending at {groups[group][0][0]} ({labels(store.instances, series)})"
                f" would need steps {steps[group].tolist()}. Fit again with the fh "
                "you need"
            )
        contexts, past = store.contexts(context_length, forecastable)
        covariates = None
        if self.covariate_names_:
            future = ForecastingHorizon(
                np.arange(1, horizon + 1), is_relative=True, freq=fh.freq
            )
            future_times = joined([future.to_absolute_index(e) for e, _ in groups])
            positions = codes[forecastable][:, None] * horizon + np.arange(horizon)
            wanted = future_times.take(positions.ravel())
            if store.is_panel:
                wanted = panel_index(
                    store.instances.take(np.repeat(forecastable, horizon)),
                    wanted,
                    store.time_name,
                )
            upcoming = store.scaled_covariates(X, wanted, future_columns).reshape(
                len(forecastable), horizon, -1
            )
            covariates = np.concatenate([past, upcoming], axis=1).reshape(
                len(forecastable), -1
            )
        outputs = np.concatenate(
            [
                self._raw_outputs(
                    contexts[chunk],
                    None if covariates is None else covariates[chunk],
                )
                for chunk in chunks(len(forecastable), _PREDICT_CHUNK)
            ]
        )  # (series, horizon, n_outputs)
        n_steps = steps.shape[1]
        series_steps = steps[codes[forecastable]]  # (series, k)
        selected = outputs[np.arange(len(forecastable))[:, None], series_steps - 1]
        selected = selected.reshape(len(forecastable) * n_steps, -1)
        if not store.is_panel:
            return selected, fh.to_absolute_index(self.cutoff).rename(store.time_name)
        times = joined([fh.to_absolute_index(end) for end, _ in groups])
        positions = codes[forecastable][:, None] * n_steps + np.arange(n_steps)
        index = panel_index(
            store.instances.take(np.repeat(forecastable, n_steps)),
            times.take(positions.ravel()),
            store.time_name,
        )
        return selected, index

    def _predict(self, fh, X=None):
        outputs, index = self._forecast(fh, X)
        values = self._quantiles_from(outputs, [0.5])[:, 0]
        if self._store.is_panel:
            return pd.DataFrame({self._store.name: values}, index=index)
        return pd.Series(values, index=index, name=self._store.name)

    def _predict_quantiles(self, fh, X, alpha):
        if self.quantiles_ is None:
            raise NotImplementedError(
                f"head {self.head!r} gives point forecasts only; use a "
                "probabilistic head such as 'quantile' for quantiles"
            )
        columns = self._get_columns(method="predict_quantiles", alpha=alpha)
        outputs, index = self._forecast(fh, X)
        values = self._quantiles_from(outputs, alpha)
        return pd.DataFrame(values, index=index, columns=columns)

    # ----------------------------------------------------------------- plot
    def plot(
        self,
        y=None,
        *,
        fh=None,
        coverage: float = 0.8,
        series=None,
        n_history: int | None = None,
        unit: str | None = None,
    ):
        """Plot the fitted forecaster's forecast: the recent history, the
        median and its ``coverage`` interval; one axis per series (a grid
        for a panel, at most 16; ``series=`` picks names). ``y`` is the
        history to draw (default: the data the forecaster was fitted on);
        ``fh`` defaults to the fitted one. Returns the matplotlib figure.

        >>> figure = forecaster.plot(series=["copper", "zinc"])  # doctest: +SKIP
        >>> figure.savefig("forecast.png")                       # doctest: +SKIP
        """
        from pricetune.backtesting.splitter import to_panel
        from pricetune.backtesting.units import shared_unit
        from pricetune.plotting import forecast_frame, plot_forecasts, split_forecasts

        self.check_is_fitted()
        history = self._store.to_panel() if y is None else to_panel(y)
        table = forecast_frame(self, self.fh if fh is None else fh, coverage)
        forecasts = split_forecasts(table, history)
        if series is not None:
            wanted = [series] if isinstance(series, str) else list(series)
            unknown = [name for name in wanted if name not in forecasts]
            if unknown:
                raise ValueError(
                    f"series {unknown} not forecast; known: {list(forecasts)}"
                )
            forecasts = {name: forecasts[name] for name in wanted}
        return plot_forecasts(
            history,
            forecasts,
            coverage=coverage,
            unit=shared_unit(history) if unit is None else unit,
            n_history=n_history,
        )

    # --------------------------------------------------------------- update
    def _update(self, y, X=None, update_params=True):
        self._store = self._store.append(y, X)
        if update_params:
            config = self._training_config()
            windows = self._store.windows(self.context_length_, self.horizon_)
            self._continue_training(config, windows)
        return self

    # ---------------------------------------------------------- persistence
    def save(self, path=None, serialization_format="pickle"):
        """Save the forecaster; ``serialization_format="safetensors"`` is the
        safe format.

        With ``"safetensors"``, ``path`` becomes a directory holding
        ``model.safetensors`` and ``pricetune.json``, which :meth:`load` reads
        without unpickling anything (see :func:`pricetune.persistence.save`);
        returns the directory. ``"pickle"`` (the default) and ``"cloudpickle"``
        keep sktime's behaviour: in memory without ``path``, else a zip file
        that :func:`sktime.base.load` unpickles.
        """
        if serialization_format == "safetensors":
            from pricetune.persistence import save

            if path is None:
                raise ValueError(
                    "serialization_format='safetensors' writes a directory: pass path"
                )
            return save(self, path)
        return super().save(path, serialization_format=serialization_format)

    @classmethod
    def load(cls, path, *, device=None):
        """Load a forecaster saved with ``save(path,
        serialization_format="safetensors")``, without unpickling anything;
        ``device`` overrides the saved ``device`` parameter. See
        :func:`pricetune.persistence.load`."""
        from pricetune.persistence import load

        return load(path, device=device, expected=cls)

    def to_onnx(self, path, quantize=None, opset=18):
        """Export the fitted network, with its normalisation, to an ONNX file
        that :class:`pricetune.export.OnnxForecaster` forecasts from without
        torch; ``quantize="int8"`` quantises its weights. The same as
        :func:`pricetune.export.export_onnx` (docs/deployment.md); needs
        ``pip install 'pricetune[onnx]'``."""
        from pricetune.export import export_onnx

        return export_onnx(self, path, quantize=quantize, opset=opset)

    def _fitted_state(self) -> dict:
        """The safe format's fitted state: the series store (every value the
        forecaster trained on, the covariates' names, scaling and history),
        y's names and mtype, the cutoff and the fh."""
        return fitted_state(self)

    def _restore_fitted(self, fitted: dict, model_state: dict, weights) -> None:
        restore_fitted(self, fitted, model_state, weights)

    def _refit_from_save(self, fitted: dict) -> None:
        refit_from_save(self, fitted)

    def __getstate__(self):
        # a model on a GPU is pickled from a CPU copy, so it unpickles anywhere
        from pricetune.persistence.pickling import pickle_state

        return pickle_state(self)

    def __setstate__(self, state):
        from pricetune.persistence.pickling import restore_device

        state = upgrade_pickled_state(with_missing_fitted_state(state))
        self.__dict__.update(with_missing_parameters(type(self), state))
        restore_device(self)

    # ---------------------------------------------------------- test params
    @classmethod
    def get_test_params(cls, parameter_set="default"):
        """Cheap settings for sktime's and the project's tests.

        They never download anything: "none" and "lstm" have no weights to
        load, and "minilm" reads its weights from an installed package. The
        LSTM set is the default's shape (three members), shrunk.
        """
        cheap = {
            # sktime's panel scenario has series of 10 points and fh=[1, 2, 3]
            "context_length": 6,
            "patch_length": 4,
            "max_epochs": 2,
            "batch_size": 16,
            "n_ensemble": 1,
            "random_state": 0,
            "verbose": 0,
        }
        return [
            {**cheap, "backbone": "none", "head": "linear", "strategy": "full"},
            {
                **cheap,
                "backbone": "lstm",
                "head": "quantile",
                "strategy": "full",
                "n_ensemble": 3,
                "backbone_kwargs": {"hidden_size": 8},
                "head_kwargs": {"quantiles": [0.1, 0.5, 0.9]},
            },
            {
                **cheap,
                "backbone": "minilm",
                "backbone_kwargs": {"n_layers": 1},
                "head": "quantile",
                "strategy": "lora",
                "strategy_kwargs": {"r": 2},
                "max_epochs": 1,
            },
        ]


def _check_training_windows(store, context_length: int, horizon: int):
    """Fitting needs a training window: a single series must be long
    enough; a panel needs one series long enough, and names the others in
    a :class:`~pricetune.data.windows.ShortSeriesWarning`."""
    needed = context_length + horizon
    if not store.is_panel:
        if len(store.values) < needed:
            raise ValueError(
                f"y has {len(store.values)} observations, but context_length="
                f"{context_length} plus the horizon of {horizon} needs at least "
                f"{needed}; pass a longer series or lower context_length"
            )
        return
    short = np.flatnonzero(store.lengths < needed)
    if len(short) == store.n_series:
        raise ValueError(
            f"no series of y is long enough to train on: context_length="
            f"{context_length} plus the horizon of {horizon} needs at least "
            f"{needed} observations, and the longest series has "
            f"{int(store.lengths.max())}; pass longer series or lower context_length"
        )
    if len(short):
        unforecastable = short[store.lengths[short] < context_length]
        message = (
            f"{len(short)} of {store.n_series} series have fewer than "
            f"{needed} observations (context_length={context_length} plus "
            f"the horizon of {horizon}) and give no training window: "
            f"{labels(store.instances, short)}"
        )
        if len(unforecastable):
            message += (
                f". Of those, {labels(store.instances, unforecastable)} "
                f"{'has' if len(unforecastable) == 1 else 'have'} fewer than "
                f"context_length={context_length} and cannot be forecast "
                "either, until update gives them enough observations"
            )
        warnings.warn(message, ShortSeriesWarning, stacklevel=5)
