"""MLflow (pricetune.callbacks.MLflowLogger, pricetune.mlflow): what the
logger writes, read back from a SQLite store in tmp_path; the pyfunc model
logged, loaded and predicting what the forecaster predicts; and the
one-line error when mlflow is not installed."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

mlflow = pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402

import pricetune.mlflow as pricetune_mlflow  # noqa: E402
from pricetune import FineTunedPriceForecaster  # noqa: E402
from pricetune.callbacks import Callback, MLflowLogger  # noqa: E402
from pricetune.datasets import load_brent  # noqa: E402

# one network (the default mixes three: test_ensembles.py)
TINY = dict(
    n_ensemble=1,
    backbone="none",
    head="quantile",
    strategy="full",
    context_length=24,
    max_epochs=2,
    random_state=0,
    verbose=0,
)
FH = [1, 2, 3]
EPOCH_METRICS = ("train_loss", "validation_loss", "learning_rate", "seconds")


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    """One SQLite tracking database for the module (creating its tables
    takes seconds); each test gets its own experiment in it."""
    return f"sqlite:///{tmp_path_factory.mktemp('tracking') / 'mlflow.db'}"


@pytest.fixture
def store(database, tmp_path, monkeypatch, request):
    """A SQLite tracking store (the file store is refused by MLflow 3) and
    an experiment of this test's own, its artifacts in tmp_path; telemetry
    off; MLflow's global tracking URI and experiment restored afterwards."""
    from mlflow.tracking import fluent

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.chdir(tmp_path)  # nothing lands in the repository's ./mlruns
    monkeypatch.setenv("MLFLOW_TRACKING_URI", database)  # undone after the test
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.setattr(fluent, "_active_experiment_id", None)
    mlflow.set_tracking_uri(database)
    name = request.node.name
    MlflowClient(database).create_experiment(
        name, artifact_location=(tmp_path / "artifacts").as_uri()
    )
    mlflow.set_experiment(name)
    yield database
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


def _metric_history(client, run_id, key):
    history = client.get_metric_history(run_id, key)
    return [m.step for m in history], [m.value for m in history]


def test_the_logger_logs_params_and_one_metric_per_epoch(store):
    logger = MLflowLogger(
        tracking_uri=store, experiment_name="brent runs", run_name="tiny"
    )
    forecaster = FineTunedPriceForecaster(**TINY, callbacks=[logger])
    forecaster.fit(load_brent("monthly"), fh=FH)

    assert mlflow.active_run() is None  # the run it started is not left active
    client = MlflowClient(store)
    run = client.get_run(logger.run_id_)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "tiny"
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "brent runs"
    params = run.data.params
    assert params["context_length"] == "24"
    assert params["max_epochs"] == "2"
    assert params["head"] == "quantile"
    assert params["random_state"] == "0"
    assert params["backbone_kwargs"] == "{}"
    assert "callbacks" not in params
    assert run.data.tags["pricetune.update"] == "0"
    assert "pricetune.member" not in run.data.tags
    history = forecaster.training_history_
    assert len(history) == 2
    for key in EPOCH_METRICS:
        steps, values = _metric_history(client, logger.run_id_, key)
        assert steps == history["epoch"].tolist()
        np.testing.assert_allclose(values, history[key].to_numpy(), rtol=1e-12)
    # the fitted forecaster, logged into the run once fit had finished
    served = mlflow.pyfunc.load_model(f"runs:/{logger.run_id_}/model")
    out = served.predict(pd.DataFrame())
    assert out["brent"].tolist() == forecaster.predict().tolist()
    assert MLflowLogger(log_model=False).log_model is False


