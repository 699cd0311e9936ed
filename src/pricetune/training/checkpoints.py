"""Training checkpoints: written atomically after every epoch, read back to
resume an interrupted run where it stopped.

A checkpoint holds only tensors, numbers, strings and lists, and is read with
``torch.load(weights_only=True)``: reading one never runs code. A fingerprint
of the run (settings, model structure, data) guards against resuming a
different run from the same directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import torch

FILENAME = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be resumed from: the message names the
    file and what is wrong with it."""


def fingerprint(config_items: dict, model: torch.nn.Module, data_digest: str) -> str:
    """A digest of the run: training settings, parameter names and shapes,
    and the data (``data_digest``, e.g. ``Windows.digest()``)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(config_items, sort_keys=True, default=str).encode())
    for name, parameter in model.named_parameters():
        digest.update(
            f"{name}:{tuple(parameter.shape)}:{parameter.requires_grad}".encode()
        )
    digest.update(data_digest.encode())
    return digest.hexdigest()


def save(directory: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` to ``directory/checkpoint.pt`` atomically (write to a
    temporary file, then rename: a crash never leaves half a checkpoint)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILENAME
    temporary = directory / f".{FILENAME}.{os.getpid()}.tmp"
    torch.save(state, temporary)
    os.replace(temporary, path)
    return path


def load(directory: str | os.PathLike, expected_fingerprint: str) -> dict | None:
    """The checkpoint in ``directory`` if there is one for this very run;
    ``None`` if there is none. A checkpoint of another run raises."""
    path = Path(directory) / FILENAME
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        # truncated (a disk filled up), tampered with, or not a checkpoint:
        # torch says "Invalid argument" or an unpickling error
        raise CheckpointError(
            f"{path} is not a readable training checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200]}); delete it to train from the "
            "start, or use another checkpoint_dir"
        ) from error
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} is not a training checkpoint (it holds a "
            f"{type(state).__name__}); delete it or use another checkpoint_dir"
        )
    if state.get("fingerprint") != expected_fingerprint:
        raise CheckpointError(
            f"{path} belongs to another training run (other settings, model or "
            "data); use another checkpoint_dir or delete the file"
        )
    return state
