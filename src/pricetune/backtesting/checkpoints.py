"""Checkpoints of finished (model, origin) fits under
``output_dir/checkpoint/``, keyed by a fingerprint of everything that
determines the fit, so that a backtest started again continues."""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path

import numpy as np
import pandas as pd

# ------------------------------------------------------------- checkpoints
#: bump when what a checkpoint holds (or how a fit is made) changes: every
#: older checkpoint then stops matching and is refitted
CHECKPOINT_FORMAT = 1
#: the checkpoints' folder under ``output_dir``
CHECKPOINT_DIR = "checkpoint"
_ADDRESS = re.compile(r" at 0x[0-9A-Fa-f]+")
_TEXT_COLUMNS = ("model", "series", "cutoff", "time")


def _canonical(value, stack: tuple = ()):
    """``value`` as deterministic JSON: an estimator as its class and every
    parameter (``get_params(deep=False)``, recursively, so that nested
    estimators are complete, not sklearn's shortened repr) and its sktime
    config; an object without a repr of its own as its class and
    attributes; anything else as its repr without memory addresses."""
    if id(value) in stack or len(stack) > 32:  # a cycle: its repr will do
        return _ADDRESS.sub("", repr(value))

    def inner(item):
        return _canonical(item, (*stack, id(value)))

    if not isinstance(value, type) and hasattr(value, "get_params"):
        try:
            params = value.get_params(deep=False)
        except Exception:  # noqa: BLE001 - not an sklearn/sktime estimator
            params = None
        if isinstance(params, Mapping):
            out = {
                "class": _class_name(value),
                "params": {str(k): inner(params[k]) for k in sorted(params)},
            }
            try:
                out["config"] = inner(dict(value.get_config()))
            except Exception:  # noqa: BLE001 - sklearn estimators have none
                pass
            return out
    if isinstance(value, Mapping):
        return {
            str(k): inner(v)
            for k, v in sorted(value.items(), key=lambda item: str(item[0]))
        }
    if isinstance(value, list | tuple):
        return [inner(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((inner(v) for v in value), key=json.dumps)
    if isinstance(value, np.ndarray):
        return {"array": inner(value.tolist()), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return inner(value.item())
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, type) or inspect.isroutine(value):
        module = getattr(value, "__module__", None)
        return f"{module}.{getattr(value, '__qualname__', repr(value))}"
    text = repr(value)
    if _ADDRESS.search(text) and isinstance(getattr(value, "__dict__", None), dict):
        # object's default repr: its class and state tell settings apart
        return {"class": _class_name(value), "state": inner(vars(value))}
    return _ADDRESS.sub("", text)


def _class_name(value) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def data_digest(group) -> str:
    """A hash of what one origin's fits see and are scored on: each series'
    name, training values and index up to the cut-off, and its actuals."""
    digest = hashlib.sha256()
    for split in group:
        digest.update(json.dumps(str(split.series)).encode())
        for part in (split.train, split.test):
            index = part.index
            digest.update(f"|{len(part)}|{index.dtype}|".encode())
            if hasattr(index, "asi8") and index.asi8 is not None:
                digest.update(np.ascontiguousarray(index.asi8).tobytes())
            else:
                digest.update("\x1f".join(map(str, index)).encode())
            values = np.ascontiguousarray(part.to_numpy(dtype=np.float64))
            digest.update(values.tobytes())
    return digest.hexdigest()


def fit_fingerprint(spec, cutoff, digest, horizon, levels) -> str:
    """What determines one (model, origin): the model's name, kind, every
    parameter of its estimator, its history cap, the horizon, the quantile
    levels, the cut-off and the data."""
    key = {
        "format": CHECKPOINT_FORMAT,
        "model": spec.name,
        "global": bool(spec.global_),
        "estimator": _canonical(spec.estimator),
        "max_train": None if spec.max_train is None else int(spec.max_train),
        "horizon": int(horizon),
        "levels": [float(level) for level in levels],
        "cutoff": str(cutoff),
        "data": digest,
    }
    text = json.dumps(key, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _file_part(text) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)) or "_"


def checkpoint_path(directory: Path, spec, cutoff, fingerprint) -> Path:
    name = f"{_file_part(cutoff)}-{fingerprint[:16]}.json"
    return directory / _file_part(spec.name) / name


def _json_list(values) -> list:
    return [
        None if isinstance(v, float) and math.isnan(v) else v for v in values.tolist()
    ]


def write_checkpoint(path: Path, payload: dict) -> None:
    """Write ``payload`` as JSON atomically: a temporary file in the same
    folder, then :func:`os.replace`, so that an interrupted run leaves the
    old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(payload, file)
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise


def checkpoint_payload(spec, k, cutoff, fingerprint, frames, fits, notes) -> dict:
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return {
        "format": CHECKPOINT_FORMAT,
        "fingerprint": fingerprint,
        "model": spec.name,
        "estimator": repr(spec.estimator),
        "origin": int(k),
        "cutoff": str(cutoff),
        "rows": {column: _json_list(rows[column]) for column in rows.columns},
        "fits": [
            {
                key: None if isinstance(v, float) and math.isnan(v) else v
                for key, v in record.items()
            }
            for record in fits
        ],
        "notes": list(notes),
    }


def read_checkpoint(path: Path, fingerprint: str):
    """``(frames, fits, notes)`` of a checkpoint whose fingerprint is
    ``fingerprint``, or None (missing, unreadable or of other settings)."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(payload, dict)
        or payload.get("format") != CHECKPOINT_FORMAT
        or payload.get("fingerprint") != fingerprint
    ):
        return None
    try:
        rows = pd.DataFrame(payload["rows"])
        for column in rows.columns:
            if column == "step":
                rows[column] = rows[column].astype(np.int64)
            elif column not in _TEXT_COLUMNS:
                rows[column] = rows[column].astype(np.float64)
        fits = [
            {
                key: np.nan if value is None and key != "series" else value
                for key, value in record.items()
            }
            for record in payload["fits"]
        ]
        notes = [str(note) for note in payload.get("notes", [])]
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return ([rows] if len(rows) else []), fits, notes
