"""Saving and loading fitted FineTunedPriceRegressors: pickle/joblib, and the
safe format (pricetune.persistence: model.safetensors + pricetune.json).

Round trips must give bitwise-identical predictions on the CPU, keep
scikit-learn's fitted state (``check_is_fitted``, ``n_features_in_``,
``feature_names_in_``), and the safe format must never unpickle anything.
"""

from __future__ import annotations

import copy
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
from types import SimpleNamespace

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from torch import nn

import pricetune
from pricetune import (
    FineTunedPriceForecaster,
    FineTunedPriceRegressor,
    persistence,
    plugins,
)
from pricetune.components.contract import Backbone
from pricetune.persistence import (
    METADATA_FILE,
    WEIGHTS_FILE,
    MissingComponentError,
    PersistenceError,
    PersistenceWarning,
)

WINDOW, N_TRAIN, N_TEST = 16, 100, 12
CHEAP = dict(
    patch_length=8,
    max_epochs=2,
    batch_size=16,
    random_state=0,
    verbose=0,
    device="cpu",
)
CONFIGS = {
    "none": dict(
        backbone="none",
        head="quantile",
        strategy="full",
        head_kwargs={"quantiles": [0.1, 0.5, 0.9]},
    ),
    "lstm": dict(
        backbone="lstm",
        head="quantile",
        strategy="full",
        backbone_kwargs={"hidden_size": 8},
    ),
    "minilm-lora": dict(
        backbone="minilm",
        backbone_kwargs={"n_layers": 1},
        head="quantile",
        strategy="lora",
        strategy_kwargs={"r": 2},
        max_epochs=1,
    ),
}
LEVELS = [0.05, 0.1, 0.5, 0.9, 0.95]


def _data():
    """Rows of WINDOW monthly Brent prices, two covariates per row (named
    columns), and the 3 months after each row."""
    from pricetune.datasets import load_brent

    prices = load_brent("monthly").to_numpy()[-(N_TRAIN + N_TEST + WINDOW + 2) :]
    spans = np.lib.stride_tricks.sliding_window_view(prices, WINDOW + 3)
    step = np.arange(len(spans))
    covariates = np.column_stack([np.sin(2 * np.pi * step / 12), step / 10.0])
    return np.array(spans[:, :WINDOW]), covariates, np.array(spans[:, WINDOW:])


def _frame(past, covariates):
    names = [f"lag_{WINDOW - i}" for i in range(WINDOW)] + ["month_sin", "trend"]
    return pd.DataFrame(np.column_stack([past, covariates]), columns=names)


def _fit(params, X, y, **extra):
    return FineTunedPriceRegressor(**{**CHEAP, **params, **extra}).fit(X, y)


@pytest.fixture(
    scope="module",
    params=[
        (name, exog, ndim)
        for name in CONFIGS
        for exog in (False, True)
        for ndim in (1, 2)
    ],
    ids=[
        f"{name}{'-X' if exog else ''}-y{ndim}d"
        for name in CONFIGS
        for exog in (False, True)
        for ndim in (1, 2)
    ],
)
def fitted(request):
    """A fitted regressor and rows to predict. Without covariates X is an
    array; with them, a DataFrame with string column names (so the regressor
    has feature_names_in_) whose first WINDOW columns are past values.
    Tests must not change the regressor."""
    name, exog, ndim = request.param
    past, covariates, targets = _data()
    X = _frame(past, covariates) if exog else past
    y = targets if ndim == 2 else targets[:, 0]
    extra = {"context_length": WINDOW} if exog else {}
    regressor = _fit(CONFIGS[name], X[:N_TRAIN], y[:N_TRAIN], **extra)
    return SimpleNamespace(regressor=regressor, X=X[N_TRAIN:], y=y[N_TRAIN:])


def assert_same_predictions(a, b, X):
    """predict and predict_quantiles bitwise equal."""
    np.testing.assert_array_equal(a.predict(X), b.predict(X), strict=True)
    np.testing.assert_array_equal(
        a.predict_quantiles(X, quantiles=LEVELS),
        b.predict_quantiles(X, quantiles=LEVELS),
        strict=True,
    )


