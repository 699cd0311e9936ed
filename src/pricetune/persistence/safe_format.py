"""The safe format: a directory with ``model.safetensors`` (the model's
weights) and ``pricetune.json`` (parameters, the components' provenance,
the fitted state and a reference to the base weights). Loading reads JSON
and safetensors only; it never unpickles.

Format version 2 stores only the tensors the fit made: for a LoRA model
over pretrained MiniLM, the adapters, the patch embedding and the head,
not the frozen pretrained weights. ``pricetune.json`` records the tensors
left out (the *base*: bitwise what the model rebuilt from the installed
components holds), where their pretrained weights came from (the package
and version that ship them, or the checkpoint directory) and their SHA-256;
:mod:`pricetune.persistence.weights` has the rule and its reasons. Format
version 1 (pricetune 0.1.0) stored every tensor; such saves still load.

The model is rebuilt from the installed components; loading checks that
its base tensors hash as recorded (else
:class:`~pricetune.persistence.errors.BaseWeightsError` names the weights
saved against and those installed) and loads the saved tensors on top,
strictly: every saved tensor must be in the model with its dtype and shape,
every other tensor of the model must be a recorded base tensor. Tied
weights are stored once (``safetensors.torch.save_model``) and tied again.
The estimator's sktime or scikit-learn fitted state is rebuilt through its
ordinary ``fit`` on stand-in data, in which the restore hook
(:mod:`pricetune.persistence.restore`) replaces training. Each estimator
says what it stores: ``_fitted_state()`` (JSON), ``_refit_from_save(fitted)``
(the stand-in fit) and ``_restore_fitted(fitted, model_state, weights)``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

from pricetune.estimators.parameters import with_missing_parameters
from pricetune.persistence.codec import json_value
from pricetune.persistence.errors import (
    MissingComponentError,
    PersistenceError,
    PersistenceWarning,
)
from pricetune.persistence.restore import restoring
from pricetune.persistence.weights import (
    SavedWeights,
    library_versions,
    saved_bytes,
    split_state,
    write_weights,
)
from pricetune.registry import plural
from pricetune.training.config import MODEL_COMPONENTS

FORMAT_NAME = "pricetune"
FORMAT_VERSION = 2
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "pricetune.json"

#: the estimators the safe format loads, by the name a save records
ESTIMATORS = {
    "pricetune.FineTunedPriceForecaster": (
        "pricetune.estimators.forecaster",
        "FineTunedPriceForecaster",
    ),
    "pricetune.FineTunedPriceRegressor": (
        "pricetune.estimators.regressor",
        "FineTunedPriceRegressor",
    ),
    "pricetune.FineTunedPriceDirectionClassifier": (
        "pricetune.estimators.classifier",
        "FineTunedPriceDirectionClassifier",
    ),
}
#: the names pricetune 0.1.0 recorded (its module paths)
LEGACY_NAMES = {
    "pricetune.forecaster.FineTunedPriceForecaster": (
        "pricetune.FineTunedPriceForecaster"
    ),
    "pricetune.regressor.FineTunedPriceRegressor": "pricetune.FineTunedPriceRegressor",
    "pricetune.classifier.FineTunedPriceDirectionClassifier": (
        "pricetune.FineTunedPriceDirectionClassifier"
    ),
}


def _estimator_class(name: str) -> type:
    module, attribute = ESTIMATORS[name]
    return getattr(importlib.import_module(module), attribute)


def estimator_name(cls: type) -> str:
    """The name a save of ``cls`` records: pricetune's public name for its
    own estimators, the class path for a subclass (which loads only through
    its own ``load``)."""
    for name, (module, attribute) in ESTIMATORS.items():
        if f"{cls.__module__}.{cls.__qualname__}" == f"{module}.{attribute}":
            return name
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_savable_class(cls: type) -> None:
    if not any(issubclass(cls, _estimator_class(name)) for name in ESTIMATORS):
        raise TypeError(
            f"the safe format does not know {cls.__name__}; it saves "
            + ", ".join(sorted(ESTIMATORS))
        )


def _not_fitted(estimator):
    from sklearn.exceptions import NotFittedError

    return NotFittedError(
        f"this {type(estimator).__name__} is not fitted yet, so there is "
        "nothing to save: call fit first"
    )


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save(estimator, path, *, include_base: bool = False) -> Path:
    """Save a fitted estimator in the safe format: a directory ``path``
    (created if needed) holding ``model.safetensors`` and ``pricetune.json``.

    ``model.safetensors`` holds the tensors the fit made; the base weights
    it leaves out (the frozen pretrained weights, and whatever else is
    bitwise as the installed components build it) are recorded in
    ``pricetune.json`` by source and SHA-256, and :func:`load` checks them
    (see :mod:`pricetune.persistence.weights`). With ``include_base=True``
    every tensor is stored, as pricetune 0.1.0 did (a larger save that
    does not check the installed pretrained weights).

    Existing files of those names are replaced; nothing else in the directory
    is touched. Returns the directory. ``callbacks`` are not saved (a
    :class:`PersistenceWarning` says so when some were set).

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
    import pricetune

    _check_savable_class(type(estimator))
    fitted_flag = getattr(estimator, "is_fitted", None)  # sktime's; sklearn has none
    if fitted_flag is False or (
        fitted_flag is None and not hasattr(estimator, "model_")
    ):
        raise _not_fitted(estimator)
    fitted = estimator._fitted_state()  # refuses fits the format cannot hold
    params = estimator.get_params(deep=False)
    if params.get("callbacks"):
        warnings.warn(
            "the safe format does not store callbacks; the loaded estimator has "
            "callbacks=None (set_params(callbacks=...) before training it again)",
            PersistenceWarning,
            stacklevel=3,
        )
    params = {
        name: None if name == "callbacks" else json_value(value, name)
        for name, value in params.items()
    }
    model_state = estimator._model_state()
    # the base is found by rebuilding the model from exactly what load reads
    tensors, base = split_state(
        estimator,
        *json.loads(json.dumps([params, fitted, model_state], allow_nan=False)),
        include_base=include_base,
    )
    document = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "pricetune_version": pricetune.__version__,
        "estimator": estimator_name(type(estimator)),
        "params": params,
        "components": _components(estimator),
        "model": model_state,
        "fitted": fitted,
        "saved_with": library_versions(),
    }
    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise PersistenceError(f"{directory} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    _write_atomically(weights, lambda target: write_weights(tensors, target))
    document["weights"] = {
        "file": WEIGHTS_FILE,
        "sha256": _sha256(weights),
        "tensors": len(tensors),
        "bytes": saved_bytes(tensors),
    }
    document["base"] = base
    text = json.dumps(document, indent=1, allow_nan=False)
    _write_atomically(
        directory / METADATA_FILE, lambda target: target.write_text(text + "\n")
    )
    return directory


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    keys = ["estimator", "params", "components", "model", "fitted", "weights"]
    if version >= 2:
        keys.append("base")  # the tensors left out of the weights file
    missing = [key for key in keys if key not in document]
    if missing:
        raise PersistenceError(f"{path} is corrupt: it lacks {missing}")
    _check_model_sizes(document["model"], path)
    if version >= 2 and not _well_formed_base(document["base"]):
        raise PersistenceError(f"{path} is corrupt: its base entry is malformed")
    return document


#: bounds on the sizes a save's JSON gives the model, checked before anything
#: is built: the model is allocated from them before its weights can be
#: compared, so an edited ``horizon`` of 10**13 would ask for petabytes
MODEL_SIZE_LIMITS = {"horizon": (1, 100_000), "n_covariate_features": (0, 1_000_000)}


def _check_model_sizes(model: dict, path: Path) -> None:
    if not isinstance(model, dict):
        raise PersistenceError(f"{path} is corrupt: its model entry is malformed")
    for name, (low, limit) in MODEL_SIZE_LIMITS.items():
        value = model.get(name)
        if type(value) is not int or not low <= value <= limit:
            raise PersistenceError(
                f"{path} is corrupt: model.{name} is {value!r}, not an integer "
                f"from {low} to {limit:,}"
            )


def _well_formed_base(base) -> bool:
    """``{"parts": {part: {"sha256": str, "tensors": {name: [dtype, shape]}}}}``"""
    parts = base.get("parts") if isinstance(base, dict) else None
    if not isinstance(parts, dict):
        return False
    for record in parts.values():
        if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
            return False
        tensors = record.get("tensors")
        if not isinstance(tensors, dict) or not all(
            isinstance(spec, list)
            and len(spec) == 2
            and isinstance(spec[0], str)
            and isinstance(spec[1], list)
            for spec in tensors.values()
        ):
            return False
    return True


def _check_device(device, directory: Path) -> None:
    from pricetune.training.devices import resolve_device

    try:
        resolve_device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise PersistenceError(
            f"{directory} was saved with device={device!r}, which cannot be used "
            f"here ({error}); pass device='cpu' (or another device) to load"
        ) from error


def _estimator_for(document: dict, directory: Path, expected: type | None) -> type:
    recorded = document["estimator"]
    name = LEGACY_NAMES.get(recorded, recorded)
    if expected is not None:
        if name != estimator_name(expected):
            raise PersistenceError(
                f"{directory} holds a {recorded}, not a {estimator_name(expected)}"
            )
        return expected
    if name not in ESTIMATORS:
        raise PersistenceError(
            f"{directory} holds a {recorded}, which this pricetune does not "
            "load (known: " + ", ".join(sorted(ESTIMATORS)) + ")"
        )
    return _estimator_class(name)


def _check_weights(directory: Path, weights: dict) -> Path:
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
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt") as handle:
            handle.keys()
    except (SafetensorError, OSError, ValueError) as error:
        raise PersistenceError(
            f"{path} is not a readable safetensors file: {error}"
        ) from error
    return path


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
    cls = _estimator_for(document, directory, expected)
    params = dict(document["params"])
    _check_components(document["components"], params)
    # a parameter added after the save keeps what the saved fit computed
    params = with_missing_parameters(cls, params)
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
    weights = _check_weights(directory, document["weights"])
    if document["format_version"] >= 2:
        # the tensors the fit made, checked against the base weights when
        # loaded (format version 1: a path, to a file with every tensor)
        weights = SavedWeights(directory, weights, document, estimator)
    fitted = document["fitted"]

    def restore() -> None:
        estimator._restore_fitted(fitted, document["model"], weights)

    try:
        with restoring(estimator, restore) as pending:
            estimator._refit_from_save(fitted)
    except (KeyError, IndexError) as error:
        raise PersistenceError(
            f"{directory / METADATA_FILE} is corrupt: a missing or malformed "
            f"entry ({type(error).__name__}: {error})"
        ) from error
    except (ValueError, TypeError) as error:
        if isinstance(error, PersistenceError):
            raise
        # the saved parameters fail the checks of fit (an edited
        # patch_length longer than the context, say)
        raise PersistenceError(
            f"{directory / METADATA_FILE} does not load: {error}"
        ) from error
    finally:
        if isinstance(weights, SavedWeights):
            weights.close()
    if not pending[2]:
        raise PersistenceError(
            f"{cls.__name__}.fit did not call pricetune.persistence."
            "pending_restore, so the saved fit could not be restored"
        )
    return estimator


def _components(estimator) -> dict:
    from pricetune.plugins import get_registry

    components = {}
    params = estimator.get_params(deep=False)
    for kind in MODEL_COMPONENTS:
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

    for kind in MODEL_COMPONENTS:
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
                f"{kind} {name!r} {hint}. Installed {plural(kind)}: "
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
