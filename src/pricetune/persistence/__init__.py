"""Saving and loading fitted pricetune estimators
(:class:`~pricetune.FineTunedPriceForecaster` and
:class:`~pricetune.FineTunedPriceRegressor`).

Two ways, with different trade-offs:

* **pickle / joblib** (``joblib.dump(forecaster, "f.joblib")``): everything,
  exactly, in one file. Unpickling runs code named in the file, so only load
  files you trust. A model fitted on a GPU is pickled from a CPU copy (see
  :func:`pickle_state`), so it unpickles on machines without one.
* **the safe format** (:func:`save` / :func:`load`, also
  ``forecaster.save(path, serialization_format="safetensors")`` /
  ``FineTunedPriceForecaster.load(path)`` and ``regressor.save(path)`` /
  ``FineTunedPriceRegressor.load(path)``): a directory with
  ``model.safetensors`` (the model's weights) and ``pricetune.json``
  (parameters, the components' provenance and the fitted state). Loading
  reads JSON and safetensors only; it never unpickles. The model is rebuilt
  from the installed components and the weights are loaded into it with
  ``strict=True``; the estimator's sktime or scikit-learn fitted state is
  rebuilt through its ordinary ``fit``, in which a restore hook
  (:func:`pending_restore`) replaces training.

Each estimator class has an :class:`EstimatorFormat` that says what fitted
state it needs beyond the model; this module imports nothing heavy until used.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import hashlib
import importlib
import importlib.metadata
import json
import math
import numbers
import os
import platform
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

FORMAT_NAME = "pricetune"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "pricetune.json"
_KINDS = ("backbone", "head", "strategy")


class PersistenceError(ValueError):
    """A save that cannot be written, or a directory that cannot be loaded."""


class MissingComponentError(PersistenceError):
    """A saved model needs a component that no installed plugin provides."""


class PersistenceWarning(UserWarning):
    """Something differs between where a model was saved and where it loads."""


# --------------------------------------------------------------------------
# pickle support: a model on a GPU is pickled from a CPU copy
# --------------------------------------------------------------------------
def cpu_copy(module):
    """A deep copy of ``module`` whose tensors are all on the CPU.

    The original is left as it is (same device, same tensors); no second copy
    of the weights is made on its device. Parameters keep ``requires_grad``,
    parameters shared between sub-modules stay shared, and plain tensor
    attributes of sub-modules are moved too.
    """
    import torch
    from torch import nn

    memo: dict[int, object] = {}
    for parameter in module.parameters():
        data = parameter.detach().to("cpu", copy=True)
        if type(parameter) is nn.Parameter:
            memo[id(parameter)] = nn.Parameter(data, parameter.requires_grad)
    for buffer in module.buffers():
        memo[id(buffer)] = buffer.detach().to("cpu", copy=True)
    copied = copy.deepcopy(module, memo)
    copied.to("cpu")  # parameter subclasses not covered above
    for sub_module in copied.modules():
        for name, value in list(vars(sub_module).items()):
            if isinstance(value, torch.Tensor) and value.device.type != "cpu":
                object.__setattr__(sub_module, name, value.to("cpu"))
    return copied


def _on_cpu(estimator) -> bool:
    import torch

    device = estimator.__dict__.get("device_")
    if isinstance(device, torch.device) and device.type != "cpu":
        return False
    model = estimator.__dict__["model_"]
    tensors = [*model.parameters(), *model.buffers()]
    return all(tensor.device.type == "cpu" for tensor in tensors)


def pickle_state(estimator, state: dict | None = None) -> dict:
    """The state to pickle (``__getstate__``): ``state`` (default: the
    instance's attributes; an estimator whose base class has its own
    ``__getstate__`` passes that one's result, e.g. scikit-learn's
    ``pickle_state(self, super().__getstate__())``), with a CPU copy of
    ``model_`` when the model lives on another device."""
    state = dict(estimator.__dict__ if state is None else state)
    if state.get("model_") is not None and not _on_cpu(estimator):
        state["model_"] = cpu_copy(state["model_"])
    return state


def _device_available(device) -> bool:
    import torch

    if device.type == "cpu":
        return True
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        return device.index is None or device.index < torch.cuda.device_count()
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        return mps is not None and mps.is_available()
    return False


def unpickle_state(estimator, state: dict) -> None:
    """Restore pickled state (``__setstate__``): set the attributes, then
    :func:`restore_device`. (An estimator whose base class has its own
    ``__setstate__`` calls that one, then :func:`restore_device`.)"""
    estimator.__dict__.update(state)
    restore_device(estimator)


def restore_device(estimator) -> None:
    """Move an unpickled model back to ``device_``.

    The model comes back on ``device_`` where that device exists; elsewhere
    (a model fitted on a GPU, unpickled on a machine without one) it stays on
    the CPU, ``device_`` becomes the CPU, and a :class:`PersistenceWarning`
    says so.
    """
    model = estimator.__dict__.get("model_")
    device = estimator.__dict__.get("device_")
    if model is None or device is None or device.type == "cpu":
        return
    if _device_available(device):
        model.to(device)
        return
    import torch

    warnings.warn(
        f"this {type(estimator).__name__} was fitted on {device}, which is not "
        "available here; its model is on the CPU (device_ is now 'cpu')",
        PersistenceWarning,
        stacklevel=4,
    )
    model.to("cpu")
    estimator.device_ = torch.device("cpu")
    estimator._autocast_dtype = None


# --------------------------------------------------------------------------
# the restore hook: load() rebuilds a fit through the estimator's own fit
# --------------------------------------------------------------------------
_PENDING: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "pricetune_pending_restore", default=None
)


@contextlib.contextmanager
def _restoring(estimator, restore: Callable[[], None]):
    pending = [estimator, restore, False]
    token = _PENDING.set(pending)
    try:
        yield pending
    finally:
        _PENDING.reset(token)


def pending_restore(estimator) -> Callable[[], None] | None:
    """The restore callback :func:`load` set for ``estimator``, or ``None``.

    An estimator's ``_fit`` calls this first (the regressor's ``fit``, once
    scikit-learn has validated the stand-in data); a callback means "this
    fit is :func:`load` rebuilding a saved fit: call it (it assembles the
    model, loads the weights and sets the fitted state) instead of
    training". It is handed out once.
    """
    pending = _PENDING.get()
    if pending is None or pending[0] is not estimator or pending[2]:
        return None
    pending[2] = True
    return pending[1]


# --------------------------------------------------------------------------
# JSON helpers
# --------------------------------------------------------------------------
def _json_value(value, where: str):
    """``value`` as plain JSON; tuples become lists, paths strings, numpy
    scalars Python numbers. Anything else is refused, naming ``where``."""
    if value is None or isinstance(value, str | bool | np.bool_):
        return bool(value) if isinstance(value, np.bool_) else value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise TypeError(f"{where}={value!r} is not finite; it cannot be saved")
        return number
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, list | tuple):
        return [_json_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{where} has the key {key!r} ({type(key).__name__}); the "
                    "safe format stores dicts with string keys only"
                )
            result[key] = _json_value(item, f"{where}[{key!r}]")
        return result
    raise TypeError(
        f"{where}={value!r} ({type(value).__name__}) cannot be saved in the safe "
        "format: parameters must be None, bool, int, float, str, or lists and "
        "string-keyed dicts of them (e.g. random_state=0 instead of a "
        "RandomState). Pickle or joblib can save this estimator as it is"
    )


def _json_label(value, where: str):
    """A series name, index name or column name: a JSON scalar."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(float(value)):
        return float(value)
    raise PersistenceError(
        f"{where} {value!r} ({type(value).__name__}) cannot be saved: names must "
        "be strings, numbers or None"
    )