def assert_same_fitted_state(a, b):
    assert type(a) is type(b)
    check_is_fitted(b)
    assert a.get_params() == b.get_params()
    assert set(vars(a)) == set(vars(b))
    assert b.n_features_in_ == a.n_features_in_
    assert hasattr(b, "feature_names_in_") == hasattr(a, "feature_names_in_")
    if hasattr(a, "feature_names_in_"):
        np.testing.assert_array_equal(a.feature_names_in_, b.feature_names_in_)
        assert b.feature_names_in_.dtype == a.feature_names_in_.dtype
    for name in (
        "context_length_",
        "patch_length_",
        "horizon_",
        "quantiles_",
        "n_parameters_",
        "n_trainable_parameters_",
        "device_",
        "_y_ndim",
        "_seed",
        "_n_updates",
    ):
        assert getattr(a, name) == getattr(b, name), name
    assert (a._covariate_scaling is None) == (b._covariate_scaling is None)
    if a.n_features_in_ > a.context_length_:
        for name in ("loc", "scale"):
            np.testing.assert_array_equal(
                getattr(a._covariate_scaling, name), getattr(b._covariate_scaling, name)
            )
    pd.testing.assert_frame_equal(a.training_history_, b.training_history_)
    state_a, state_b = a.model_.state_dict(), b.model_.state_dict()
    assert list(state_a) == list(state_b)
    for name, tensor in state_a.items():
        assert torch.equal(tensor, state_b[name]), name


# ------------------------------------------------------------ pickle/joblib
def _pickle(regressor):
    return pickle.loads(pickle.dumps(regressor))


def _joblib(regressor):
    buffer = io.BytesIO()
    joblib.dump(regressor, buffer)
    buffer.seek(0)
    return joblib.load(buffer)


@pytest.mark.parametrize("round_trip", [_pickle, _joblib], ids=["pickle", "joblib"])
def test_pickle_and_joblib_round_trip(fitted, round_trip):
    original = fitted.regressor
    restored = round_trip(original)
    assert restored.model_ is not original.model_
    assert_same_predictions(original, restored, fitted.X)
    assert_same_fitted_state(original, restored)


# -------------------------------------------------------------- safe format
def test_safe_format_round_trip(fitted, tmp_path):
    original = fitted.regressor
    directory = original.save(tmp_path / "model")
    assert directory == tmp_path / "model"
    assert sorted(os.listdir(directory)) == [WEIGHTS_FILE, METADATA_FILE]
    restored = FineTunedPriceRegressor.load(directory)
    assert_same_predictions(original, restored, fitted.X)
    assert_same_fitted_state(original, restored)
    assert np.isfinite(restored.score(fitted.X, fitted.y))


def test_safe_format_document(fitted, tmp_path):
    regressor = fitted.regressor
    assert persistence.save(regressor, tmp_path) == tmp_path
    document = json.loads((tmp_path / METADATA_FILE).read_text())
    assert document["estimator"] == "pricetune.FineTunedPriceRegressor"
    assert document["pricetune_version"] == pricetune.__version__
    assert document["params"] == regressor.get_params()
    for kind in ("backbone", "head", "strategy"):
        assert document["components"][kind]["name"] == getattr(regressor, kind)
        assert document["components"][kind]["distribution"] == "pricetune"
    assert document["model"]["horizon"] == regressor.horizon_
    fitted_state = document["fitted"]
    assert fitted_state["n_features_in"] == regressor.n_features_in_
    assert fitted_state["context_length"] == WINDOW
    assert fitted_state["y_ndim"] == fitted.y.ndim
    names = getattr(regressor, "feature_names_in_", None)
    if names is None:
        assert fitted_state["feature_names_in"] is None
        assert fitted_state["covariates"] is None
    else:
        assert fitted_state["feature_names_in"] == list(names)
        assert fitted_state["covariates"]["loc"] == (
            regressor._covariate_scaling.loc.tolist()
        )
    from safetensors import safe_open

    with safe_open(tmp_path / WEIGHTS_FILE, framework="pt") as weights:
        names = set(weights.keys())
    base = {
        name for part in document["base"]["parts"].values() for name in part["tensors"]
    }
    assert not names & base
    assert names | base == set(regressor.model_.state_dict())
    assert bool(base) == (regressor.strategy == "lora")

    restored = persistence.load(tmp_path)
    assert type(restored) is FineTunedPriceRegressor
    assert_same_predictions(regressor, restored, fitted.X)


