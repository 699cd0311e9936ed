"""The safe format's JSON codec: parameters, names, time indices, forecasting
horizons and small frames as plain JSON, exactly (indices as ordinals and
epoch values, not strings), and back. Numpy and pandas only."""

from __future__ import annotations

import contextlib
import math
import numbers
import os

import numpy as np
import pandas as pd

from pricetune.persistence.errors import PersistenceError


def json_value(value, where: str = "value", *, lenient: bool = False):
    """``value`` as plain JSON; tuples become lists, paths strings, numpy
    scalars Python numbers. Anything else is refused, naming ``where``;
    with ``lenient``, non-finite numbers become ``None`` and anything else
    is returned as it is (for reports, which ``json.dumps`` with
    ``default=str``)."""
    if value is None or isinstance(value, str | bool | np.bool_):
        return bool(value) if isinstance(value, np.bool_) else value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            if lenient:
                return None
            raise TypeError(f"{where}={value!r} is not finite; it cannot be saved")
        return number
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, list | tuple):
        return [
            json_value(item, f"{where}[{i}]", lenient=lenient)
            for i, item in enumerate(value)
        ]
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{where} has the key {key!r} ({type(key).__name__}); the "
                    "safe format stores dicts with string keys only"
                )
            result[key] = json_value(item, f"{where}[{key!r}]", lenient=lenient)
        return result
    if lenient:
        return value
    raise TypeError(
        f"{where}={value!r} ({type(value).__name__}) cannot be saved in the safe "
        "format: parameters must be None, bool, int, float, str, or lists and "
        "string-keyed dicts of them (e.g. random_state=0 instead of a "
        "RandomState). Pickle or joblib can save this estimator as it is"
    )


def json_label(value, where: str):
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


def floats(array) -> list:
    return np.asarray(array, dtype=np.float64).tolist()


def encode_index(index: pd.Index, where: str) -> dict:
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
    encoded["name"] = json_label(index.name, f"{where}'s name")
    encoded["labels"] = [str(label) for label in index]
    decoded = decode_index(encoded)
    same = (
        type(decoded) is type(index)
        and decoded.equals(index)
        and decoded.dtype == index.dtype
        and getattr(decoded, "freq", None) == getattr(index, "freq", None)
    )
    if not same:
        raise PersistenceError(f"{where} ({index!r}) does not survive the safe format")
    return encoded


def decode_index(encoded: dict) -> pd.Index:
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


def encode_fh(fh) -> dict:
    from sktime.forecasting.base import ForecastingHorizon

    encoded = {
        "is_relative": bool(fh.is_relative),
        "values": encode_index(fh.to_pandas(), "fh"),
        "freq": fh.freq,
    }
    decoded = decode_fh(encoded)
    if not (
        isinstance(decoded, ForecastingHorizon)
        and decoded.is_relative == fh.is_relative
        and decoded.to_pandas().equals(fh.to_pandas())
    ):
        raise PersistenceError(f"the forecasting horizon {fh!r} cannot be saved")
    return encoded


def decode_fh(encoded: dict):
    from sktime.forecasting.base import ForecastingHorizon

    return ForecastingHorizon(
        decode_index(encoded["values"]),
        is_relative=encoded["is_relative"],
        freq=encoded["freq"],
    )


def encode_frame(frame: pd.DataFrame) -> dict:
    """A small numeric frame (``training_history_``) as JSON; NaN as null."""
    columns = {}
    for column in frame.columns:
        values = frame[column].tolist()
        columns[str(column)] = [
            None if isinstance(v, float) and math.isnan(v) else json_value(v, column)
            for v in values
        ]
    return {
        "columns": [str(column) for column in frame.columns],
        "dtypes": [str(dtype) for dtype in frame.dtypes],
        "data": columns,
    }


def decode_frame(encoded: dict) -> pd.DataFrame:
    frame = pd.DataFrame(
        {column: encoded["data"][column] for column in encoded["columns"]},
        columns=encoded["columns"],
    )
    for column, dtype in zip(encoded["columns"], encoded["dtypes"], strict=True):
        with contextlib.suppress(TypeError, ValueError):
            frame[column] = frame[column].astype(dtype)
    return frame


def encode_instances(instances: pd.Index) -> dict:
    """A panel's series keys as JSON: one label (or list of labels, one per
    level) per series, and the level names."""
    if isinstance(instances, pd.MultiIndex):
        keys = [
            [json_label(label, "a series key") for label in key] for key in instances
        ]
    else:
        keys = [json_label(label, "a series key") for label in instances]
    return {
        "names": [json_label(name, "a series level name") for name in instances.names],
        "keys": keys,
    }


def decode_instances(encoded: dict) -> pd.Index:
    names, keys = list(encoded["names"]), encoded["keys"]
    if len(names) > 1:
        return pd.MultiIndex.from_tuples([tuple(key) for key in keys], names=names)
    return pd.Index(keys, name=names[0])