def _floats(array) -> list:
    return np.asarray(array, dtype=np.float64).tolist()


def _encode_index(index: pd.Index, where: str) -> dict:
    """A time index as JSON (exact: ordinals and epoch values, not strings;
    ``labels`` is for people reading the file)."""
    if isinstance(index, pd.PeriodIndex):
        encoded = {
            "type": "period",
            "freq": index.freqstr,
            "ordinals": index.asi8.tolist(),
        }
    elif isinstance(index, pd.DatetimeIndex):
        encoded = {
            "type": "datetime",
            "unit": index.unit,
            "tz": None if index.tz is None else str(index.tz),
            "freq": index.freqstr,
            "values": index.asi8.tolist(),
        }
    elif isinstance(index, pd.RangeIndex):
        encoded = {
            "type": "range",
            "start": index.start,
            "stop": index.stop,
            "step": index.step,
        }
    elif pd.api.types.is_integer_dtype(index.dtype):
        encoded = {"type": "int", "dtype": str(index.dtype), "values": index.tolist()}
    else:
        raise PersistenceError(
            f"{where} is a {type(index).__name__} of {index.dtype}; the safe format "
            "stores PeriodIndex, DatetimeIndex and integer indices"
        )
    encoded["name"] = _json_label(index.name, f"{where}'s name")
    encoded["labels"] = [str(label) for label in index]
    decoded = _decode_index(encoded)
    same = (
        type(decoded) is type(index)
        and decoded.equals(index)
        and decoded.dtype == index.dtype
        and getattr(decoded, "freq", None) == getattr(index, "freq", None)
    )
    if not same:
        raise PersistenceError(f"{where} ({index!r}) does not survive the safe format")
    return encoded


def _decode_index(encoded: dict) -> pd.Index:
    kind, name = encoded["type"], encoded.get("name")
    if kind == "period":
        return pd.PeriodIndex.from_ordinals(
            encoded["ordinals"], freq=encoded["freq"]
        ).rename(name)
    if kind == "datetime":
        values = np.asarray(encoded["values"], dtype=np.int64)
        index = pd.DatetimeIndex(values.view(f"datetime64[{encoded['unit']}]"))
        if encoded["tz"] is not None:
            index = index.tz_localize("UTC").tz_convert(encoded["tz"])
        return pd.DatetimeIndex(index, freq=encoded["freq"], name=name)
    if kind == "range":
        return pd.RangeIndex(
            encoded["start"], encoded["stop"], encoded["step"], name=name
        )
    if kind == "int":
        return pd.Index(encoded["values"], dtype=encoded["dtype"], name=name)
    raise PersistenceError(f"unknown index type {kind!r}")