def test_in_an_active_run_it_logs_there_and_the_model_goes_with_it(store):
    logger = MLflowLogger()
    forecaster = FineTunedPriceForecaster(**TINY, callbacks=[logger])
    y = load_brent("monthly")
    with mlflow.start_run() as active:
        mlflow.log_param("max_epochs", "2")  # a param already there is kept
        forecaster.fit(y, fh=FH)
        assert logger.run_id_ == active.info.run_id
        assert mlflow.active_run().info.run_id == active.info.run_id
        info = pricetune_mlflow.log_model(forecaster, "brent-model")
    client = MlflowClient(store)
    run = client.get_run(active.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["context_length"] == "24"
    _, losses = _metric_history(client, run.info.run_id, "train_loss")
    np.testing.assert_allclose(losses, forecaster.training_history_["train_loss"])
    assert info.run_id == active.info.run_id

    # the artifact: the MLmodel, the model's code, the safe-format save
    local = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    assert (local / "MLmodel").is_file()
    assert (local / "artifacts" / "forecaster" / "pricetune.json").is_file()
    assert (local / "artifacts" / "forecaster" / "model.safetensors").is_file()
    assert not list(local.rglob("*.pkl"))  # nothing to unpickle
    assert "pricetune==" in (local / "requirements.txt").read_text()

    pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    expected = forecaster.predict()
    out = pyfunc.predict(pd.DataFrame())
    assert out.columns.tolist() == ["date", "fh", "brent"]
    assert out["fh"].tolist() == FH
    assert out["date"].tolist() == expected.index.astype(str).tolist()
    np.testing.assert_array_equal(out["brent"].to_numpy(), expected.to_numpy())

    some = pyfunc.predict(
        pd.DataFrame({"fh": [3, 1]}), params={"quantiles": [0.1, 0.9]}
    )
    bands = forecaster.predict_quantiles(alpha=[0.1, 0.9])
    assert some["fh"].tolist() == [1, 3]
    np.testing.assert_array_equal(some["brent"], expected.to_numpy()[[0, 2]])
    np.testing.assert_array_equal(
        some["brent_q0.1"], bands[("brent", 0.1)].to_numpy()[[0, 2]]
    )
    np.testing.assert_array_equal(
        some["brent_q0.9"], bands[("brent", 0.9)].to_numpy()[[0, 2]]
    )
    with pytest.raises(ValueError, match=r"fitted for fh=\[1, 2, 3\]"):
        pyfunc.predict(pd.DataFrame({"fh": [4]}))

    loaded = pricetune_mlflow.load_model(info.model_uri)
    assert isinstance(loaded, FineTunedPriceForecaster)
    assert loaded.predict().equals(expected)
    assert loaded.callbacks is None


def test_log_model_to_the_loggers_own_run(store):
    logger = MLflowLogger()
    forecaster = FineTunedPriceForecaster(**TINY, callbacks=[logger])
    forecaster.fit(load_brent("monthly"), fh=FH)
    info = pricetune_mlflow.log_model(forecaster, run_id=logger.run_id_)
    assert info.run_id == logger.run_id_
    assert mlflow.active_run() is None
    assert MlflowClient(store).get_run(logger.run_id_).info.status == "FINISHED"
    with mlflow.start_run(), pytest.raises(ValueError, match="not the active"):
        pricetune_mlflow.log_model(forecaster, run_id=logger.run_id_)


def test_nested_logs_into_a_child_run(store):
    logger = MLflowLogger(nested=True, run_name="child")
    forecaster = FineTunedPriceForecaster(**TINY, callbacks=[logger])
    with mlflow.start_run() as parent:
        forecaster.fit(load_brent("monthly"), fh=FH)
    client = MlflowClient(store)
    child = client.get_run(logger.run_id_)
    assert child.info.run_id != parent.info.run_id
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.info.status == "FINISHED"
    assert child.info.run_name == "child"
    assert len(client.get_metric_history(child.info.run_id, "train_loss")) == 2
    assert client.get_run(parent.info.run_id).data.metrics == {}


def test_ensemble_members_and_updates_get_their_own_keys(store):
    logger = MLflowLogger()
    two = {**TINY, "n_ensemble": 2}
    forecaster = FineTunedPriceForecaster(**two, callbacks=[logger])
    y = load_brent("monthly")
    with mlflow.start_run() as active:
        forecaster.fit(y.iloc[:-3], fh=FH)
        forecaster.update(y.iloc[-3:])
    client = MlflowClient(store)
    keys = set(client.get_run(active.info.run_id).data.metrics)
    assert keys == {
        f"{prefix}member-{member}/{name}"
        for prefix in ("", "update-1/")
        for member in (0, 1)
        for name in EPOCH_METRICS
    }
    history = forecaster.training_history_
    for prefix, update in (("", 0), ("update-1/", 1)):
        for member in (0, 1):
            rows = history[(history["member"] == member)]
            rows = rows[rows["update"].fillna(0) == update]
            key = f"{prefix}member-{member}/train_loss"
            steps, values = _metric_history(client, active.info.run_id, key)
            assert steps == rows["epoch"].tolist()
            np.testing.assert_allclose(values, rows["train_loss"], rtol=1e-12)


class _Boom(Callback):
    def on_epoch_end(self, run, metrics):
        raise RuntimeError("boom")


def test_a_fit_that_fails_leaves_its_run_failed_at_the_next_fit(store):
    logger = MLflowLogger()
    forecaster = FineTunedPriceForecaster(**TINY, callbacks=[logger, _Boom()])
    with pytest.raises(RuntimeError, match="boom"):
        forecaster.fit(load_brent("monthly"), fh=FH)
    failed = logger.run_id_
    client = MlflowClient(store)
    assert client.get_run(failed).info.status == "RUNNING"
    assert mlflow.active_run() is None
    forecaster.set_params(callbacks=[logger]).fit(load_brent("monthly"), fh=FH)
    assert client.get_run(failed).info.status == "FAILED"
    assert client.get_run(logger.run_id_).info.status == "FINISHED"


def test_the_logger_is_cloned_and_pickled_with_the_estimator(store):
    logger = MLflowLogger(tracking_uri=store, experiment_name="cloned", tags={"a": 1})
    forecaster = FineTunedPriceForecaster(**TINY, callbacks=[logger])
    copy = clone(forecaster).get_params()["callbacks"][0]
    assert copy is not logger and isinstance(copy, MLflowLogger)
    assert (copy.tracking_uri, copy.experiment_name, copy.tags) == (
        store,
        "cloned",
        {"a": 1},
    )
    forecaster.fit(load_brent("monthly"), fh=FH)
    restored = pickle.loads(pickle.dumps(forecaster))
    assert restored.callbacks[0].run_id_ == logger.run_id_
    assert restored.predict().equals(forecaster.predict())
    run = MlflowClient(store).get_run(logger.run_id_)
    assert run.data.tags["a"] == "1"


def test_save_model_and_load_model_from_a_directory(store, tmp_path):
    forecaster = FineTunedPriceForecaster(**TINY).fit(load_brent("monthly"), fh=FH)
    path = pricetune_mlflow.save_model(forecaster, tmp_path / "model")
    assert path == tmp_path / "model"
    assert (path / "artifacts" / "forecaster" / "pricetune.json").is_file()
    assert pricetune_mlflow.load_model(str(path)).predict().equals(forecaster.predict())
    out = mlflow.pyfunc.load_model(str(path)).predict(pd.DataFrame({"fh": [2]}))
    assert out["fh"].tolist() == [2]
    assert out["brent"].tolist() == [forecaster.predict().iloc[1]]
    with pytest.raises(TypeError, match="FineTunedPriceForecaster"):
        pricetune_mlflow.save_model(object(), tmp_path / "other")


def test_only_forecasters_that_need_no_future_X_are_served(store, tmp_path):
    from pricetune.datasets import load_wti

    brent, wti = load_brent("monthly"), load_wti("monthly")
    both = brent.index.intersection(wti.index)
    X = pd.DataFrame({"wti": wti.loc[both], "month": both.month.astype(float)})
    known = FineTunedPriceForecaster(**TINY).fit(brent.loc[both], X=X, fh=FH)
    with pytest.raises(ValueError, match=r"needs future X \(\['wti', 'month'\]\)"):
        pricetune_mlflow.save_model(known, tmp_path / "known")
    assert not (tmp_path / "known").exists()
    past = FineTunedPriceForecaster(**TINY, past_covariates=["wti", "month"])
    past.fit(brent.loc[both], X=X, fh=FH)
    path = pricetune_mlflow.save_model(past, tmp_path / "past")
    served = mlflow.pyfunc.load_model(str(path)).predict(pd.DataFrame())
    assert served["brent"].tolist() == past.predict().tolist()


def test_without_mlflow_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    logger = MLflowLogger(experiment_name="e")  # creating one needs no mlflow
    hint = r"needs mlflow, which is not installed: pip install 'pricetune\[mlflow\]'"
    with pytest.raises(ImportError, match=hint) as caught:
        FineTunedPriceForecaster(**TINY, callbacks=[logger]).fit(
            load_brent("monthly"), fh=FH
        )
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("MLflowLogger needs mlflow")
    for function, arguments in (
        (pricetune_mlflow.save_model, (object(), tmp_path / "m")),
        (pricetune_mlflow.log_model, (object(),)),
        (pricetune_mlflow.load_model, ("models:/m-1",)),
    ):
        with pytest.raises(ImportError, match=hint):
            function(*arguments)


def test_importing_pricetune_and_its_callbacks_loads_no_mlflow():
    code = (
        "import sys\n"
        "import pricetune, pricetune.callbacks, pricetune.mlflow\n"
        "assert 'mlflow' not in sys.modules and 'torch' not in sys.modules\n"
        "sys.modules['mlflow'] = None\n"
        "from pricetune.callbacks import Callback, MLflowLogger\n"
        "assert issubclass(MLflowLogger, Callback)\n"
        "MLflowLogger()\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
