"""MLflow models of fitted forecasters: save, log and load them as pyfunc.

A fitted :class:`~pricetune.FineTunedPriceForecaster` becomes an MLflow
model of the ``python_function`` flavour: :func:`log_model` logs it (to the
active run), :func:`save_model` writes it to a directory, :func:`load_model`
gives back the forecaster, and ``mlflow.pyfunc.load_model(uri)`` or
``mlflow models serve -m uri`` give a model whose ``predict`` takes and
returns DataFrames.

Inside the MLflow model the forecaster is in pricetune's safe format
(``artifacts/forecaster/``: ``model.safetensors`` and ``pricetune.json``,
see :mod:`pricetune.persistence`), and the pyfunc is built from code
(``code/``), so loading it unpickles nothing.

The pyfunc's input and output:

* **input**: a DataFrame with one optional column, ``fh``: the steps ahead
  to forecast (integers from 1 to the fitted horizon, any order, repeats
  ignored). An empty DataFrame (or an empty column) forecasts the fitted
  ``fh``. Over REST: ``{"dataframe_records": [{"fh": 1}, {"fh": 3}]}``, or
  ``{"dataframe_records": []}``.
* **params**: ``quantiles``, a list of levels (``{"quantiles": [0.1,
  0.9]}``); each adds a column of that quantile (probabilistic heads only).
* **output**: a DataFrame of one row per forecast: a panel's series
  columns, the time as text (the column takes the time index's name, e.g.
  ``date``, else ``time``), ``fh``, the point forecast (the median; the
  column takes the series' name, e.g. ``brent``, else ``forecast``), and
  ``<name>_q<level>`` per quantile level (``brent_q0.1``).

Needs mlflow: ``pip install 'pricetune[mlflow]'`` (``mlflow-skinny``, enough
to log, save and load); ``mlflow models serve`` needs the full ``mlflow``
package.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

from pricetune.integrations.optional import require, require_mlflow


def save_model(
    forecaster,
    path,
    *,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    metadata: dict | None = None,
) -> Path:
    """Save a fitted forecaster as an MLflow pyfunc model in ``path``.

    Parameters
    ----------
    forecaster : FineTunedPriceForecaster
        a fitted forecaster the safe format can store (see
        :func:`pricetune.persistence.save`); its ``callbacks`` are left out.
    path : str or Path
        the directory to write; it must not exist yet.
    pip_requirements : list of str, optional
        the model's requirements; by default pricetune and the distribution
        of each of its components, at the installed versions.
    extra_pip_requirements : list of str, optional
        requirements added to the default ones.
    metadata : dict, optional
        stored in the model's ``MLmodel`` file.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ImportError
        mlflow is not installed.
    """
    mlflow = require_mlflow("pricetune.mlflow.save_model")
    require("mlflow.pyfunc", "mlflow", "pricetune.mlflow.save_model")
    with tempfile.TemporaryDirectory() as scratch:
        arguments = _model_arguments(
            forecaster, Path(scratch), pip_requirements, extra_pip_requirements
        )
        mlflow.pyfunc.save_model(str(path), metadata=metadata, **arguments)
    return Path(path)


def log_model(
    forecaster,
    name: str = "model",
    *,
    run_id: str | None = None,
    registered_model_name: str | None = None,
    pip_requirements: list[str] | None = None,
    extra_pip_requirements: list[str] | None = None,
    metadata: dict | None = None,
):
    """Log a fitted forecaster as an MLflow pyfunc model.

    It goes to the active run (``with mlflow.start_run():``), or to the run
    ``run_id`` (such as :class:`~pricetune.callbacks.MLflowLogger`'s
    ``run_id_``, at the current tracking URI), or, with neither, to a model
    of the current experiment outside any run (as ``mlflow.pyfunc.log_model``
    does).

    Parameters
    ----------
    forecaster : FineTunedPriceForecaster
        a fitted forecaster (see :func:`save_model`).
    name : str, default "model"
        the model's name in the run.
    run_id : str, optional
        the run to log to when it is not the active one.
    registered_model_name : str, optional
        also register the model under this name.
    pip_requirements : list of str, optional
        as in :func:`save_model`.
    extra_pip_requirements : list of str, optional
        as in :func:`save_model`.
    metadata : dict, optional
        as in :func:`save_model`.

    Returns
    -------
    mlflow.models.model.ModelInfo
        its ``model_uri`` loads the model (:func:`load_model`,
        ``mlflow.pyfunc.load_model``).

    Raises
    ------
    ImportError
        mlflow is not installed.
    ValueError
        ``run_id`` is not the active run, while a run is active.
    """
    mlflow = require_mlflow("pricetune.mlflow.log_model")
    require("mlflow.pyfunc", "mlflow", "pricetune.mlflow.log_model")
    active = mlflow.active_run()
    if run_id is not None and active is not None and active.info.run_id != run_id:
        raise ValueError(
            f"run_id={run_id!r} is not the active MLflow run "
            f"({active.info.run_id}); end that run or leave run_id out"
        )
    with tempfile.TemporaryDirectory() as scratch:
        arguments = _model_arguments(
            forecaster, Path(scratch), pip_requirements, extra_pip_requirements
        )

        def log():
            return mlflow.pyfunc.log_model(
                name=name,
                registered_model_name=registered_model_name,
                metadata=metadata,
                **arguments,
            )

        if run_id is None or active is not None:
            return log()
        with mlflow.start_run(run_id=run_id):
            return log()


def load_model(model_uri: str, *, device: str | None = None):
    """The forecaster of an MLflow model that :func:`log_model` or
    :func:`save_model` wrote, as a :class:`~pricetune.FineTunedPriceForecaster`
    (``mlflow.pyfunc.load_model`` gives the pyfunc instead).

    Parameters
    ----------
    model_uri : str
        the model: ``ModelInfo.model_uri`` (``models:/m-...``),
        ``runs:/<run id>/model``, a local directory...
    device : str, optional
        overrides the saved ``device`` parameter (``"cpu"``).

    Returns
    -------
    FineTunedPriceForecaster

    Raises
    ------
    ImportError
        mlflow is not installed.
    """
    mlflow = require_mlflow("pricetune.mlflow.load_model")
    require("mlflow.artifacts", "mlflow", "pricetune.mlflow.load_model")
    from pricetune.estimators.forecaster import FineTunedPriceForecaster
    from pricetune.integrations.mlflow_pyfunc import ARTIFACT

    inside = Path("artifacts") / ARTIFACT
    if Path(model_uri).is_dir():  # a local model: read in place, not copied
        return FineTunedPriceForecaster.load(Path(model_uri) / inside, device=device)
    with tempfile.TemporaryDirectory() as scratch:
        local = mlflow.artifacts.download_artifacts(model_uri, dst_path=scratch)
        return FineTunedPriceForecaster.load(Path(local) / inside, device=device)


def _model_arguments(forecaster, scratch: Path, pip_requirements, extra) -> dict:
    """The arguments of ``mlflow.pyfunc.save_model``/``log_model``: the
    forecaster saved in the safe format under ``scratch``, the model's code
    written there, its signature and requirements."""
    import pandas as pd

    from pricetune.estimators.forecaster import FineTunedPriceForecaster
    from pricetune.integrations import mlflow_pyfunc
    from pricetune.persistence import PersistenceWarning

    if not isinstance(forecaster, FineTunedPriceForecaster):
        raise TypeError(
            "forecaster must be a fitted FineTunedPriceForecaster; got "
            f"{type(forecaster).__name__}"
        )
    future = getattr(forecaster, "future_covariates_", None)
    if future:
        raise ValueError(
            f"this forecaster needs future X ({future}) to predict, which the "
            "pyfunc model does not take; fit it with those columns in "
            "past_covariates or static_covariates, or without them"
        )
    with warnings.catch_warnings():
        # callbacks (an MLflowLogger among them) are training-time code
        warnings.filterwarnings(
            "ignore", "the safe format does not store callbacks", PersistenceWarning
        )
        saved = forecaster.save(
            scratch / mlflow_pyfunc.ARTIFACT, serialization_format="safetensors"
        )
    code = scratch / "pricetune_forecaster.py"
    code.write_text(mlflow_pyfunc.MODEL_CODE)
    if pip_requirements is None:
        pip_requirements = _requirements(saved) + list(extra or [])
        extra = None
    return {
        "python_model": str(code),
        "artifacts": {mlflow_pyfunc.ARTIFACT: str(saved)},
        "signature": mlflow_pyfunc.signature(),
        "input_example": pd.DataFrame(
            {mlflow_pyfunc.FH_COLUMN: mlflow_pyfunc.fitted_steps(forecaster)}
        ),
        "pip_requirements": pip_requirements,
        "extra_pip_requirements": extra,
    }


def _requirements(saved: Path) -> list[str]:
    """pricetune and the distributions of the saved model's components, at
    the versions that saved it (what ``mlflow models serve`` installs)."""
    import json

    from pricetune import __version__
    from pricetune.persistence import METADATA_FILE

    metadata = json.loads((saved / METADATA_FILE).read_text())
    found = {"pricetune": metadata.get("pricetune_version", __version__)}
    for component in metadata.get("components", {}).values():
        distribution = component.get("distribution")
        if distribution and distribution not in found:
            found[distribution] = component.get("version")
    return [
        f"{name}=={version}" if version else name for name, version in found.items()
    ]