def _encode_fh(fh) -> dict:
    from sktime.forecasting.base import ForecastingHorizon

    encoded = {
        "is_relative": bool(fh.is_relative),
        "values": _encode_index(fh.to_pandas(), "fh"),
        "freq": fh.freq,
    }
    decoded = _decode_fh(encoded)
    if not (
        isinstance(decoded, ForecastingHorizon)
        and decoded.is_relative == fh.is_relative
        and decoded.to_pandas().equals(fh.to_pandas())
    ):
        raise PersistenceError(f"the forecasting horizon {fh!r} cannot be saved")
    return encoded


def _decode_fh(encoded: dict):
    from sktime.forecasting.base import ForecastingHorizon

    return ForecastingHorizon(
        _decode_index(encoded["values"]),
        is_relative=encoded["is_relative"],
        freq=encoded["freq"],
    )


def _encode_frame(frame: pd.DataFrame) -> dict:
    """A small numeric frame (``training_history_``) as JSON; NaN as null."""
    columns = {}
    for column in frame.columns:
        values = frame[column].tolist()
        columns[str(column)] = [
            None if isinstance(v, float) and math.isnan(v) else _json_value(v, column)
            for v in values
        ]
    return {
        "columns": [str(column) for column in frame.columns],
        "dtypes": [str(dtype) for dtype in frame.dtypes],
        "data": columns,
    }


def _decode_frame(encoded: dict) -> pd.DataFrame:
    frame = pd.DataFrame(
        {column: encoded["data"][column] for column in encoded["columns"]},
        columns=encoded["columns"],
    )
    for column, dtype in zip(encoded["columns"], encoded["dtypes"], strict=True):
        with contextlib.suppress(TypeError, ValueError):
            frame[column] = frame[column].astype(dtype)
    return frame


# --------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------
def _tensors_to_save(state_dict) -> tuple[dict, dict]:
    """CPU, contiguous tensors for safetensors, and ``{alias: name}`` for the
    entries that are the very same tensor as an earlier one (tied weights).

    Entries that only share memory with another (overlapping views) are
    saved as copies of their own, which safetensors requires.
    """
    tensors: dict = {}
    aliases: dict[str, str] = {}
    views: dict[tuple, str] = {}
    storages: set[tuple] = set()
    for name, tensor in state_dict.items():
        tensor = tensor.detach()
        storage = (str(tensor.device), tensor.untyped_storage().data_ptr())
        if tensor.numel() and storage[1]:
            view = (
                *storage,
                tensor.storage_offset(),
                tuple(tensor.shape),
                tensor.stride(),
                tensor.dtype,
            )
            if view in views:
                aliases[name] = views[view]
                continue
            views[view] = name
            shared = storage in storages
            storages.add(storage)
        else:
            shared = False
        tensor = tensor.to("cpu").contiguous()
        if shared:
            tensor = tensor.clone()
        tensors[name] = tensor
    return tensors, aliases


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_weights(directory: Path, weights: dict) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = directory / WEIGHTS_FILE
    if not path.is_file():
        raise PersistenceError(
            f"{directory} has no {WEIGHTS_FILE}; the save is incomplete"
        )
    expected = weights.get("sha256")
    if expected is not None and _sha256(path) != expected:
        raise PersistenceError(
            f"{path} does not match {METADATA_FILE} (its SHA-256 differs): the "
            "file is corrupt, or the directory mixes two saves"
        )
    try:
        tensors = load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise PersistenceError(
            f"{path} is not a readable safetensors file: {error}"
        ) from error
    for alias, name in weights.get("aliases", {}).items():
        if name not in tensors:
            raise PersistenceError(
                f"{METADATA_FILE} ties {alias!r} to missing {name!r}"
            )
        tensors[alias] = tensors[name]
    return tensors


