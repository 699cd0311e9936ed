"""The named models a backtest can run: baselines, pricetune variants and
the language-model ablation.

Every entry is built by :func:`get_model` into a :class:`ModelSpec`: an
sktime forecaster (cloned before each fit) and whether it is *global* (one
fit per origin on all series of the panel up to the cut-off) or *local*
(one fit per series and origin).
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "ABLATION_STRATEGIES",
    "DEFAULT_MODELS",
    "QUICK_MODELS",
    "FracastForecaster",
    "ModelSpec",
    "ablation_models",
    "available_models",
    "get_model",
    "is_global",
]

DEFAULT_MODELS = (
    "naive",
    "drift",
    "autoarima",
    "autoets",
    "theta",
    "lstm",
    "gru",
    "default",
    "fracast",
)
QUICK_MODELS = ("naive", "drift", "theta", "none", "lstm")
ABLATION_STRATEGIES = ("full", "frozen", "layernorm", "lora")
#: Fracast-0 fine-tuned: its pretrained head trains, its encoder reads a
#: 64-step window (2,048 is its own, and costs about 25 times more a step)
FRACAST_TUNED = {
    "backbone": "fracast",
    "head": "fracast",
    "strategy": "frozen",
    "backbone_kwargs": {"window": 64},
    "context_length": 60,
    "patch_length": 6,
}


@dataclass
class ModelSpec:
    """A model of the backtest: ``estimator`` is an unfitted sktime
    forecaster; ``global_`` fits it once per origin on the whole panel;
    ``max_train`` caps the history a local model is fitted on."""

    name: str
    estimator: object
    global_: bool = False
    group: str = "baseline"
    description: str = ""
    params: dict = field(default_factory=dict)
    #: fit on the last ``max_train`` values only (a sliding window for slow
    #: local models on long daily series); None: the whole history
    max_train: int | None = None


def fracast_available() -> bool:
    return importlib.util.find_spec("fracast") is not None


def statsforecast_available() -> bool:
    return importlib.util.find_spec("statsforecast") is not None


def _require_fracast(name: str) -> None:
    if not fracast_available():
        raise ModuleNotFoundError(
            f"the {name!r} model needs the fracast package: pip install fracast"
        )


def is_global(estimator) -> bool:
    """Whether ``estimator`` is, or wraps, a :class:`FineTunedPriceForecaster`
    (which trains one model on a whole panel)."""
    from pricetune.estimators.forecaster import FineTunedPriceForecaster

    if isinstance(estimator, FineTunedPriceForecaster):
        return True
    try:
        params = estimator.get_params(deep=True)
    except Exception:  # noqa: BLE001 - not an sktime/sklearn estimator
        return False
    values = list(params.values())
    for value in values:
        if isinstance(value, list | tuple):
            values.extend(v[-1] if isinstance(v, tuple) else v for v in value)
    return any(isinstance(v, FineTunedPriceForecaster) for v in values)


# ------------------------------------------------------------------ pricetune
def _pricetune_params(quick: bool, seed: int, device: str, overrides=None) -> dict:
    params = {"random_state": seed, "device": device, "verbose": 0}
    if quick:
        params.update(context_length=12, patch_length=4, max_epochs=2, batch_size=32)
    params.update(overrides or {})
    return params


#: every named pricetune variant is one network whose forecasts are not
#: shrunk, as measured in docs/accuracy.md; ``default`` is the forecaster
#: as shipped (an ensemble, shrunk toward no-change)
ONE_NETWORK = {"n_ensemble": 1, "shrinkage": 0.0}


def _pricetune(name, group, description, quick, seed, device, overrides, **params):
    from pricetune.estimators.forecaster import FineTunedPriceForecaster

    shape = {} if name == "default" else ONE_NETWORK
    merged = {**shape, **params, **_pricetune_params(quick, seed, device, overrides)}
    backbone = merged.get(
        "backbone", FineTunedPriceForecaster.get_param_defaults()["backbone"]
    )
    if quick and backbone in ("lstm", "gru"):
        merged.setdefault("backbone_kwargs", {"hidden_size": 8})
    if quick and backbone in ("minilm", "hf"):
        kwargs = dict(merged.get("backbone_kwargs") or {})
        kwargs.setdefault("n_layers", 1)
        merged["backbone_kwargs"] = kwargs
    estimator = FineTunedPriceForecaster(**merged)
    return ModelSpec(name, estimator, True, group, description, merged)


def _lstm_member(args, **params) -> ModelSpec:
    """The ``lstm`` network as a part of a wrapped or combined model;
    ``args`` are ``_pricetune``'s (quick, seed, device, overrides)."""
    return _pricetune(
        "lstm", "pricetune", "", *args, backbone="lstm", strategy="full", **params
    )


