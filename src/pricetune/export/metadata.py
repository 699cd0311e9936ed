"""What the runtime needs besides the graph: a JSON description, written
beside the ``.onnx`` file (``<path>.json``) and into its
``metadata_props`` (key ``"pricetune"``), so that either alone suffices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

#: the format's name and version, checked when a runtime loads a file
FORMAT_NAME = "pricetune-onnx"
FORMAT_VERSION = 1
#: the key of the description in the ONNX file's ``metadata_props``
METADATA_KEY = "pricetune"


def sidecar_path(path) -> Path:
    """The JSON file beside an exported model: ``model.onnx.json`` for
    ``model.onnx``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _plain(value):
    """``value`` as JSON holds it: numbers and strings as they are, a tuple
    (a hierarchy's instance) as a list, anything else as its ``str``."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return [_plain(part) for part in value]
    return str(value)


def _index_kind(index: pd.Index) -> str:
    if isinstance(index, pd.PeriodIndex):
        return "period"
    if isinstance(index, pd.DatetimeIndex):
        return "datetime"
    return "integer"


def fitted_steps(forecaster) -> list[int]:
    """The steps ahead of the fitted ``fh`` (relative to each series' last
    time point), or every step the model forecasts when an absolute ``fh``
    of a panel means different steps for different series."""
    horizon = int(forecaster.horizon_)
    fh = forecaster.fh
    try:
        if fh.is_relative:
            steps = np.asarray(fh.to_pandas(), dtype=int)
        elif not forecaster._store.is_panel:
            steps = np.asarray(fh.to_relative(forecaster.cutoff).to_pandas(), int)
        else:
            steps = np.arange(1, horizon + 1)
    except (TypeError, ValueError):
        steps = np.arange(1, horizon + 1)
    steps = [int(step) for step in steps if 1 <= step <= horizon]
    return steps or list(range(1, horizon + 1))


def describe(forecaster, *, quantize, opset: int) -> dict:
    """The description of a fitted forecaster's export.

    Parameters
    ----------
    forecaster : FineTunedPriceForecaster
        fitted, without covariates.
    quantize : {None, "int8"}
    opset : int

    Returns
    -------
    dict
        JSON-ready: context length, horizon, the fitted steps, quantile
        levels, series names, frequency, the index kind and cutoff, the
        components and the number of ensemble members, and the graph's
        input and output names.
    """
    from pricetune import __version__
    from pricetune.export.graph import INPUT_NAME, OUTPUT_NAMES

    store = forecaster._store
    cutoff = forecaster.cutoff
    quantiles = forecaster.quantiles_
    series = [_plain(name) for name in store.instances] if store.is_panel else None
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "pricetune_version": __version__,
        "context_length": int(forecaster.context_length_),
        "horizon": int(forecaster.horizon_),
        "fh_steps": fitted_steps(forecaster),
        "quantiles": None if quantiles is None else [float(q) for q in quantiles],
        "interval_scale": float(forecaster.interval_scale_),
        # in the graph too: what its outputs already include
        "shrinkage": float(forecaster.shrinkage_),
        # calibrate_intervals="conformal": the margins are in the graph
        "conformal_margins": forecaster.conformal_margins_ is not None,
        "name": _plain(store.name),
        "time_name": _plain(store.time_name),
        "series": series,
        "freq": None if store.freq is None else str(store.freq),
        "index_kind": _index_kind(store.ends),
        "cutoff": _plain(cutoff[0]) if len(cutoff) else None,
        "backbone": _plain(forecaster.backbone),
        "head": _plain(forecaster.head),
        "strategy": _plain(forecaster.strategy),
        # an ensemble's members are mixed inside the graph
        "members": len(forecaster._members()),
        "quantize": quantize,
        "opset": int(opset),
        "input": INPUT_NAME,
        "outputs": list(OUTPUT_NAMES),
    }


def check_description(description: dict, source) -> dict:
    """``description`` after checking that it is this format's; a one-line
    :class:`ValueError` naming ``source`` otherwise."""
    if description.get("format") != FORMAT_NAME:
        raise ValueError(f"{source} does not describe a pricetune ONNX export")
    if int(description.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(
            f"{source} is format version {description['format_version']}; this "
            f"pricetune reads up to {FORMAT_VERSION}: upgrade pricetune"
        )
    return description


def write_sidecar(path, description: dict) -> Path:
    """Write ``description`` to :func:`sidecar_path` of ``path``; returns it."""
    target = sidecar_path(path)
    target.write_text(json.dumps(description, indent=2) + "\n")
    return target


def read_description(path, session) -> dict:
    """The description of the export at ``path``: its sidecar when there is
    one, else the ``metadata_props`` of ``session``'s model (an
    :class:`onnxruntime.InferenceSession`)."""
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        return check_description(json.loads(sidecar.read_text()), sidecar)
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise ValueError(
            f"{path} has no pricetune description (no {sidecar.name} beside it "
            f"and no {METADATA_KEY!r} metadata): export it with "
            "pricetune.export.export_onnx"
        )
    return check_description(json.loads(props[METADATA_KEY]), path)