# --------------------------------------------------------------------------
# what every FineTuningMixin estimator stores
# --------------------------------------------------------------------------
def _versions() -> dict:
    found = {"python": platform.python_version()}
    for distribution in ("pricetune", "torch", "sktime", "peft", "transformers"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[distribution] = importlib.metadata.version(distribution)
    return found


def _components(estimator) -> dict:
    from pricetune.plugins import get_registry

    components = {}
    params = estimator.get_params(deep=False)
    for kind in _KINDS:
        if kind not in params:
            continue  # fixed by the estimator (the classifier's head)
        info = get_registry(kind).info(params[kind])
        components[kind] = {
            "name": info.name,
            "class": info.class_path,
            "plugin": info.plugin,
            "distribution": info.distribution,
            "version": info.version,
        }
    return components


def _check_components(saved: dict, params: dict) -> None:
    """Every saved component must be installed; a different provider or
    version only warns."""
    from pricetune.plugins import get_registry

    for kind in _KINDS:
        if kind not in params:
            continue  # fixed by the estimator (the classifier's head)
        name = params[kind]
        entry = saved.get(kind) or {}
        if entry.get("name") != name:  # provenance of another component
            entry = {"name": name}
        registry = get_registry(kind)
        if name not in registry:
            distribution = entry.get("distribution", "?")
            version = entry.get("version") or ""
            if distribution == "(in-process)":
                hint = (
                    f"was registered in-process (plugin {entry.get('plugin', '?')!r})"
                    ", which is not registered here: register it again with "
                    "pricetune.plugins.register_plugin(...) before loading"
                )
            elif distribution in ("?", "", None):
                hint = "is not installed here, and its provider is unknown"
            else:
                hint = (
                    f"was provided by {distribution} {version}".rstrip()
                    + f", which is not installed here: pip install {distribution}"
                )
            raise MissingComponentError(
                f"{kind} {name!r} {hint}. Installed {kind}s: "
                + ", ".join(registry.names())
            )
        info = registry.info(name)
        then = (entry.get("distribution"), entry.get("version"))
        if "distribution" in entry and then != (info.distribution, info.version):
            warnings.warn(
                f"{kind} {name!r} was saved with {then[0]} {then[1]} and loads "
                f"with {info.distribution} {info.version}; its weights still "
                "have to fit the model it builds",
                PersistenceWarning,
                stacklevel=4,
            )


def _model_state(estimator) -> dict:
    effect = getattr(estimator.model_, "covariate_effect", None)
    history = getattr(estimator, "training_history_", None)
    return {
        "horizon": int(estimator.horizon_),
        "n_covariate_features": 0 if effect is None else int(effect.in_features),
        "seed": int(estimator._seed),
        "n_updates": int(estimator._n_updates),
        "quantiles": None
        if estimator.quantiles_ is None
        else _floats(estimator.quantiles_),
        "n_parameters": int(estimator.n_parameters_),
        "interval_scale": float(getattr(estimator, "interval_scale_", 1.0)),
        "training_history": None if history is None else _encode_frame(history),
    }


def restore_model(estimator, model_state: dict, tensors: dict, settings=None) -> None:
    """Assemble ``estimator``'s model from its parameters and the installed
    components (``_assemble``: no training), load ``tensors`` into it with
    ``strict=True`` and set the mixin's fitted attributes.

    ``settings`` defaults to ``estimator._check_settings()``; an estimator
    that resolves them from its data passes its own.
    """
    from pricetune.estimators.fine_tuning import member_seeds

    if settings is None:
        settings = estimator._check_settings()
    estimator._assemble(
        settings, model_state["horizon"], model_state["n_covariate_features"]
    )
    try:
        estimator.model_.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise PersistenceError(
            "the saved weights do not fit the model that the saved parameters "
            f"and the installed components build: {error}"
        ) from error
    estimator._seed = model_state["seed"]
    estimator._seeds = member_seeds(estimator._seed, len(estimator._seeds))
    estimator._n_updates = model_state["n_updates"]
    estimator.interval_scale_ = float(model_state.get("interval_scale", 1.0))
    history = model_state.get("training_history")
    if history is not None:
        estimator.training_history_ = _decode_frame(history)


# --------------------------------------------------------------------------
# estimator-specific state
# --------------------------------------------------------------------------
class EstimatorFormat:
    """What one estimator class stores beyond its parameters and model.

    ``fitted_state(estimator)`` returns JSON; ``rebuild(estimator, fitted,
    restore)`` makes a freshly constructed ``estimator`` fitted, through its
    ordinary ``fit`` on stand-in data, inside which ``restore()`` runs (its
    ``fit``/``_fit`` calls :func:`pending_restore`); ``restore`` assembles the
    model with ``settings(estimator, fitted)`` (default: the estimator's
    ``_check_settings()``), loads the weights, and calls
    ``set_fitted_state(estimator, fitted)``.
    """

    class_path: str

    def load_class(self) -> type:
        module, _, name = self.class_path.rpartition(".")
        return getattr(importlib.import_module(module), name)

    def check_savable(self, estimator) -> None:
        """Raise :class:`PersistenceError` for a fit the format cannot hold."""

    def fitted_state(self, estimator) -> dict:
        raise NotImplementedError

    def settings(self, estimator, fitted: dict):
        """The :class:`~pricetune.estimators.fine_tuning.Settings` the model is built
        with; ``None`` (the default) means ``estimator._check_settings()``."""
        return None

    def set_fitted_state(self, estimator, fitted: dict) -> None:
        raise NotImplementedError

    def rebuild(self, estimator, fitted: dict, restore: Callable[[], None]) -> None:
        raise NotImplementedError


_Y_MTYPES = ("pd.Series", "pd.DataFrame", "np.ndarray")
# panels and hierarchies (one model for all their series)
_PANEL_MTYPES = ("pd-multiindex", "pd_multiindex_hier", "df-list")


def _encode_instances(instances: pd.Index) -> dict:
    """A panel's series keys as JSON: one label (or list of labels, one per
    level) per series, and the level names."""
    if isinstance(instances, pd.MultiIndex):
        keys = [
            [_json_label(label, "a series key") for label in key] for key in instances
        ]
    else:
        keys = [_json_label(label, "a series key") for label in instances]
    return {
        "names": [_json_label(name, "a series level name") for name in instances.names],
        "keys": keys,
    }


def _decode_instances(encoded: dict) -> pd.Index:
    names, keys = list(encoded["names"]), encoded["keys"]
    if len(names) > 1:
        return pd.MultiIndex.from_tuples([tuple(key) for key in keys], names=names)
    return pd.Index(keys, name=names[0])


class ForecasterFormat(EstimatorFormat):
    """:class:`~pricetune.FineTunedPriceForecaster`: the whole history (the
    context of the next forecast and the windows of ``update``), the
    covariates' names, scaling and history, y's names and mtype, the cutoff
    and the fh. For a panel fit, the series end to end with where each
    starts, their keys and their last time points (under ``"panel"``, in
    place of ``"history"``)."""

    class_path = "pricetune.estimators.forecaster.FineTunedPriceForecaster"

    def check_savable(self, estimator) -> None:
        if getattr(estimator, "_is_vectorized", False):
            raise PersistenceError(
                "this forecaster was fitted on several series (sktime fitted one "
                "copy per series); the safe format saves single-series fits: "
                "use joblib, or save the forecasters in forecasters_ one by one"
            )

    def fitted_state(self, estimator) -> dict:
        metadata = getattr(estimator, "_y_metadata", None) or {}
        panel = getattr(estimator, "_instances", None) is not None
        mtype = metadata.get("mtype", "pd-multiindex" if panel else "pd.Series")
        allowed = _PANEL_MTYPES if panel else _Y_MTYPES
        if mtype not in allowed:
            raise PersistenceError(
                f"y was passed as {mtype}; the safe format saves "
                f"{'panel ' if panel else ''}fits on {', '.join(allowed)}"
            )
        covariates = None
        if estimator.covariate_names_:
            covariates = {
                "names": [
                    _json_label(name, "covariate")
                    for name in estimator.covariate_names_
                ],
                "loc": _floats(estimator._covariate_loc),
                "scale": _floats(estimator._covariate_scale),
                "history": np.asarray(
                    estimator._covariate_history, dtype=np.float64
                ).tolist(),
            }
        fitted = {
            "y": {
                "mtype": mtype,
                "name": _json_label(estimator._y_name, "y's name"),
                "index_name": _json_label(estimator._index_name, "y's index name"),
                "feature_names": [
                    _json_label(name, "y's column")
                    for name in metadata.get("feature_names") or []
                ],
            },
            "cutoff": _encode_index(estimator.cutoff, "the cutoff"),
            "fh": _encode_fh(estimator.fh),
            "covariates": covariates,
        }
        if panel:
            # no "history" key: a reader that knows single series only
            # stops at a missing entry instead of misreading the panel
            fitted["panel"] = {
                "series": _encode_instances(estimator._instances),
                "ends": _encode_index(estimator._ends, "the series' last time points"),
                "freq": estimator._freq,
                "offsets": np.asarray(estimator._offsets, dtype=np.int64).tolist(),
                "values": _floats(estimator._history),
            }
        else:
            fitted["history"] = _floats(estimator._history)
        return fitted

    def set_fitted_state(self, estimator, fitted: dict) -> None:
        panel = fitted.get("panel")
        if panel is None:
            estimator._history = np.asarray(fitted["history"], dtype=np.float64)
            estimator._set_single_series()
        else:
            estimator._history = np.asarray(panel["values"], dtype=np.float64)
            offsets = np.asarray(panel["offsets"], dtype=np.int64)
            instances = _decode_instances(panel["series"])
            ends = _decode_index(panel["ends"])
            if (
                offsets.ndim != 1
                or len(offsets) != len(instances) + 1
                or len(ends) != len(instances)
                or offsets[0] != 0
                or offsets[-1] != len(estimator._history)
                or np.any(np.diff(offsets) < 0)
            ):
                raise PersistenceError(
                    "the saved panel's series, offsets and last time points do "
                    "not fit together: the save is corrupt"
                )
            estimator._offsets = offsets
            estimator._freq = panel["freq"]
            estimator._instances = instances
            estimator._ends = ends
            estimator.n_series_ = len(instances)
        covariates = fitted["covariates"]
        estimator.covariate_names_ = []
        estimator._covariate_history = None
        if covariates is not None:
            estimator.covariate_names_ = list(covariates["names"])
            estimator._covariate_loc = np.asarray(covariates["loc"], dtype=np.float64)
            estimator._covariate_scale = np.asarray(
                covariates["scale"], dtype=np.float64
            )
            estimator._covariate_history = np.asarray(
                covariates["history"], dtype=np.float64
            ).reshape(len(estimator._history), len(covariates["names"]))
        estimator._y_name = fitted["y"]["name"]
        estimator._index_name = fitted["y"]["index_name"]

    def rebuild(self, estimator, fitted: dict, restore: Callable[[], None]) -> None:
        # sktime's fitted state (cutoff, fh, y's mtype and names) comes from
        # fit on a stand-in series ending at the saved cutoff; a one-point
        # series keeps the cutoff's frequency exactly as saved. The values are
        # ignored: restore() sets the saved history.
        cutoff = _decode_index(fitted["cutoff"])
        meta = fitted["y"]
        if "panel" in fitted:
            y, index = self._panel_stand_in(fitted, cutoff)
        else:
            last = fitted["history"][-1]
            if meta["mtype"] == "np.ndarray":
                # numpy data count from 0: the cutoff is the length minus one
                length = int(cutoff[0]) + 1
                index = pd.RangeIndex(length)
                y = np.full(length, last)
            else:
                index = cutoff.rename(meta["index_name"])
                y = pd.Series([last], index=index, name=meta["name"])
                if meta["mtype"] == "pd.DataFrame":
                    y = y.to_frame(
                        meta["feature_names"][0] if meta["feature_names"] else 0
                    )
        X = None
        if fitted["covariates"] is not None:
            covariates = fitted["covariates"]
            X = pd.DataFrame(
                np.broadcast_to(
                    covariates["loc"], (len(index), len(covariates["loc"]))
                ),
                index=index,
                columns=covariates["names"],
            )
        if "panel" in fitted and meta["mtype"] == "df-list":
            y = [frame.droplevel(0) for _, frame in y.groupby(level=0, sort=False)]
            if X is not None:
                X = [frame.droplevel(0) for _, frame in X.groupby(level=0, sort=False)]
        estimator.fit(y, X=X, fh=_decode_fh(fitted["fh"]))
        rebuilt = estimator.cutoff
        if not rebuilt.equals(cutoff) or getattr(rebuilt, "freq", None) != getattr(
            cutoff, "freq", None
        ):
            raise PersistenceError(
                f"rebuilt cutoff {estimator.cutoff!r} differs from the saved {cutoff!r}"
            )

    @staticmethod
    def _panel_stand_in(fitted: dict, cutoff: pd.Index):
        """A panel of one point per series, at each series' last time point
        (the values are the series' last values; restore() replaces them)."""
        panel, meta = fitted["panel"], fitted["y"]
        instances = _decode_instances(panel["series"])
        ends = _decode_index(panel["ends"])
        last = np.asarray(panel["values"], dtype=np.float64)[
            np.asarray(panel["offsets"][1:], dtype=np.int64) - 1
        ]
        if isinstance(instances, pd.MultiIndex):
            levels = [instances.get_level_values(i) for i in range(instances.nlevels)]
        else:
            levels = [instances]
        freq = getattr(cutoff, "freq", None)
        if isinstance(ends, pd.DatetimeIndex) and freq is not None:
            # sktime reads the cutoff's frequency from the time level: give the
            # level every time point from the first end to the last, so it
            # carries the saved frequency
            grid = pd.date_range(ends.min(), ends.max(), freq=freq, name=ends.name)
            index = pd.MultiIndex(
                levels=[*(pd.Index(level).unique() for level in levels), grid],
                codes=[
                    *(pd.Index(level).unique().get_indexer(level) for level in levels),
                    grid.get_indexer(ends),
                ],
                names=[*instances.names, meta["index_name"]],
            )
        else:
            index = pd.MultiIndex.from_arrays(
                [*levels, ends], names=[*instances.names, meta["index_name"]]
            )
        column = meta["feature_names"][0] if meta["feature_names"] else meta["name"]
        return pd.DataFrame({column: last}, index=index), index


class RegressorFormat(EstimatorFormat):
    """:class:`~pricetune.FineTunedPriceRegressor`: the number and names of
    the columns of X seen in ``fit``, how many of them are past values, the
    patch length used, the covariates' scaling and whether y was 1-D. The
    rows of X are not kept (the regressor does not keep them either)."""

    class_path = "pricetune.estimators.regressor.FineTunedPriceRegressor"

    def fitted_state(self, estimator) -> dict:
        names = getattr(estimator, "feature_names_in_", None)
        covariates = None
        if estimator.n_features_in_ > estimator.context_length_:
            covariates = {
                "loc": _floats(estimator._covariate_loc),
                "scale": _floats(estimator._covariate_scale),
            }
        return {
            "n_features_in": int(estimator.n_features_in_),
            "feature_names_in": None
            if names is None
            else [_json_label(name, "a column name of X") for name in names],
            "context_length": int(estimator.context_length_),
            "patch_length": int(estimator.patch_length_),
            "y_ndim": int(estimator._y_ndim),
            "covariates": covariates,
        }

    def settings(self, estimator, fitted: dict):
        # as in fit: the parameters resolved for X's number of columns
        settings, n_past = estimator._resolve_settings(fitted["n_features_in"])
        saved = (fitted["context_length"], fitted["patch_length"])
        if (n_past, settings.patch_length) != saved:
            raise PersistenceError(
                f"the saved context_length_ and patch_length_ {saved} differ from "
                f"{(n_past, settings.patch_length)}, which the saved parameters "
                f"give for {fitted['n_features_in']} columns: the save is corrupt"
            )
        return settings

    def set_fitted_state(self, estimator, fitted: dict) -> None:
        n_covariates = fitted["n_features_in"] - fitted["context_length"]
        covariates = fitted["covariates"]
        if (covariates is None) != (n_covariates == 0) or (
            covariates is not None
            and not len(covariates["loc"]) == len(covariates["scale"]) == n_covariates
        ):
            raise PersistenceError(
                f"the saved covariate scaling does not fit {n_covariates} "
                "covariate column(s): the save is corrupt"
            )
        if fitted["y_ndim"] not in (1, 2):
            raise PersistenceError(f"y_ndim={fitted['y_ndim']!r} is not 1 or 2")
        estimator.context_length_ = fitted["context_length"]
        estimator.patch_length_ = fitted["patch_length"]
        estimator._y_ndim = fitted["y_ndim"]
        if covariates is not None:
            estimator._covariate_loc = np.asarray(covariates["loc"], dtype=np.float64)
            estimator._covariate_scale = np.asarray(
                covariates["scale"], dtype=np.float64
            )

    def rebuild(self, estimator, fitted: dict, restore: Callable[[], None]) -> None:
        # scikit-learn's fitted state (n_features_in_, feature_names_in_)
        # comes from fit on one stand-in row with the saved columns; its
        # values are ignored: restore() replaces training
        n_features, names = fitted["n_features_in"], fitted["feature_names_in"]
        X = np.zeros((1, n_features))
        if names is not None:
            X = pd.DataFrame(X, columns=list(names))
        y = np.zeros(1) if fitted["y_ndim"] == 1 else np.zeros((1, 1))
        estimator.fit(X, y)
        rebuilt = getattr(estimator, "feature_names_in_", None)
        if estimator.n_features_in_ != n_features or (
            (rebuilt is None) != (names is None)
            or (names is not None and list(rebuilt) != list(names))
        ):
            raise PersistenceError(
                "the rebuilt columns of X differ from the saved ones: "
                f"{n_features} named {names}"
            )


class ClassifierFormat(RegressorFormat):
    """:class:`~pricetune.FineTunedPriceDirectionClassifier`: the
    regressor's fitted state and the two classes."""

    class_path = "pricetune.estimators.classifier.FineTunedPriceDirectionClassifier"

    def fitted_state(self, estimator) -> dict:
        return {
            **super().fitted_state(estimator),
            "classes": [_json_label(c, "a class label") for c in estimator.classes_],
        }

    def set_fitted_state(self, estimator, fitted: dict) -> None:
        super().set_fitted_state(estimator, fitted)
        classes = fitted.get("classes")
        if not isinstance(classes, list) or len(classes) != 2:
            raise PersistenceError(f"classes={classes!r} is not two labels")
        estimator.classes_ = np.asarray(classes)

    def rebuild(self, estimator, fitted: dict, restore: Callable[[], None]) -> None:
        # two stand-in rows labelled with the saved classes; restore()
        # replaces training and sets the rest
        n_features, names = fitted["n_features_in"], fitted["feature_names_in"]
        X = np.zeros((2, n_features))
        if names is not None:
            X = pd.DataFrame(X, columns=list(names))
        estimator.fit(X, np.asarray(fitted["classes"]))


_FORMATS: dict[str, EstimatorFormat] = {}


def register_format(estimator_format: EstimatorFormat) -> None:
    """Make an estimator class savable and loadable (by its class path)."""
    _FORMATS[estimator_format.class_path] = estimator_format


register_format(ForecasterFormat())
register_format(RegressorFormat())
register_format(ClassifierFormat())


def _format_for(cls: type) -> EstimatorFormat:
    for klass in cls.__mro__:
        path = f"{klass.__module__}.{klass.__qualname__}"
        if path in _FORMATS:
            return _FORMATS[path]
    raise TypeError(
        f"the safe format does not know {cls.__name__}; it saves "
        + ", ".join(sorted(_FORMATS))
    )


# where pricetune 0.1.0 kept the estimators
_LEGACY_CLASS_PATHS = {
    f"pricetune.{module}.{name}": f"pricetune.estimators.{module}.{name}"
    for module, name in (
        ("forecaster", "FineTunedPriceForecaster"),
        ("regressor", "FineTunedPriceRegressor"),
        ("classifier", "FineTunedPriceDirectionClassifier"),
    )
}


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# --------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------
def _check_fitted(estimator, estimator_format: EstimatorFormat) -> None:
    from sklearn.exceptions import NotFittedError

    message = (
        f"this {type(estimator).__name__} is not fitted yet, so there is "
        "nothing to save: call fit first"
    )
    if getattr(estimator, "is_fitted", None) is False:
        raise NotFittedError(message)
    estimator_format.check_savable(estimator)
    if getattr(estimator, "model_", None) is None:
        raise NotFittedError(message)


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save(estimator, path) -> Path:
    """Save a fitted estimator in the safe format: a directory ``path``
    (created if needed) holding ``model.safetensors`` and ``pricetune.json``.

    Existing files of those names are replaced; nothing else in the directory
    is touched. Returns the directory.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        the estimator is not fitted.
    TypeError
        a parameter is not a JSON value (e.g. a ``RandomState``).
    PersistenceError
        fitted state the format cannot hold (several series fitted one model
        each, an index type other than period, datetime or integer...). Panel
        fits (one model for all series) are saved.
    """
    from safetensors.torch import save_file

    import pricetune

    estimator_format = _format_for(type(estimator))
    _check_fitted(estimator, estimator_format)
    params = {
        name: _json_value(value, name)
        for name, value in estimator.get_params(deep=False).items()
    }
    document = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "pricetune_version": pricetune.__version__,
        "estimator": _class_path(type(estimator)),
        "params": params,
        "components": _components(estimator),
        "model": _model_state(estimator),
        "fitted": estimator_format.fitted_state(estimator),
        "saved_with": _versions(),
    }
    tensors, aliases = _tensors_to_save(estimator.model_.state_dict())
    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise PersistenceError(f"{directory} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    _write_atomically(
        weights,
        lambda target: save_file(tensors, str(target), metadata={"format": "pt"}),
    )
    document["weights"] = {
        "file": WEIGHTS_FILE,
        "sha256": _sha256(weights),
        "aliases": aliases,
    }
    text = json.dumps(document, indent=1, allow_nan=False)
    _write_atomically(
        directory / METADATA_FILE, lambda target: target.write_text(text + "\n")
    )
    return directory