def ablation_models(
    backbone: str = "minilm",
    backbone_kwargs: dict | None = None,
    strategies=ABLATION_STRATEGIES,
    random_init: tuple = ("full", "lora"),
    no_backbone: bool = True,
    quick: bool = False,
    seed: int = 0,
    device: str = "auto",
    overrides: dict | None = None,
) -> list[ModelSpec]:
    """The language-model ablation: the same architecture (patching, head,
    training) with the pretrained ``backbone`` under each strategy, the same
    backbone randomly initialised (trained with each of ``random_init``),
    and no backbone at all (patches straight to the head)."""
    kwargs = dict(backbone_kwargs or {})
    specs = []
    for strategy in strategies:
        specs.append(
            _pricetune(
                f"{backbone}-pretrained-{strategy}",
                "ablation",
                f"pretrained {backbone}, strategy {strategy}",
                quick,
                seed,
                device,
                overrides,
                backbone=backbone,
                backbone_kwargs=dict(kwargs),
                strategy=strategy,
            )
        )
    for strategy in random_init:
        specs.append(
            _pricetune(
                f"{backbone}-random-{strategy}",
                "ablation",
                f"{backbone} architecture, random weights, strategy {strategy}",
                quick,
                seed,
                device,
                overrides,
                backbone=backbone,
                backbone_kwargs={**kwargs, "pretrained": False},
                strategy=strategy,
            )
        )
    if no_backbone:
        specs.append(
            _pricetune(
                "no-backbone",
                "ablation",
                "no backbone: patches straight to the head",
                quick,
                seed,
                device,
                overrides,
                backbone="none",
                strategy="full",
            )
        )
    return specs


# ------------------------------------------------------------------ baselines
def _naive(strategy):
    from sktime.forecasting.naive import NaiveForecaster

    return NaiveForecaster(strategy=strategy)


def _autoarima():
    if statsforecast_available():
        from sktime.forecasting.statsforecast import StatsForecastAutoARIMA

        return StatsForecastAutoARIMA(sp=1)
    from sktime.forecasting.arima import AutoARIMA

    return AutoARIMA(sp=1, suppress_warnings=True, error_action="ignore")


def _autoets():
    if statsforecast_available():
        from sktime.forecasting.statsforecast import StatsForecastAutoETS

        return StatsForecastAutoETS(season_length=1)
    from sktime.forecasting.ets import AutoETS

    return AutoETS(auto=True, sp=1, information_criterion="aicc")


def _theta():
    from sktime.forecasting.theta import ThetaForecaster

    return ThetaForecaster(sp=1, deseasonalize=False)


def _builtin(name, quick, seed, device, overrides):
    """The spec of the built-in model ``name``, or None."""
    if name == "naive":
        return ModelSpec(name, _naive("last"), description="no-change forecast")
    if name == "drift":
        return ModelSpec(name, _naive("drift"), description="random walk with drift")
    if name == "autoarima":
        return ModelSpec(name, _autoarima(), description="AutoARIMA (non-seasonal)")
    if name == "autoets":
        return ModelSpec(name, _autoets(), description="AutoETS (non-seasonal)")
    if name == "theta":
        return ModelSpec(name, _theta(), description="Theta method")
    if name == "fracast":
        _require_fracast(name)
        return ModelSpec(
            name,
            FracastForecaster(),
            group="reference",
            description="Fracast-0 zero-shot (outside reference)",
        )
    args = (quick, seed, device, overrides)
    if name in ("lstm", "gru"):
        return _pricetune(
            name,
            "pricetune",
            f"{name.upper()} from scratch, quantile head",
            *args,
            backbone=name,
            strategy="full",
        )
    if name == "lstm-log":
        from sktime.forecasting.compose import TransformedTargetForecaster
        from sktime.transformations.series.boxcox import LogTransformer

        # the scale floor is a fraction of the level: on log prices (levels
        # of about 1 to 8) 0.01 would exceed a typical monthly change
        network = _lstm_member(args, min_scale=0.001)
        # log prices in, prices out: sktime inverts the log on points and
        # quantiles alike, so the model is scored on the same scale as the rest
        return ModelSpec(
            name,
            TransformedTargetForecaster(
                [("log", LogTransformer()), ("lstm", network.estimator)]
            ),
            True,
            "pricetune",
            "LSTM from scratch on log prices (sktime LogTransformer)",
            network.params,
        )
    if name == "none":
        return _pricetune(
            name,
            "pricetune",
            "no backbone (patches to quantile head)",
            *args,
            backbone="none",
            strategy="full",
        )
    if name == "fracast-tuned":
        _require_fracast(name)
        return _pricetune(
            name,
            "pricetune",
            "Fracast-0 fine-tuned on the panel (its head; 64-step window)",
            *args,
            **FRACAST_TUNED,
        )
    if name == "combined":
        from pricetune.estimators.combined import CombinedForecaster

        network = _lstm_member(args)
        members = [
            ("naive", _naive("last")),
            ("drift", _naive("drift")),
            ("theta", _theta()),
            ("lstm", network.estimator),
        ]
        return ModelSpec(
            name,
            CombinedForecaster(members, shrinkage="auto", n_origins=3),
            True,
            "pricetune",
            "LSTM, Theta, drift and no-change, weights and shrinkage toward "
            "no-change learned on 3 earlier origins",
            network.params,
        )
    if name == "lstm-theta":
        from pricetune.estimators.combined import CombinedForecaster

        network = _lstm_member(args)
        # the simple average: no inner origins, so one LSTM fit and Theta's
        average = CombinedForecaster(
            [("lstm", network.estimator), ("theta", _theta())],
            n_origins=0,
            weights="equal",
        )
        return ModelSpec(
            name,
            average,
            True,
            "pricetune",
            "the mean of the LSTM's and Theta's forecasts (fixed equal weights)",
            network.params,
        )
    if name == "default":
        return _pricetune(
            name,
            "pricetune",
            "FineTunedPriceForecaster defaults (three LSTMs, mixed, shrunk three "
            "quarters of the way toward no-change)",
            *args,
        )
    return None


