"""Checks of saved weights against the model they are loaded into, by
name, dtype and shape: from the weights file's header alone, and before the
model is built (on torch's meta device), so that no size read from a save
is allocated unchecked."""

from __future__ import annotations

import warnings
from pathlib import Path

from pricetune.persistence.errors import PersistenceError

#: what the file's metadata holds besides the names of tied tensors
FILE_METADATA = {"format": "pt"}

DOES_NOT_FIT = (
    "the saved weights do not fit the model that the saved parameters and the "
    "installed components build"
)


def _names(names, limit: int = 5) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def dtype_name(tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def tensor_spec(tensor) -> list:
    return [dtype_name(tensor), [int(size) for size in tensor.shape]]


def tensor_specs(tensors: dict) -> dict:
    return {name: tensor_spec(tensor) for name, tensor in tensors.items()}


#: safetensors' dtype names, as torch names them
_SAFETENSORS_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}


def header_specs(path) -> dict:
    """``{name: [dtype, shape]}`` of a safetensors file, read from its
    header alone (no tensor is loaded), tied tensors' aliases included."""
    from safetensors import safe_open

    specs = {}
    with safe_open(str(path), framework="pt") as handle:
        for name in handle.keys():
            piece = handle.get_slice(name)
            dtype = piece.get_dtype()
            specs[name] = [_SAFETENSORS_DTYPES.get(dtype, dtype), piece.get_shape()]
        metadata = handle.metadata() or {}
    for alias, kept in metadata.items():  # tied weights, stored once
        if alias not in FILE_METADATA and alias not in specs and kept in specs:
            specs[alias] = specs[kept]
    return specs


def check_before_building(build, weights) -> None:
    """Check the model a save describes against its weights file's header
    *before* the model is built for real: ``build()`` runs on torch's meta
    device (shapes, no memory), so sizes read from the save's JSON (an
    edited ``context_length`` of 10**9, say) are refused before anything is
    allocated from them.

    A component that cannot be built on the meta device (a plugin reading
    its own weights file) skips this check; the model is then checked when
    its weights are loaded, after it is built.

    Raises
    ------
    PersistenceError
        the saved tensors do not fit the model the parameters describe.
    """
    check_structure = getattr(weights, "check_structure", None)  # SavedWeights
    if check_structure is None and not isinstance(weights, str | Path):
        return  # the probe of split_state: nothing saved yet
    import torch

    try:
        # a component reading its own weights file on the meta device copies
        # nothing and says so: there is nothing to copy, only shapes to check
        with torch.device("meta"), warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", "for .*: copying from a non-meta parameter", UserWarning
            )
            model = build()
    except Exception:  # noqa: BLE001 - the real build reports its own errors
        return
    if check_structure is not None:
        check_structure(model)
        return
    # format version 1: the file holds every tensor of the model
    check_fits(tensor_specs(model.state_dict()), header_specs(weights), {}, weights)


def check_fits(state: dict, loaded: dict, base: dict, where) -> None:
    """Every saved tensor is in the model with its dtype and shape; every
    other tensor of the model is a recorded base tensor (each of the first
    three: ``{name: [dtype, shape]}``); ``where`` names the file."""
    problems = []
    missing = set(state) - set(loaded) - set(base)
    unexpected = (set(loaded) | set(base)) - set(state)
    if missing:
        problems.append(f"neither saved nor in the base: {_names(missing)}")
    if unexpected:
        problems.append(f"not in the model built here: {_names(unexpected)}")
    if set(loaded) & set(base):
        problems.append(f"saved and in the base: {_names(set(loaded) & set(base))}")
    specs = {name: list(spec) for name, spec in loaded.items()}
    specs.update({name: list(spec) for name, spec in base.items()})
    other = [
        f"{name} (saved {specs[name][0]} {specs[name][1]}, built "
        f"{state[name][0]} {state[name][1]})"
        for name in sorted(set(specs) & set(state))
        if specs[name] != list(state[name])
    ]
    if other:
        problems.append(f"other dtypes or shapes: {_names(other, 3)}")
    if problems:
        raise PersistenceError(f"{where}: {DOES_NOT_FIT}: " + "; ".join(problems))
