"""The MLflow pyfunc model of a fitted forecaster.

The forecaster is stored in pricetune's safe format (``model.safetensors``
and ``pricetune.json``, :mod:`pricetune.persistence`) as the pyfunc's
artifact ``forecaster``, and the model itself is "models from code": a
three-line script that builds :class:`ForecasterModel`, so that loading
the MLflow model unpickles nothing. :mod:`pricetune.mlflow` saves, logs
and loads it; this module imports mlflow and is imported only by it.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

#: the name of the forecaster's safe-format directory among the artifacts
ARTIFACT = "forecaster"
#: the input's one column: the steps ahead to forecast
FH_COLUMN = "fh"
#: the params of ``predict``: quantile levels to add to the point forecast
QUANTILES_PARAM = "quantiles"

#: the script MLflow stores as the model's code ("models from code")
MODEL_CODE = '''\
"""The MLflow pyfunc model of a pricetune forecaster (pricetune.mlflow)."""

from mlflow.models import set_model

from pricetune.integrations.mlflow_pyfunc import ForecasterModel

set_model(ForecasterModel())
'''


class ForecasterModel(mlflow.pyfunc.PythonModel):
    """A fitted :class:`~pricetune.FineTunedPriceForecaster` as an MLflow
    pyfunc model: ``predict(DataFrame)`` returns the forecast as a
    DataFrame (see :mod:`pricetune.mlflow` for the schemas)."""

    def load_context(self, context) -> None:
        from pricetune.persistence import load

        device = (context.model_config or {}).get("device")
        self.forecaster = load(context.artifacts[ARTIFACT], device=device)

    def predict(
        self, context, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        # the pd.DataFrame hint tells MLflow to check the input against the
        # signature (mlflow_pyfunc.signature) rather than the hint
        params = params or {}
        steps = requested_steps(model_input, self.forecaster)
        return forecast_frame(self.forecaster, steps, params.get(QUANTILES_PARAM))


def fitted_steps(forecaster) -> list[int]:
    """The steps ahead of the forecaster's fitted ``fh``."""
    return [int(step) for step in forecaster.fh.to_relative(forecaster.cutoff)]


def requested_steps(model_input, forecaster) -> list[int]:
    """The steps ahead an input asks for: its ``fh`` column, or the fitted
    ``fh`` when it has none or it is empty. Each must be a step of the
    fitted ``fh`` (sktime forecasts only those)."""
    if model_input is None:
        model_input = pd.DataFrame()
    if not isinstance(model_input, pd.DataFrame):
        model_input = pd.DataFrame(model_input)
    unknown = [str(c) for c in model_input.columns if c != FH_COLUMN]
    if unknown:
        raise ValueError(
            f"the input has unknown columns {unknown}: a pricetune forecaster's "
            f"pyfunc takes one optional column, {FH_COLUMN!r} (steps ahead)"
        )
    fitted = fitted_steps(forecaster)
    if FH_COLUMN not in model_input or not model_input[FH_COLUMN].notna().any():
        return fitted
    values = model_input[FH_COLUMN].dropna().to_numpy()
    numeric = pd.api.types.is_numeric_dtype(values.dtype)
    if not numeric or not np.array_equal(values, np.round(values)):
        raise ValueError(
            f"column {FH_COLUMN!r} must hold whole steps ahead (1, 2, ...); got "
            f"{values.tolist()[:5]}"
        )
    steps = sorted({int(step) for step in values})
    outside = [step for step in steps if step not in fitted]
    if outside:
        raise ValueError(
            f"column {FH_COLUMN!r} asks for steps {outside}; this forecaster was "
            f"fitted for fh={fitted} and forecasts those only"
        )
    return steps


def forecast_frame(forecaster, steps: list[int], quantiles=None) -> pd.DataFrame:
    """The forecast at ``steps`` (steps of the fitted ``fh``) as a flat
    DataFrame: the series' index levels (a panel's), the time as text,
    ``fh``, the point forecast under the series' name, and a
    ``<name>_q<level>`` column per quantile level."""
    fitted = fitted_steps(forecaster)
    point = forecaster.predict()
    if isinstance(point, pd.Series):
        point = point.to_frame(name="forecast" if point.name is None else point.name)
    frame = pd.DataFrame(point.to_numpy(), columns=[str(c) for c in point.columns])
    if quantiles is not None and len(quantiles):
        levels = [float(level) for level in quantiles]
        bands = forecaster.predict_quantiles(alpha=levels)
        for (variable, level), values in bands.items():
            frame[f"{variable}_q{level:g}"] = values.to_numpy()
    index = point.index
    times = index.get_level_values(-1)
    labels = pd.DataFrame(
        {
            str(name) if name is not None else f"level_{number}": (
                index.get_level_values(number).astype(str)
            )
            for number, name in enumerate(index.names[:-1])
        }
    )
    labels[times.name or "time"] = times.astype(str)
    # a panel's rows are each series' fitted steps in turn
    labels[FH_COLUMN] = np.tile(fitted, len(frame) // len(fitted))
    table = pd.concat([labels, frame], axis=1)
    return table[table[FH_COLUMN].isin(steps)].reset_index(drop=True)


def signature():
    """The pyfunc's signature: one optional ``fh`` column of integers in, a
    ``quantiles`` param (a list of levels, default none)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("long", FH_COLUMN, required=False)]),
        params=ParamSchema([ParamSpec(QUANTILES_PARAM, "double", [], shape=(-1,))]),
    )