def available_models() -> list[str]:
    """Names :func:`get_model` knows (``fracast`` only when installed)."""
    names = [m for m in DEFAULT_MODELS if m != "fracast" or fracast_available()]
    names += ["lstm-log", "none", "combined", "lstm-theta"]
    if fracast_available():
        names.append("fracast-tuned")
    names += [s.name for s in ablation_models()]
    return names


def get_model(
    name: str,
    quick: bool = False,
    seed: int = 0,
    device: str = "auto",
    overrides: dict | None = None,
) -> ModelSpec:
    """The :class:`ModelSpec` of a named model: ``naive``, ``drift``,
    ``autoarima``, ``autoets``, ``theta``, ``lstm``, ``gru``, ``lstm-log``,
    ``none``, ``combined``, ``lstm-theta``, ``default``, ``fracast`` (when
    installed) and the ablation variants (``minilm-pretrained-lora``,
    ``minilm-random-full``, ``no-backbone``...).
    ``overrides`` are FineTunedPriceForecaster parameters for the pricetune
    models (e.g. ``{"max_epochs": 5}``)."""
    spec = _builtin(name, quick, seed, device, overrides)
    if spec is not None:
        return spec
    for candidate in ablation_models(
        quick=quick, seed=seed, device=device, overrides=overrides
    ):
        if candidate.name == name:
            return candidate
    raise ValueError(f"unknown model {name!r}; known: {', '.join(available_models())}")


# -------------------------------------------------------------------- fracast
_FRACAST_CACHE: dict = {}


def _fracast_model(weights: str):
    if weights not in _FRACAST_CACHE:
        from fracast import FracastModel

        # no argument: the weights bundled with the package, nothing downloaded
        _FRACAST_CACHE[weights] = FracastModel.from_pretrained(
            weights=weights, device="cpu"
        )
    return _FRACAST_CACHE[weights]


def _fracast_base():
    from sktime.forecasting.base import BaseForecaster

    return BaseForecaster


class FracastForecaster(_fracast_base()):
    """Fracast-0 (the ``fracast`` package's bundled pretrained weights)
    zero-shot, as an sktime forecaster: ``fit`` only stores the series.

    Parameters
    ----------
    weights : {"w8", "fp32"}, default "w8"
    """

    _tags = {
        "authors": ["pricetune developers"],
        "python_dependencies": ["fracast"],
        "y_inner_mtype": "pd.Series",
        "X_inner_mtype": "pd.DataFrame",
        "capability:exogenous": False,
        "requires-fh-in-fit": False,
        "capability:pred_int": True,
        "capability:insample": False,
        "capability:pred_int:insample": False,
    }

    def __init__(self, weights="w8"):
        self.weights = weights
        super().__init__()

    def _fit(self, y, X=None, fh=None):
        self._values = y.to_numpy(dtype=np.float64)
        self._name = y.name
        return self

    def _outputs(self, fh):
        steps = np.asarray(fh.to_relative(self.cutoff), dtype=int)
        if steps.min() < 1:
            raise ValueError("FracastForecaster forecasts future steps only")
        model = _fracast_model(self.weights)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            block = model.forecast(self._values, horizon=int(steps.max()))
        return np.asarray(block, dtype=np.float64)[steps - 1], model.quantiles

    def _predict(self, fh, X=None):
        from pricetune.nn.quantiles import interpolate_quantiles

        outputs, levels = self._outputs(fh)
        values = interpolate_quantiles(levels, np.sort(outputs, axis=1), [0.5])[:, 0]
        index = fh.to_absolute_index(self.cutoff)
        return pd.Series(values, index=index, name=self._name)

    def _predict_quantiles(self, fh, X, alpha):
        from pricetune.nn.quantiles import interpolate_quantiles

        outputs, levels = self._outputs(fh)
        values = interpolate_quantiles(levels, np.sort(outputs, axis=1), alpha)
        columns = self._get_columns(method="predict_quantiles", alpha=alpha)
        return pd.DataFrame(
            values, index=fh.to_absolute_index(self.cutoff), columns=columns
        )

    @classmethod
    def get_test_params(cls, parameter_set="default"):
        return [{"weights": "w8"}, {"weights": "fp32"}]