def _read_document(directory: Path) -> dict:
    if not directory.exists():
        raise FileNotFoundError(f"no saved pricetune model at {directory}")
    if not directory.is_dir():
        raise PersistenceError(
            f"{directory} is a file, not a saved pricetune model (a directory "
            f"with {METADATA_FILE} and {WEIGHTS_FILE}); a pickle or joblib file "
            "loads with joblib.load, if you trust it"
        )
    path = directory / METADATA_FILE
    if not path.is_file():
        raise PersistenceError(
            f"{directory} is not a saved pricetune model: it has no {METADATA_FILE}"
        )
    try:
        document = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PersistenceError(f"{path} is corrupt: {error}") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise PersistenceError(f"{path} is not a pricetune save")
    version = document.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise PersistenceError(f"{path} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        import pricetune

        raise PersistenceError(
            f"{directory} was saved by pricetune "
            f"{document.get('pricetune_version', '?')} in format version {version}; "
            f"this pricetune ({pricetune.__version__}) reads format versions up "
            f"to {FORMAT_VERSION}: upgrade pricetune to load it"
        )
    missing = [
        key
        for key in ("estimator", "params", "components", "model", "fitted", "weights")
        if key not in document
    ]
    if missing:
        raise PersistenceError(f"{path} is corrupt: it lacks {missing}")
    return document


def _check_device(device, directory: Path) -> None:
    from pricetune.training.devices import resolve_device

    try:
        resolve_device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise PersistenceError(
            f"{directory} was saved with device={device!r}, which cannot be used "
            f"here ({error}); pass device='cpu' (or another device) to load"
        ) from error


def load(path, *, device: str | None = None, expected: type | None = None):
    """Load an estimator saved by :func:`save`; never unpickles anything.

    Parameters
    ----------
    path : str or Path
        the directory :func:`save` wrote.
    device : str, optional
        overrides the saved ``device`` parameter, e.g. ``"cpu"`` to load a
        model saved with ``device="cuda"`` on a machine without a GPU.
    expected : type, optional
        the class the save must hold (``FineTunedPriceForecaster.load`` and
        ``FineTunedPriceRegressor.load`` pass themselves).

    Raises
    ------
    FileNotFoundError
        nothing at ``path``.
    MissingComponentError
        a component the model needs is not installed; the message names it
        and the distribution that provided it.
    PersistenceError
        not a pricetune save, a corrupt one, one from a newer format, or
        weights that do not fit the model the installed components build.
    """
    directory = Path(path)
    document = _read_document(directory)
    class_path = _LEGACY_CLASS_PATHS.get(document["estimator"], document["estimator"])
    if expected is not None:
        if class_path != _class_path(expected):
            raise PersistenceError(
                f"{directory} holds a {class_path}, not a {_class_path(expected)}"
            )
        cls = expected
        estimator_format = _format_for(cls)
    else:
        if class_path not in _FORMATS:
            raise PersistenceError(
                f"{directory} holds a {class_path}, which this pricetune does not "
                "load (known: " + ", ".join(sorted(_FORMATS)) + ")"
            )
        estimator_format = _FORMATS[class_path]
        cls = estimator_format.load_class()
    params = dict(document["params"])
    _check_components(document["components"], params)
    if device is not None:
        params["device"] = device
    _check_device(params.get("device", "auto"), directory)
    try:
        estimator = cls(**params)
    except TypeError as error:
        raise PersistenceError(
            f"{directory} was saved with parameters this {cls.__name__} does not "
            f"take: {error}"
        ) from error
    tensors = _read_weights(directory, document["weights"])
    fitted = document["fitted"]

    def restore() -> None:
        settings = estimator_format.settings(estimator, fitted)
        restore_model(estimator, document["model"], tensors, settings=settings)
        estimator_format.set_fitted_state(estimator, fitted)

    try:
        with _restoring(estimator, restore) as pending:
            estimator_format.rebuild(estimator, fitted, restore)
    except (KeyError, IndexError) as error:
        raise PersistenceError(
            f"{directory / METADATA_FILE} is corrupt: a missing or malformed "
            f"entry ({type(error).__name__}: {error})"
        ) from error
    if not pending[2]:
        raise PersistenceError(
            f"{cls.__name__}.fit did not call pricetune.persistence."
            "pending_restore, so the saved fit could not be restored"
        )
    return estimator
