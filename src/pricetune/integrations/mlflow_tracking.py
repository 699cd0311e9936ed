"""MLflowLogger: a training callback that logs a fit to MLflow.

It logs through an :class:`mlflow.tracking.MlflowClient` and run ids rather
than the fluent API's global active run, so that a run it starts is never
left as the process's active run (a fit that fails leaves it ``RUNNING``;
the next fit with the same logger marks it ``FAILED``), and so that the
callback holds nothing but strings and numbers between runs (it is
pickled and cloned with the estimator).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import time

from pricetune.integrations.optional import require_mlflow
from pricetune.training.callbacks import Callback, TrainingRun

#: the numbers of an epoch's record that become MLflow metrics
METRICS = ("train_loss", "validation_loss", "learning_rate", "seconds")
#: MLflow accepts at most this many params in one ``log_batch``
_PARAMS_PER_BATCH = 100
#: the tag MLflow reads a nested run's parent from
_PARENT_TAG = "mlflow.parentRunId"


class MLflowLogger(Callback):
    """Log a fit's parameters and per-epoch metrics to MLflow.

    Pass it in ``callbacks=`` of any pricetune estimator. At the start of
    each training run (the fit, each ensemble member, each ``update``) it
    logs the fit's settings (its :class:`~pricetune.training.TrainingConfig`:
    the estimator's parameters, JSON values only, lists and dicts as JSON
    text) as MLflow params, then after every epoch ``train_loss``,
    ``validation_loss`` (when validation windows are held out),
    ``learning_rate`` and ``seconds``, at ``step`` = the epoch.

    Where it logs: if an MLflow run is active (``with mlflow.start_run():``
    around ``fit``), into that run (``nested=True``: into a child run of it,
    ended after training); ``tracking_uri``, ``experiment_name`` are then
    not used. Otherwise it starts a run in ``experiment_name`` (created if
    needed; by default the experiment ``mlflow.set_experiment`` or
    ``MLFLOW_EXPERIMENT_NAME`` chose, else ``Default``) at ``tracking_uri``
    (default: MLflow's own, ``MLFLOW_TRACKING_URI``) and ends it after
    training, one run per training run.

    In a data-parallel fit only the process of rank 0 logs.

    Ensemble members and updates: metric keys get a prefix, ``member-0/``
    for member 0 of an ensemble and ``update-1/`` for the first ``update``
    (``update-1/member-0/train_loss``), as in the checkpoint folders, so
    that they stay apart in one run; a run the logger starts is also tagged
    ``pricetune.member`` and ``pricetune.update``. Params are logged once
    per MLflow run: a key the run already has is left as it is.

    The fitted model: with ``log_model=True`` (the default), once a
    :class:`~pricetune.FineTunedPriceForecaster`'s ``fit`` (or a training
    ``update``) has finished, the logger saves it as an MLflow pyfunc model
    (:func:`pricetune.mlflow.save_model`) into the artifacts ``model/`` of
    the run it logged to last, where ``mlflow.pyfunc.load_model(
    f"runs:/{logger.run_id_}/model")`` loads it (an update replaces it). A
    forecaster that needs future ``X`` (known-future
    covariates) cannot be served by the pyfunc and is not logged; nor are
    the regressor and classifier. :func:`pricetune.mlflow.log_model` logs
    one yourself, with ``run_id=logger.run_id_``.

    Parameters
    ----------
    tracking_uri : str, optional
        where to log a run the logger starts (e.g. ``"sqlite:///mlflow.db"``
        or ``"http://host:5000"``); default MLflow's tracking URI.
    experiment_name : str, optional
        the experiment of a run the logger starts.
    run_name : str, optional
        the name of a run the logger starts (an ensemble member's or an
        update's is followed by a space and ``member-0`` / ``update-1``).
    tags : dict, optional
        tags set on a run the logger starts (or on the active run).
    log_params : bool, default True
        whether to log the fit's settings as params.
    nested : bool, default False
        with an active run, log into a child run of it rather than into it.
    log_model : bool, default True
        log the fitted forecaster as a pyfunc model after each ``fit`` (see
        above).

    Attributes
    ----------
    run_id_ : str
        the MLflow run the latest training run logged to (set at its start).

    Notes
    -----
    Needs mlflow (``pip install 'pricetune[mlflow]'``, which installs
    ``mlflow-skinny``); it is imported when training starts, so the logger
    can be created, cloned and pickled without it.
    """

    # its run (or trial) lives in this process: n_processes workers refuse it
    stays_in_process = True

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment_name: str | None = None,
        run_name: str | None = None,
        tags: dict | None = None,
        log_params: bool = True,
        nested: bool = False,
        log_model: bool = True,
    ):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.tags = tags
        self.log_params = log_params
        self.nested = nested
        self.log_model = log_model

    # ----------------------------------------------------------- the hooks
    def on_train_begin(self, run: TrainingRun) -> None:
        if _not_rank_0(run):
            return
        mlflow = require_mlflow("MLflowLogger")
        self._fail_unfinished()
        self._prefix = metric_prefix(run.member, run.update)
        active = mlflow.active_run()
        labels = {"pricetune.update": str(run.update)}
        if run.member is not None:
            labels["pricetune.member"] = str(run.member)
        tags = {str(k): str(v) for k, v in (self.tags or {}).items()}
        if active is not None:
            self._uri = mlflow.get_tracking_uri()
            client = self._connect()
            if self.nested:
                tags.update(labels)
                tags[_PARENT_TAG] = active.info.run_id
                self.run_id_ = self._create_run(
                    client, active.info.experiment_id, tags, run
                )
                self._owned = True
            else:
                self.run_id_ = active.info.run_id
                self._owned = False
                for key, value in tags.items():
                    client.set_tag(self.run_id_, key, value)
        else:
            self._uri = self.tracking_uri
            client = self._connect()
            tags.update(labels)
            experiment = self._experiment_id(client)
            self.run_id_ = self._create_run(client, experiment, tags, run)
            self._owned = True
        if self.log_params:
            self._log_params(client, config_params(run.config))

    def on_epoch_end(self, run: TrainingRun, metrics: dict) -> None:
        if _not_rank_0(run):
            return
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        step = int(metrics["epoch"])
        logged = [
            Metric(self._prefix + name, float(metrics[name]), timestamp, step)
            for name in METRICS
            if name in metrics
            and metrics[name] is not None
            and not math.isnan(metrics[name])
        ]
        self._connect().log_batch(self.run_id_, metrics=logged)

    def on_train_end(self, run: TrainingRun) -> None:
        if _not_rank_0(run):
            return
        if self._owned:
            self._connect().set_terminated(self.run_id_, "FINISHED")
            self._owned = False
        self._client = None

    def on_fit_end(self, estimator) -> None:
        import tempfile
        from pathlib import Path

        from pricetune.estimators.forecaster import FineTunedPriceForecaster

        run_id = getattr(self, "run_id_", None)
        if (
            not self.log_model
            or run_id is None
            or not isinstance(estimator, FineTunedPriceForecaster)
            or getattr(estimator, "future_covariates_", None)
        ):
            return
        from mlflow.tracking import MlflowClient

        from pricetune.mlflow import save_model

        # saved as the pyfunc model, then logged as the run's artifacts
        # through a client: the fluent API would make the run the active one
        with tempfile.TemporaryDirectory(prefix="pricetune-mlflow-") as scratch:
            path = save_model(estimator, Path(scratch) / "model")
            client = MlflowClient(getattr(self, "_uri", None))
            client.log_artifacts(run_id, str(path), artifact_path="model")

    # ------------------------------------------------------------- helpers
    def _connect(self):
        """The client of this training run (made once per run)."""
        client = getattr(self, "_client", None)
        if client is None:
            from mlflow.tracking import MlflowClient

            client = self._client = MlflowClient(self._uri)
        return client

    def _fail_unfinished(self) -> None:
        """A run this logger started whose training never ended (the fit
        raised) is marked ``FAILED``."""
        if getattr(self, "_owned", False):
            self._client = None
            self._connect().set_terminated(self.run_id_, "FAILED")
        self._owned = False
        self._client = None

    def _experiment_id(self, client) -> str:
        if self.experiment_name is not None:
            experiment = client.get_experiment_by_name(self.experiment_name)
            if experiment is not None:
                return experiment.experiment_id
            return client.create_experiment(self.experiment_name)
        if self.tracking_uri is None:
            # the experiment mlflow.set_experiment or MLFLOW_EXPERIMENT_NAME /
            # _ID chose; MLflow has no public getter for it
            from mlflow.tracking.fluent import _get_experiment_id

            return _get_experiment_id()
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
        experiment = client.get_experiment_by_name(name) if name else None
        return experiment.experiment_id if experiment is not None else "0"

    def _create_run(self, client, experiment_id: str, tags: dict, run) -> str:
        name = self.run_name
        if name is not None and self._prefix:
            name = f"{name} {self._prefix.rstrip('/').replace('/', ' ')}"
        created = client.create_run(experiment_id, tags=tags, run_name=name)
        return created.info.run_id

    def _log_params(self, client, params: dict) -> None:
        from mlflow.entities import Param

        present = client.get_run(self.run_id_).data.params
        new = [Param(k, v) for k, v in params.items() if k not in present]
        for start in range(0, len(new), _PARAMS_PER_BATCH):
            batch = new[start : start + _PARAMS_PER_BATCH]
            client.log_batch(self.run_id_, params=batch)

    def __getstate__(self):
        # the client holds a connection to the store: never pickled or copied
        state = dict(self.__dict__)
        state.pop("_client", None)
        return state


def _not_rank_0(run) -> bool:
    """Whether this process is one of a data-parallel fit's others: only
    rank 0 logs, as the built-in logs do."""
    return bool(getattr(run, "rank", 0))


def metric_prefix(member: int | None, update: int) -> str:
    """The prefix of a training run's metric keys: ``""`` for a fit's single
    model, ``"member-0/"``, ``"update-1/"``, ``"update-1/member-0/"``."""
    parts = [f"update-{update}"] if update else []
    if member is not None:
        parts.append(f"member-{member}")
    return "".join(f"{part}/" for part in parts)


def config_params(config) -> dict[str, str]:
    """The settings of a :class:`~pricetune.training.TrainingConfig` as
    MLflow params: scalars as MLflow writes them (``str``), classes by their
    dotted name, lists and dicts as JSON text; ``callbacks`` and values that
    are not JSON (augmentation objects, a ``RandomState``) are left out."""
    params = {}
    for spec in dataclasses.fields(config):
        if spec.name == "callbacks":
            continue
        value = getattr(config, spec.name)
        if isinstance(value, type):
            params[spec.name] = f"{value.__module__}.{value.__qualname__}"
        elif value is None or isinstance(value, (numbers.Number, str)):
            params[spec.name] = str(value)
        else:
            try:
                params[spec.name] = json.dumps(value, sort_keys=True)
            except (TypeError, ValueError):
                continue
    return params
