"""The fitted state of a :class:`~pricetune.FineTunedPriceForecaster`
beyond its model: what the safe format stores, how a save is rebuilt
through ``fit``, and how a pickle of pricetune 0.1.0 is read."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pricetune.data.covariate_roles import reading_mask
from pricetune.data.scaling import Standardiser
from pricetune.data.series import SeriesStore
from pricetune.persistence.codec import (
    decode_fh,
    decode_index,
    decode_instances,
    encode_fh,
    encode_index,
    json_label,
)
from pricetune.persistence.errors import PersistenceError

_Y_MTYPES = ("pd.Series", "pd.DataFrame", "np.ndarray")
# panels and hierarchies (one model for all their series)
_PANEL_MTYPES = ("pd-multiindex", "pd_multiindex_hier", "df-list")


def fitted_state(forecaster) -> dict:
    """The forecaster's fitted state as JSON: the series store (the history
    of every series, the covariates' names, scaling and history), y's names
    and mtype, the cutoff and the fh."""
    if getattr(forecaster, "_is_vectorized", False):
        raise PersistenceError(
            "this forecaster was fitted on several series (sktime fitted one "
            "copy per series); the safe format saves single-series fits: "
            "use joblib, or save the forecasters in forecasters_ one by one"
        )
    store = forecaster._store
    metadata = getattr(forecaster, "_y_metadata", None) or {}
    mtype = metadata.get("mtype", "pd-multiindex" if store.is_panel else "pd.Series")
    allowed = _PANEL_MTYPES if store.is_panel else _Y_MTYPES
    if mtype not in allowed:
        raise PersistenceError(
            f"y was passed as {mtype}; the safe format saves "
            f"{'panel ' if store.is_panel else ''}fits on {', '.join(allowed)}"
        )
    return {
        "y": {
            "mtype": mtype,
            "name": json_label(store.name, "y's name"),
            "index_name": json_label(store.time_name, "y's index name"),
            "feature_names": [
                json_label(name, "y's column")
                for name in metadata.get("feature_names") or []
            ],
        },
        "cutoff": encode_index(forecaster.cutoff, "the cutoff"),
        "fh": encode_fh(forecaster.fh),
        **store.to_json(),
    }


def restore_fitted(forecaster, fitted: dict, model_state: dict, weights) -> None:
    """Rebuild the model and the series store that :func:`fitted_state`
    saved (inside the stand-in ``fit`` of :func:`refit_from_save`)."""
    config = forecaster._training_config()
    try:
        store = SeriesStore.from_json(
            fitted,
            name=fitted["y"]["name"],
            time_name=fitted["y"]["index_name"],
            end=decode_index(fitted["cutoff"]),
        )
    except ValueError as error:
        raise PersistenceError(f"{error}: the save is corrupt") from error
    # the mask is allocated from the saved context length: check it against
    # the bounded number of covariate features first
    names, horizon = store.covariate_names, model_state["horizon"]
    expected = (config.context_length + horizon) * len(names) if names else 0
    if model_state["n_covariate_features"] != expected:
        raise PersistenceError(
            f"the save's model reads {model_state['n_covariate_features']} "
            f"covariate values, but context_length={config.context_length} and "
            f"horizon={horizon} over {len(names)} covariate(s) make {expected}: "
            "the save is corrupt"
        )
    mask = covariate_mask(config, store, horizon)
    forecaster._restore_model(config, model_state, weights, covariate_mask=mask)
    forecaster._set_store(store, config)


def refit_from_save(forecaster, fitted: dict) -> None:
    """``fit`` on stand-in data ending at the saved cutoff, so that sktime's
    fitted state (cutoff, fh, y's mtype and names) is what ``fit`` makes; a
    one-point series keeps the cutoff's frequency exactly as saved. The
    values are ignored: the restore hook sets the saved history."""
    cutoff = decode_index(fitted["cutoff"])
    meta = fitted["y"]
    if "panel" in fitted:
        y, index = _panel_stand_in(fitted, cutoff)
    else:
        last = fitted["history"][-1]
        if meta["mtype"] == "np.ndarray":
            # numpy data count from 0: the cutoff is the length minus one
            length = int(cutoff[0]) + 1
            if length != len(fitted["history"]):
                # checked before the stand-in is allocated from it
                raise PersistenceError(
                    f"the saved cutoff {length - 1} does not end the saved "
                    f"history of {len(fitted['history'])} values: the save is corrupt"
                )
            index = pd.RangeIndex(length)
            y = np.full(length, last)
        else:
            index = cutoff.rename(meta["index_name"])
            y = pd.Series([last], index=index, name=meta["name"])
            if meta["mtype"] == "pd.DataFrame":
                y = y.to_frame(meta["feature_names"][0] if meta["feature_names"] else 0)
    X = None
    if fitted["covariates"] is not None:
        covariates = fitted["covariates"]
        X = pd.DataFrame(
            np.broadcast_to(covariates["loc"], (len(index), len(covariates["loc"]))),
            index=index,
            columns=covariates["names"],
        )
    if "panel" in fitted and meta["mtype"] == "df-list":
        y = [frame.droplevel(0) for _, frame in y.groupby(level=0, sort=False)]
        if X is not None:
            X = [frame.droplevel(0) for _, frame in X.groupby(level=0, sort=False)]
    forecaster.fit(y, X=X, fh=decode_fh(fitted["fh"]))
    rebuilt = forecaster.cutoff
    if not rebuilt.equals(cutoff) or getattr(rebuilt, "freq", None) != getattr(
        cutoff, "freq", None
    ):
        raise PersistenceError(
            f"rebuilt cutoff {forecaster.cutoff!r} differs from the saved {cutoff!r}"
        )


def _panel_stand_in(fitted: dict, cutoff: pd.Index):
    """A panel of one point per series, at each series' last time point
    (the values are the series' last values; the restore hook replaces
    them)."""
    panel, meta = fitted["panel"], fitted["y"]
    instances = decode_instances(panel["series"])
    ends = decode_index(panel["ends"])
    last = np.asarray(panel["values"], dtype=np.float64)[
        np.asarray(panel["offsets"][1:], dtype=np.int64) - 1
    ]
    if isinstance(instances, pd.MultiIndex):
        levels = [instances.get_level_values(i) for i in range(instances.nlevels)]
    else:
        levels = [instances]
    freq = getattr(cutoff, "freq", None)
    if isinstance(ends, pd.DatetimeIndex) and freq is not None:
        # sktime reads the cutoff's frequency from the time level: give the
        # level every time point from the first end to the last, so it
        # carries the saved frequency
        grid = pd.date_range(ends.min(), ends.max(), freq=freq, name=ends.name)
        index = pd.MultiIndex(
            levels=[*(pd.Index(level).unique() for level in levels), grid],
            codes=[
                *(pd.Index(level).unique().get_indexer(level) for level in levels),
                grid.get_indexer(ends),
            ],
            names=[*instances.names, meta["index_name"]],
        )
    else:
        index = pd.MultiIndex.from_arrays(
            [*levels, ends], names=[*instances.names, meta["index_name"]]
        )
    column = meta["feature_names"][0] if meta["feature_names"] else meta["name"]
    return pd.DataFrame({column: last}, index=index), index


#: the attributes in which pricetune 0.1.0 kept a fitted forecaster's data
_LEGACY_DATA = (
    "_history",
    "_covariate_history",
    "_covariate_loc",
    "_covariate_scale",
    "_y_name",
    "_index_name",
    "_freq",
    "_instances",
    "_offsets",
    "_ends",
)


def upgrade_pickled_state(state: dict) -> dict:
    """The instance state of a pickle: as it is, or, for a fitted
    forecaster pickled by pricetune 0.1.0, with its data moved from the
    attributes of 0.1.0 into a :class:`~pricetune.data.series.SeriesStore`."""
    if "_history" not in state:
        return state
    state = dict(state)
    old = {name: state.pop(name, None) for name in _LEGACY_DATA}
    values = np.asarray(old["_history"], dtype=np.float64)
    names = tuple(state.get("covariate_names_") or ())
    if old["_instances"] is None:
        offsets = np.array([0, len(values)], dtype=np.int64)
        ends = state["_cutoff"]
        freq = ends.freqstr if isinstance(ends, pd.DatetimeIndex) else None
    else:
        offsets, ends, freq = old["_offsets"], old["_ends"], old["_freq"]
    state["_store"] = SeriesStore(
        values=values,
        offsets=np.asarray(offsets, dtype=np.int64),
        ends=ends,
        instances=old["_instances"],
        freq=freq,
        name=old["_y_name"],
        time_name=old["_index_name"],
        covariate_names=names,
        covariates=old["_covariate_history"],
        scaling=Standardiser(old["_covariate_loc"], old["_covariate_scale"])
        if names
        else None,
    )
    state.setdefault("context_length_", state["context_length"])
    return state


def covariate_mask(config, store: SeriesStore, horizon: int):
    """Which covariate values a window of ``store`` reads under the roles
    of ``config`` (:func:`~pricetune.data.covariate_roles.reading_mask`)."""
    return reading_mask(
        store.covariate_names,
        config.past_covariates,
        config.static_covariates,
        config.context_length,
        horizon,
    )
