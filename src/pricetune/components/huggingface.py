"""Helpers for components built on local Hugging Face checkpoints.

They are public, for plugin authors: pricetune's own ``hf`` and ``minilm``
backbones (:mod:`pricetune.components.language_model`) use them, and so do
the backbones of the ``pricetune-tstransformers`` plugin. They check that a
checkpoint is a local directory (pricetune never downloads weights), cut a
model to its first layers, load a model quietly, and keep pretrained bodies
in memory for later fits of the same process.

A backbone on a local checkpoint, for example::

    from torch import nn

    from pricetune.components.contract import Backbone
    from pricetune.components.huggingface import (
        checkpoint_directory,
        cut_layers,
        load_model,
        max_positions,
    )


    class MyTransformerBackbone(Backbone):
        position_embedding_names = ("position_embeddings", "wpe")

        def __init__(self, *, patch_length, n_patches, path, pretrained=True,
                     n_layers=None):
            super().__init__()
            from transformers import AutoConfig, AutoModel

            path = checkpoint_directory(path, "my-transformer")
            config = AutoConfig.from_pretrained(path, local_files_only=True)
            cut_layers(config, "num_hidden_layers", n_layers, "my-transformer")
            positions = max_positions(config)
            if positions is not None and n_patches > positions:
                raise ValueError(f"{n_patches} patches exceed {positions} positions")
            self.body = load_model(AutoModel, config, path, pretrained)
            self.hidden_size = int(config.hidden_size)
            self.embedding = nn.Linear(patch_length, self.hidden_size)

        def forward(self, patches):
            hidden = self.body(inputs_embeds=self.embedding(patches))
            return hidden.last_hidden_state

:func:`pretrained_body` loads through ``AutoModel`` too, but reads each
checkpoint from disk once per process and hands every caller its own copy.

Nothing here downloads anything; torch and transformers are imported when a
helper is called, not when this module is imported.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "PRETRAINED_CACHE_SIZE",
    "checkpoint_directory",
    "clear_pretrained_cache",
    "cut_layers",
    "load_model",
    "max_positions",
    "pretrained_body",
    "quiet_transformers",
]


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers while models load.

    Inside the ``with`` block transformers logs errors only (no notes about
    unused weights when layers are cut) and shows no per-tensor loading bar
    (pricetune shows its own progress); both settings are restored on exit,
    also when the block raises.

    Examples
    --------
    >>> with quiet_transformers():                           # doctest: +SKIP
    ...     model = GPT2Model.from_pretrained(path, local_files_only=True)
    """
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
        if bars:
            hf_logging.enable_progress_bar()


def checkpoint_directory(path: str | Path, component_name: str) -> Path:
    """The local checkpoint directory ``path``, checked to hold a model.

    Parameters
    ----------
    path : str or Path
        a directory holding ``config.json`` and the weights; ``~`` is
        expanded.
    component_name : str
        the component's registered name (``"hf"``, ``"patchtst"``), for the
        error message.

    Returns
    -------
    Path
        ``path``, with ``~`` expanded.

    Raises
    ------
    FileNotFoundError
        when ``path`` has no ``config.json``: it is not a local Hugging Face
        checkpoint (a hub name such as ``"gpt2"``, say, which pricetune never
        downloads).
    """
    path = Path(path).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"backbone {component_name!r}: {path} is not a local Hugging Face "
            "checkpoint directory (no config.json); pricetune never downloads "
            "weights, so pass a directory that holds the model"
        )
    return path


def cut_layers(config, attribute: str, n_layers: int | None, component_name: str):
    """Keep only the first ``n_layers`` layers: set ``config.<attribute>``.

    A model built (or loaded) from the config then has that many layers;
    loading a checkpoint into it leaves the other layers' weights unused.

    Parameters
    ----------
    config : transformers.PretrainedConfig
        changed in place.
    attribute : str
        the config's layer count, such as ``"num_hidden_layers"`` (which
        GPT-2's config maps to ``n_layer``) or ``"num_layers"``.
    n_layers : int or None
        the layers to keep, from 1 to the config's count; ``None`` keeps all.
    component_name : str
        the component's registered name, for the error message.

    Raises
    ------
    ValueError
        when ``n_layers`` is not between 1 and the config's count (or is a
        bool).
    """
    if n_layers is None:
        return
    total = getattr(config, attribute)
    if isinstance(n_layers, bool) or not 1 <= int(n_layers) <= total:
        raise ValueError(
            f"backbone {component_name!r}: n_layers must be between 1 and {total}, "
            f"got {n_layers}"
        )
    setattr(config, attribute, int(n_layers))