def test_load_never_unpickles(monkeypatch, tmp_path):
    past, covariates, targets = _data()
    X = _frame(past, covariates)
    regressor = _fit(CONFIGS["lstm"], X[:60], targets[:60], context_length=WINDOW)
    regressor.save(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("the safe format must not unpickle")

    import _pickle

    for module in (pickle, _pickle):
        for name in ("load", "loads", "Unpickler"):
            monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    restored = FineTunedPriceRegressor.load(tmp_path)
    monkeypatch.undo()
    assert_same_predictions(regressor, restored, X[60:])


def test_single_past_column_and_clipped_patch(tmp_path):
    """One past value plus a covariate: the model reads a flat window of two
    and patches of one; both round trips keep that."""
    past, covariates, targets = _data()
    X = np.column_stack([past[:, -1:], covariates[:, :1]])
    regressor = _fit(CONFIGS["none"], X[:80], targets[:80, 0], context_length=1)
    assert (regressor.context_length_, regressor.patch_length_) == (1, 1)
    regressor.save(tmp_path)
    for restored in (FineTunedPriceRegressor.load(tmp_path), _pickle(regressor)):
        assert (restored.context_length_, restored.patch_length_) == (1, 1)
        assert_same_fitted_state(regressor, restored)
        assert_same_predictions(regressor, restored, X[80:])


def test_column_names_checks_survive(tmp_path):
    """Fitted on a DataFrame, the loaded regressor checks column names as
    the original does; fitted on one with non-string names, it has no
    feature_names_in_, like the original."""
    past, covariates, targets = _data()
    X = _frame(past, covariates)
    regressor = _fit(CONFIGS["none"], X[:80], targets[:80], context_length=WINDOW)
    regressor.save(tmp_path / "named")
    restored = FineTunedPriceRegressor.load(tmp_path / "named")
    renamed = X[80:].rename(columns={"trend": "other"})
    for model in (regressor, restored):
        with pytest.raises(ValueError, match="feature names"):
            model.predict(renamed)
        with pytest.warns(UserWarning, match="does not have valid feature names"):
            model.predict(X[80:].to_numpy())

    numbered = pd.DataFrame(past)
    plain = _fit(CONFIGS["none"], numbered[:80], targets[:80, 0])
    assert not hasattr(plain, "feature_names_in_")
    plain.save(tmp_path / "numbered")
    restored = FineTunedPriceRegressor.load(tmp_path / "numbered")
    assert_same_fitted_state(plain, restored)
    assert_same_predictions(plain, restored, numbered[80:])


def test_loaded_regressor_is_an_ordinary_estimator(tmp_path):
    """clone gives an unfitted copy with the saved parameters; fitting the
    loaded regressor again trains a new model, as fit would."""
    past, _, targets = _data()
    y = targets[:, 0]
    regressor = _fit(CONFIGS["none"], past[:80], y[:80])
    regressor.save(tmp_path)
    restored = FineTunedPriceRegressor.load(tmp_path)
    fresh = clone(restored)
    assert fresh.get_params() == regressor.get_params()
    with pytest.raises(NotFittedError):
        fresh.predict(past[80:])
    restored.fit(past[:80], y[:80])
    refitted = _fit(CONFIGS["none"], past[:80], y[:80])
    np.testing.assert_array_equal(restored.predict(past), refitted.predict(past))


def test_device_override(tmp_path, monkeypatch):
    # as if saved on a GPU machine with device="cuda", loaded on one without
    past, _, targets = _data()
    regressor = _fit(CONFIGS["none"], past[:60], targets[:60, 0])
    regressor.save(tmp_path)
    _edit(tmp_path, lambda document: document["params"].update(device="cuda"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PersistenceError, match="device='cuda'.*pass device='cpu'"):
        FineTunedPriceRegressor.load(tmp_path)
    restored = FineTunedPriceRegressor.load(tmp_path, device="cpu")
    assert restored.device == "cpu"
    assert restored.device_ == torch.device("cpu")
    assert_same_predictions(regressor, restored, past[60:])


# -------------------------------------------------------------- plugins
class SmallBackbone(Backbone):
    """A plugin backbone: one linear map of each patch."""

    def __init__(self, *, patch_length: int, n_patches: int, hidden_size: int = 8):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Linear(patch_length, hidden_size)

    def forward(self, patches):
        return torch.tanh(self.embedding(patches))


def _register_backbones(registry):
    registry.add("regressor-persistence-small", SmallBackbone)


SMALL_PLUGIN = SimpleNamespace(
    register_backbones=pricetune.hookimpl(_register_backbones)
)


def test_missing_plugin_names_the_component_and_its_distribution(
    clean_plugins, tmp_path
):
    past, _, targets = _data()
    assert plugins.register_plugin(SMALL_PLUGIN, name="regressor-persistence-test")
    params = dict(backbone="regressor-persistence-small", head="linear")
    regressor = _fit({**params, "strategy": "full"}, past[:60], targets[:60, 0])
    regressor.save(tmp_path)
    document = json.loads((tmp_path / METADATA_FILE).read_text())
    assert document["components"]["backbone"]["distribution"] == "(in-process)"
    plugins.reload_plugins()  # the in-process plugin is gone
    with pytest.raises(
        MissingComponentError,
        match=r"backbone 'regressor-persistence-small' was registered in-process "
        r"\(plugin 'regressor-persistence-test'\).*register_plugin",
    ):
        FineTunedPriceRegressor.load(tmp_path)

    # as if it came from an installed distribution
    _edit(
        tmp_path,
        lambda d: d["components"]["backbone"].update(
            distribution="pricetune-example", version="0.1.0", plugin="example"
        ),
    )
    with pytest.raises(
        MissingComponentError,
        match=r"backbone 'regressor-persistence-small' was provided by "
        r"pricetune-example 0\.1\.0, which is not installed here: pip install "
        r"pricetune-example",
    ):
        persistence.load(tmp_path)

    plugins.register_plugin(SMALL_PLUGIN, name="regressor-persistence-test")
    with pytest.warns(PersistenceWarning, match="pricetune-example 0.1.0"):
        restored = FineTunedPriceRegressor.load(tmp_path)
    np.testing.assert_array_equal(regressor.predict(past), restored.predict(past))


# ------------------------------------------------------------------- errors
def _edit(directory, change):
    path = directory / METADATA_FILE
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small saved regressor with covariates; tests copy the directory
    before damaging it."""
    directory = tmp_path_factory.mktemp("saved")
    past, covariates, targets = _data()
    X = _frame(past, covariates)
    _fit(CONFIGS["none"], X[:60], targets[:60], context_length=WINDOW).save(directory)
    return directory


@pytest.fixture
def damaged(saved, tmp_path):
    directory = tmp_path / "copy"
    shutil.copytree(saved, directory)
    return directory


def test_save_unfitted_fails(tmp_path):
    with pytest.raises(NotFittedError, match="not fitted yet.*call fit first"):
        FineTunedPriceRegressor(**CHEAP).save(tmp_path)
    assert not any(tmp_path.iterdir())


def test_save_rejects_parameters_json_cannot_hold(tmp_path):
    past, _, targets = _data()
    regressor = FineTunedPriceRegressor(
        **{**CHEAP, **CONFIGS["none"], "random_state": np.random.RandomState(0)}
    ).fit(past[:60], targets[:60, 0])
    with pytest.raises(TypeError, match=r"random_state=RandomState.*joblib"):
        regressor.save(tmp_path)
    assert not (tmp_path / METADATA_FILE).exists()
    # pickle keeps it
    assert_same_predictions(regressor, _pickle(regressor), past[60:])


def test_load_refuses_the_other_estimator(saved, tmp_path, brent_monthly):
    with pytest.raises(
        PersistenceError,
        match="holds a pricetune.FineTunedPriceRegressor, not a "
        "pricetune.FineTunedPriceForecaster",
    ):
        FineTunedPriceForecaster.load(saved)
    FineTunedPriceForecaster(
        backbone="none",
        head="linear",
        strategy="full",
        context_length=16,
        **{**CHEAP, "max_epochs": 1},
    ).fit(brent_monthly.iloc[-40:], fh=[1]).save(
        tmp_path, serialization_format="safetensors"
    )
    with pytest.raises(
        PersistenceError, match="not a pricetune.FineTunedPriceRegressor"
    ):
        FineTunedPriceRegressor.load(tmp_path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["fitted"].pop("n_features_in"), "corrupt: a missing"),
        (lambda d: d["fitted"].update(context_length=3), "differ from"),
        (lambda d: d["fitted"].update(patch_length=3), "differ from"),
        (lambda d: d["fitted"].update(covariates=None), "covariate scaling"),
        (lambda d: d["fitted"]["covariates"]["loc"].pop(), "covariate scaling"),
        (lambda d: d["fitted"].update(y_ndim=3), "y_ndim=3"),
        (lambda d: d["model"].update(n_covariate_features=0), "do not fit"),
    ],
    ids=[
        "no-n-features",
        "context-length",
        "patch-length",
        "no-scaling",
        "short-scaling",
        "y-ndim",
        "weights",
    ],
)
def test_load_malformed_fitted_state(damaged, change, message):
    _edit(damaged, change)
    with pytest.raises(PersistenceError, match=message):
        FineTunedPriceRegressor.load(damaged)


def test_fit_after_a_failed_load_trains(damaged):
    """A failed load leaves no restore hook behind: fit trains as usual."""
    _edit(damaged, lambda d: d["fitted"].update(y_ndim=3))
    with pytest.raises(PersistenceError):
        FineTunedPriceRegressor.load(damaged)
    past, _, targets = _data()
    regressor = _fit(CONFIGS["none"], past[:60], targets[:60, 0])
    assert len(regressor.training_history_) == CHEAP["max_epochs"]


# ------------------------------------------------- pickling from a GPU model
def test_pickling_a_model_from_another_device(monkeypatch):
    """A model on a GPU is pickled from a CPU copy; where the GPU is missing
    it unpickles onto the CPU, with a warning. Simulated here: device_ says
    CUDA, and torch says CUDA is not available."""
    past, _, targets = _data()
    regressor = _fit(CONFIGS["lstm"], past[:60], targets[:60])
    assert regressor.__getstate__()["model_"] is regressor.model_  # no copy
    on_gpu = copy.deepcopy(regressor)
    on_gpu.device_ = torch.device("cuda", 0)
    parameters = list(on_gpu.model_.parameters())
    state = on_gpu.__getstate__()
    assert state["model_"] is not on_gpu.model_
    assert all(p.device.type == "cpu" for p in state["model_"].parameters())
    data = pickle.dumps(on_gpu)
    assert list(on_gpu.model_.parameters()) == parameters  # left as it was
    assert on_gpu.device_ == torch.device("cuda", 0)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(PersistenceWarning, match="fitted on cuda:0, which is not"):
        restored = pickle.loads(data)
    assert restored.device_ == torch.device("cpu")
    assert restored._autocast_dtype is None
    check_is_fitted(restored)
    assert_same_predictions(regressor, restored, past[60:])


# ---------------------------------------------------------------- on a GPU
GPU_CHECK = """
import pickle, sys, warnings
import numpy as np
from pricetune import FineTunedPriceRegressor
from pricetune.persistence import PersistenceWarning
X = np.load(sys.argv[3])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    with open(sys.argv[1], "rb") as file:
        restored = pickle.load(file)
assert any(issubclass(w.category, PersistenceWarning) for w in caught)
assert restored.device_.type == "cpu"
loaded = FineTunedPriceRegressor.load(sys.argv[2], device="cpu")
assert loaded.device_.type == "cpu"
np.save(sys.argv[4], np.stack([restored.predict(X), loaded.predict(X)]))
"""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_model_fitted_on_a_gpu_loads_without_one(tmp_path):
    past, covariates, targets = _data()
    X = np.column_stack([past, covariates])
    regressor = _fit(
        CONFIGS["lstm"], X[:80], targets[:80], context_length=WINDOW, device="cuda"
    )
    assert regressor.device_.type == "cuda"
    # on this machine, pickle brings it back onto the GPU, bitwise equal
    same = pickle.loads(pickle.dumps(regressor))
    assert next(same.model_.parameters()).device.type == "cuda"
    np.testing.assert_array_equal(same.predict(X), regressor.predict(X))
    # on a machine without a GPU: pickle and the safe format load on the CPU
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(regressor))
    regressor.save(tmp_path / "safe")
    np.save(tmp_path / "X.npy", X)
    out = tmp_path / "out.npy"
    subprocess.run(
        [
            sys.executable,
            "-c",
            GPU_CHECK,
            tmp_path / "model.pkl",
            tmp_path / "safe",
            tmp_path / "X.npy",
            out,
        ],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        check=True,
        timeout=300,
    )
    expected = regressor.predict(X)
    for predicted in np.load(out):
        np.testing.assert_allclose(predicted, expected, rtol=1e-3)
    # the safe format loads onto the GPU here, bitwise equal
    loaded = FineTunedPriceRegressor.load(tmp_path / "safe")
    assert loaded.device_.type == "cuda"
    assert next(loaded.model_.parameters()).device.type == "cuda"
    np.testing.assert_array_equal(loaded.predict(X), expected)
