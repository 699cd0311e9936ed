"""The checks that fit a real ``FineTunedPriceForecaster`` with the
component: fit, predict, refit, pickle, save and load (and optionally
sktime's ``check_estimator``); for an augmentation, training with it and
predicting without it."""

from __future__ import annotations

import pickle

import numpy as np

from pricetune.testing._common import (
    FORECASTER_SETTINGS,
    ContractError,
    _Checker,
    _series,
    _temporary_directory,
)

_registered_in_process: dict[tuple[str, type], str] = {}
_counter: list[None] = []


def _registered_name(checker: _Checker) -> str:
    """The component's registered name; an unregistered class is registered
    in-process under a generated name (once per class)."""
    from types import SimpleNamespace

    from pricetune.hookspecs import hookimpl
    from pricetune.plugins import _HOOK_FOR_KIND, get_registry, register_plugin

    if checker.name is not None:
        return checker.name
    key = (checker.kind, checker.cls)
    name = _registered_in_process.get(key)
    registry = get_registry(checker.kind)
    if name is None or name not in registry or registry.get(name) is not checker.cls:
        # first time, or the plugins were reloaded since
        _counter.append(None)
        number = len(_counter)
        name = f"pricetune-testing-{checker.kind}-{number}"
        cls, kind, added = checker.cls, checker.kind, name

        @hookimpl
        def register(registry):
            registry.add(added, cls)

        plugin = SimpleNamespace(**{_HOOK_FOR_KIND[kind]: register})
        register_plugin(plugin, name=f"pricetune-testing-{number}")
        if name not in get_registry(kind):
            checker.fail("could not be registered in-process for the forecaster check")
        _registered_in_process[key] = name
    return _registered_in_process[key]


def _importable(cls: type) -> bool:
    """Whether pickle can find ``cls`` by its module and qualified name."""
    import importlib

    try:
        found = importlib.import_module(cls.__module__)
        for part in cls.__qualname__.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return False
    return found is cls


def _check_in_forecaster(
    checker: _Checker, params: dict, *, sktime: bool, devices
) -> None:
    """Fit, predict, refit, pickle, save and load a forecaster that uses the
    component; optionally sktime's ``check_estimator``."""
    import pandas as pd

    from pricetune.estimators.forecaster import FineTunedPriceForecaster

    params = {**FORECASTER_SETTINGS, "device": "cpu", **params}
    params[checker.kind] = _registered_name(checker)
    if checker.kwargs:
        params[f"{checker.kind}_kwargs"] = checker.kwargs
    y, fh = _series(), [1, 2, 3]
    shown = {k: v for k, v in params.items() if k not in FORECASTER_SETTINGS}

    def fitted(**overrides):
        forecaster = FineTunedPriceForecaster(**{**params, **overrides})
        try:
            return forecaster.fit(y, fh=fh)
        except Exception as error:
            raise ContractError(
                f"{checker.label}: FineTunedPriceForecaster({shown}) failed to fit: "
                f"{type(error).__name__}: {error}"
            ) from error

    forecaster = fitted()
    prediction = forecaster.predict()
    if len(prediction) != len(fh) or not np.isfinite(prediction.to_numpy()).all():
        checker.fail(f"the forecaster's predict gave {prediction.to_numpy()}")
    if forecaster.get_tag("capability:pred_int"):
        interval = forecaster.predict_interval(coverage=0.8)
        lower, upper = interval.iloc[:, 0].to_numpy(), interval.iloc[:, 1].to_numpy()
        if not (np.isfinite(interval.to_numpy()).all() and np.all(lower <= upper)):
            checker.fail(f"predict_interval gave crossing or NaN bounds: {interval}")
    checker.passed("a FineTunedPriceForecaster fits and predicts with it")

    again = fitted().predict()
    if not np.array_equal(again.to_numpy(), prediction.to_numpy()):
        checker.fail(
            "two fits with random_state=0 on the CPU give different forecasts "
            f"({prediction.to_numpy()} vs {again.to_numpy()})"
        )
    checker.passed("forecaster fits are reproducible with a seed")

    if _importable(checker.cls):
        restored = pickle.loads(pickle.dumps(forecaster))
        pd.testing.assert_series_equal(restored.predict(), prediction)
    else:
        checker.note(
            f"pickle not checked: {checker.cls.__qualname__} cannot be imported "
            f"from {checker.cls.__module__!r} (a class made in a function or a "
            "notebook); users of a packaged plugin can pickle"
        )
    with _temporary_directory() as directory:
        path = forecaster.save(f"{directory}/model", serialization_format="safetensors")
        try:
            loaded = FineTunedPriceForecaster.load(path)
        except Exception as error:  # noqa: BLE001 - reported
            checker.fail(
                f"a forecaster saved with serialization_format='safetensors' does "
                f"not load: {type(error).__name__}: {error}"
            )
        if not np.allclose(loaded.predict().to_numpy(), prediction.to_numpy()):
            checker.fail("a forecaster loaded from safetensors forecasts differently")
    checker.passed("the fitted forecaster survives pickle and safetensors save/load")

    for device in devices:
        if device == "cpu":
            continue
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            continue
        on_device = fitted(device=device).predict()
        if not np.isfinite(on_device.to_numpy()).all():
            checker.fail(f"the forecaster fitted on {device} predicts NaN")
        checker.passed(f"the forecaster fits and predicts on {device}")

    if sktime:
        from sktime.utils.estimator_checks import check_estimator

        try:
            results = check_estimator(
                FineTunedPriceForecaster(**params), raise_exceptions=True, verbose=False
            )
        except Exception as error:
            raise ContractError(
                f"{checker.label}: sktime's check_estimator failed for "
                f"FineTunedPriceForecaster({shown}): {type(error).__name__}: {error}"
            ) from error
        failed = {
            name: result for name, result in results.items() if result != "PASSED"
        }
        if failed:
            checker.fail(f"sktime's check_estimator failed: {failed}")
        checker.passed(f"sktime's check_estimator passes ({len(results)} checks)")


def _check_augmentation_in_forecaster(checker: _Checker, instance) -> None:
    from pricetune.components.contract import Augmentation
    from pricetune.estimators.forecaster import FineTunedPriceForecaster

    class Counting(Augmentation):
        """Wraps the augmentation and counts the windows it is given."""

        def __init__(self):
            self.windows = 0

        def __call__(self, context, target):
            self.windows += len(context)
            return instance(context, target)

    counting = Counting()
    params = {
        **FORECASTER_SETTINGS,
        "backbone": "none",
        "strategy": "full",
        "device": "cpu",
        "augmentations": [counting],
    }
    try:
        forecaster = FineTunedPriceForecaster(**params).fit(_series(), fh=[1, 2, 3])
    except Exception as error:
        raise ContractError(
            f"{checker.label}: a forecaster training with it failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    if counting.windows == 0:
        checker.fail("was never called while the forecaster trained")
    seen = counting.windows
    prediction = forecaster.predict()
    if not np.isfinite(prediction.to_numpy()).all():
        checker.fail("a forecaster trained with it predicts NaN or infinity")
    if counting.windows != seen:
        checker.fail("was called during predict; augmentations are for training")
    checker.passed("trains a forecaster, and predict never calls it")