def load_model(
    model_class, config, path: str | Path | None, pretrained: bool
) -> nn.Module:
    """A transformers model built with ``config``, quietly
    (:func:`quiet_transformers`).

    Parameters
    ----------
    model_class : type
        a transformers model class (``GPT2Model``, ``PatchTSTModel``) or an
        auto class (``AutoModel``).
    config : transformers.PretrainedConfig
        the configuration, possibly cut (:func:`cut_layers`) or changed.
    path : str, Path or None
        the local checkpoint directory (see :func:`checkpoint_directory`).
    pretrained : bool
        with ``path``: load its weights (``local_files_only=True``).
        ``False``, or no ``path``: a new model from random weights, drawn
        from torch's random generator.

    Returns
    -------
    torch.nn.Module
        the model. Read from disk every time; see :func:`pretrained_body`
        for a kept copy.
    """
    with quiet_transformers():
        if path is not None and pretrained and not building_on_meta():
            return model_class.from_pretrained(
                path, config=config, local_files_only=True
            )
        # auto classes (AutoModel) build from a config with from_config; a
        # model class is called with it (model classes have no from_config)
        if hasattr(model_class, "from_config"):
            return model_class.from_config(config)
        return model_class(config)


def building_on_meta() -> bool:
    """Whether models are being built on torch's meta device (shapes only:
    the safe loader checks a saved model's shapes this way before building
    it). ``from_pretrained`` refuses that device, and there are no weights
    to read into it: a checkpoint is then built from its config alone."""
    import torch

    return torch.get_default_device().type == "meta"


def max_positions(config) -> int | None:
    """The number of positions a model has embeddings for.

    Parameters
    ----------
    config : transformers.PretrainedConfig

    Returns
    -------
    int or None
        ``config.max_position_embeddings`` (BERT) or ``config.n_positions``
        (GPT-2); ``None`` when the config has neither (a model without
        learned positions).
    """
    for attribute in ("max_position_embeddings", "n_positions"):
        value = getattr(config, attribute, None)
        if isinstance(value, int):
            return value
    return None


# --------------------------------------------------------------------------
# pretrained bodies kept in memory
# --------------------------------------------------------------------------
# pretrained bodies read from disk, kept in memory for later fits of this
# process (grid searches, ensembles, backtests); each fit gets its own copy
_PRETRAINED: OrderedDict[tuple, nn.Module] = OrderedDict()
_PRETRAINED_LOCK = threading.Lock()
#: bodies kept at most (all-MiniLM-L6-v2 takes about 90 MB); to change it, set
#: it on this module (``pricetune.components.huggingface.PRETRAINED_CACHE_SIZE``)
PRETRAINED_CACHE_SIZE = 2


def clear_pretrained_cache() -> None:
    """Forget the pretrained bodies kept in memory by :func:`pretrained_body`.

    The next call for a checkpoint reads it from disk again (after its
    files changed, say, or to free the memory).
    """
    with _PRETRAINED_LOCK:
        _PRETRAINED.clear()


def _checkpoint_key(path: Path, config) -> tuple:
    """What identifies a loaded body: the directory, the (possibly cut)
    config, and the size and time of every weights file in it."""
    files = sorted(
        (f.name, f.stat().st_size, f.stat().st_mtime_ns)
        for f in path.iterdir()
        if f.suffix in (".safetensors", ".bin", ".pt", ".pth")
    )
    return (str(path.resolve()), config.to_json_string(), tuple(files))


def pretrained_body(path: Path, config) -> nn.Module:
    """A fresh copy of the pretrained model at ``path`` built with ``config``.

    The checkpoint is read from disk (through ``AutoModel``) once per process
    and kept (the last :data:`PRETRAINED_CACHE_SIZE`); later calls copy it
    from memory. Loading draws nothing from torch's random generator, so a
    fit's random draws are the same whether the checkpoint was read or
    copied.

    Parameters
    ----------
    path : Path
        a local checkpoint directory (see :func:`checkpoint_directory`).
    config : transformers.PretrainedConfig
        the configuration to build the model with, possibly cut
        (:func:`cut_layers`); another config of the same checkpoint is
        another body. It is not changed.

    Returns
    -------
    torch.nn.Module
        a model of its own: changing its weights leaves the kept copy as it
        was read.
    """
    import torch
    from transformers import AutoModel

    if building_on_meta():  # shapes only: nothing to read or keep
        return load_model(AutoModel, copy.deepcopy(config), path, True)
    key = _checkpoint_key(path, config)
    with _PRETRAINED_LOCK:
        body = _PRETRAINED.get(key)
        if body is None:
            with torch.random.fork_rng(devices=[]):
                body = load_model(AutoModel, copy.deepcopy(config), path, True)
            _PRETRAINED[key] = body
            while len(_PRETRAINED) > PRETRAINED_CACHE_SIZE:
                _PRETRAINED.popitem(last=False)
        else:
            _PRETRAINED.move_to_end(key)
        return copy.deepcopy(body)
