"""Backbones built on transformers' time-series models.

pricetune hands a backbone patches it has already cut from the normalised
series, ``(batch, n_patches, patch_length)``, and wants hidden states
``(batch, n_patches, hidden_size)`` back. These models normally scale and
patch raw series themselves, so each backbone keeps the model's transformer
(its ``body``) and feeds it through a patch embedding of its own (the
``embedding``):

* **PatchTST**: ``embedding`` is a ``Linear(patch_length, d_model)``, started
  from the checkpoint's patch embedding when the patch lengths agree;
  ``body`` is the PatchTST encoder (positional encoding and layers) with its
  own embedding removed. The model's scaler, patcher and masking are not
  used: pricetune normalises and patches.
* **PatchTSMixer**: the same, with the mixer's ``patcher``. The mixer mixes
  across a fixed number of patches, so a checkpoint's ``num_patches`` must
  equal the forecaster's.
* **TimesFM**: ``embedding`` is the checkpoint's input residual block (patch
  values and a zero padding mask in, hidden width out), so
  ``patch_length`` must equal the checkpoint's; ``body`` holds the frequency
  embedding, the sinusoidal positions and the causal decoder layers. TimesFM's
  own per-series normalisation is replaced by pricetune's.

Nothing is downloaded: checkpoints are read from local directories only,
through pricetune's public Hugging Face helpers
(:mod:`pricetune.components.huggingface`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from pricetune.components.contract import Backbone
from pricetune.components.huggingface import (
    checkpoint_directory,
    cut_layers,
    load_model,
)
from torch import nn

# the forecaster decides these; a checkpoint's values are overridden
_STRUCTURAL = {
    "patch_length",
    "patch_stride",
    "context_length",
    "num_patches",
    "num_input_channels",
    "prediction_length",
    "horizon_length",
}


def _config(config_class, name: str, path, overrides: dict, defaults: dict):
    """The model configuration: the checkpoint's (``path``) or ``defaults``,
    updated with the user's ``overrides`` (unknown keys raise TypeError)."""
    known = set(config_class().to_dict())
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(
            f"backbone {name!r} got unexpected keyword arguments {unknown}: not "
            f"{config_class.__name__} fields"
        )
    structural = sorted(set(overrides) & _STRUCTURAL)
    if structural:
        raise TypeError(
            f"backbone {name!r}: {structural} are set by the forecaster "
            "(context_length, patch_length, patch_stride), not backbone_kwargs"
        )
    if path is None:
        return config_class(**{**defaults, **overrides})
    config = config_class.from_pretrained(path, local_files_only=True)
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def _copy_linear(target: nn.Linear, source: nn.Module | None) -> bool:
    """Start ``target`` from ``source``'s weights when the shapes agree."""
    if not isinstance(source, nn.Linear) or source.weight.shape != target.weight.shape:
        return False
    with torch.no_grad():
        target.weight.copy_(source.weight)
        if target.bias is not None and source.bias is not None:
            target.bias.copy_(source.bias)
    return True


class PatchTSTBackbone(Backbone):
    """PatchTST's transformer encoder (Nie et al. 2023) over pricetune's patches.

    Parameters
    ----------
    path : str or Path, optional
        a local PatchTST checkpoint directory (``PatchTSTModel`` or
        ``PatchTSTForPrediction``, ...). Default: a new model from random
        weights, sized by ``**config``.
    pretrained : bool, default True
        with ``path``: load its weights; ``False`` builds its architecture
        from random weights.
    n_layers : int, optional
        keep only the first ``n_layers`` encoder layers.
    **config
        ``PatchTSTConfig`` fields: for a new model they override the small
        defaults below (``d_model=64``, ``num_hidden_layers=2``,
        ``num_attention_heads=4``, ``ffn_dim=128``, ``norm_type="layernorm"``);
        with ``path`` they override the checkpoint's (dropouts, say).

    Learned positions (``positional_encoding_type="random"``) must match the
    forecaster's number of patches; sin-cos positions are recomputed for it.
    """

    position_embedding_names = ("position_enc", "cls_token")
    lora_target_modules = ["q_proj", "v_proj"]
    defaults = {
        "d_model": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "ffn_dim": 128,
        "norm_type": "layernorm",
        "dropout": 0.0,
    }

    def __init__(
        self,
        *,
        patch_length: int,
        n_patches: int,
        path: str | Path | None = None,
        pretrained: bool = True,
        n_layers: int | None = None,
        **config,
    ):
        super().__init__()
        from transformers import PatchTSTConfig, PatchTSTModel
        from transformers.models.patchtst.modeling_patchtst import (
            PatchTSTPositionalEncoding,
        )

        if path is not None:
            path = checkpoint_directory(path, "patchtst")
        settings = _config(PatchTSTConfig, "patchtst", path, config, self.defaults)
        checkpoint_patch_length = settings.patch_length
        settings.num_input_channels = 1
        if path is None:
            settings.patch_length = patch_length
            settings.patch_stride = patch_length
            settings.context_length = patch_length * n_patches
            settings.do_mask_input = False
        cut_layers(settings, "num_hidden_layers", n_layers, "patchtst")
        model = load_model(PatchTSTModel, settings, path, pretrained)
        encoder = model.encoder
        self.hidden_size = int(settings.d_model)
        self.embedding = nn.Linear(patch_length, self.hidden_size)
        if path is not None and pretrained and checkpoint_patch_length == patch_length:
            _copy_linear(self.embedding, encoder.embedder.input_embedding)
        encoder.embedder = nn.Identity()
        positions = encoder.positional_encoder
        wanted = n_patches + (1 if settings.use_cls_token else 0)
        if positions.position_enc.shape[0] != wanted:
            if settings.positional_encoding_type != "sincos":
                raise ValueError(
                    f"backbone 'patchtst': the checkpoint at {path} learned "
                    f"positions for {positions.position_enc.shape[0]} patches, "
                    f"but the forecaster cuts {n_patches}; choose context_length, "
                    "patch_length and patch_stride to match"
                )
            positions.position_enc = PatchTSTPositionalEncoding._init_pe(
                settings, wanted
            )
        self.use_cls_token = bool(settings.use_cls_token)
        self.path = path
        self.body = encoder

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        hidden = self.embedding(patches).unsqueeze(1)  # one channel
        output = self.body(patch_input=hidden).last_hidden_state[:, 0]
        return output[:, 1:] if self.use_cls_token else output


class PatchTSMixerBackbone(Backbone):
    """PatchTSMixer's MLP-mixer encoder (Ekambaram et al. 2023) over
    pricetune's patches.

    Parameters
    ----------
    path : str or Path, optional
        a local PatchTSMixer checkpoint directory; its ``num_patches`` must
        equal the forecaster's number of patches. Default: a new model.
    pretrained : bool, default True
    n_layers : int, optional
        keep only the first ``n_layers`` mixer layers.
    **config
        ``PatchTSMixerConfig`` fields; new models default to ``d_model=32``,
        ``num_layers=2``, ``dropout=0.0``, ``norm_mlp="LayerNorm"``.
    """

    position_embedding_names = ("position_enc",)
    lora_target_modules = ["fc1", "fc2"]
    defaults = {"d_model": 32, "num_layers": 2, "dropout": 0.0}

    def __init__(
        self,
        *,
        patch_length: int,
        n_patches: int,
        path: str | Path | None = None,
        pretrained: bool = True,
        n_layers: int | None = None,
        **config,
    ):
        super().__init__()
        from transformers import PatchTSMixerConfig, PatchTSMixerModel

        if path is not None:
            path = checkpoint_directory(path, "patchtsmixer")
        settings = _config(
            PatchTSMixerConfig, "patchtsmixer", path, config, self.defaults
        )
        checkpoint_patch_length = settings.patch_length
        if path is None:
            settings.patch_length = patch_length
            settings.patch_stride = patch_length
            settings.context_length = patch_length * n_patches
            settings.num_patches = n_patches
            settings.num_input_channels = 1
            settings.mode = "common_channel"
        elif settings.num_patches != n_patches:
            raise ValueError(
                f"backbone 'patchtsmixer': the checkpoint at {path} mixes "
                f"{settings.num_patches} patches, but the forecaster cuts "
                f"{n_patches}; choose context_length, patch_length and "
                "patch_stride to match"
            )
        cut_layers(settings, "num_layers", n_layers, "patchtsmixer")
        model = load_model(PatchTSMixerModel, settings, path, pretrained)
        encoder = model.encoder
        self.hidden_size = int(settings.d_model)
        self.embedding = nn.Linear(patch_length, self.hidden_size)
        if path is not None and pretrained and checkpoint_patch_length == patch_length:
            _copy_linear(self.embedding, encoder.patcher)
        encoder.patcher = nn.Identity()
        self.path = path
        self.body = encoder

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        hidden = self.embedding(patches).unsqueeze(1)  # one channel
        return self.body(past_values=hidden).last_hidden_state[:, 0]


class _TimesFmPatchEmbedding(nn.Module):
    """TimesFM's input residual block: a patch and its (all-zero) padding
    mask in, one token out."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([patches, torch.zeros_like(patches)], dim=-1))


class _TimesFmBody(nn.Module):
    """TimesFM's decoder: frequency embedding, sinusoidal positions and
    causal transformer layers, on already embedded patches."""

    def __init__(self, model: nn.Module, freq: int):
        super().__init__()
        self.freq_emb = model.freq_emb
        self.layers = model.layers
        self.position_emb = getattr(model, "position_emb", None)
        self.freq = int(freq)

    def forward(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        batch, length, _ = inputs_embeds.shape
        hidden = inputs_embeds
        if self.position_emb is not None:
            hidden = hidden + self.position_emb(length).to(hidden.dtype)
        freq = torch.full((batch, 1), self.freq, device=hidden.device)
        hidden = hidden + self.freq_emb(freq)
        minimum = torch.finfo(hidden.dtype).min
        mask = torch.triu(
            torch.full((length, length), minimum, device=hidden.device), diagonal=1
        ).to(hidden.dtype)[None, None]
        paddings = torch.zeros(batch, length, device=hidden.device, dtype=hidden.dtype)
        for layer in self.layers:
            hidden = layer(hidden, attention_mask=mask, paddings=paddings)
        return hidden


class TimesFmBackbone(Backbone):
    """TimesFM (Das et al. 2024) from a local checkpoint directory.

    Parameters
    ----------
    path : str or Path
        a local TimesFM checkpoint in the transformers format
        (``TimesFmModelForPrediction`` or ``TimesFmModel``, e.g. a saved
        ``google/timesfm-2.0-500m-pytorch``). Required.
    pretrained : bool, default True
        ``False`` builds the checkpoint's architecture from random weights.
    n_layers : int, optional
        keep only the first ``n_layers`` decoder layers.
    freq : {0, 1, 2}, default 0
        TimesFM's frequency category: 0 for daily or finer, 1 for weekly and
        monthly, 2 for quarterly and coarser.

    The forecaster's ``patch_length`` must equal the checkpoint's (32 for
    the published models), and ``patch_stride=patch_length`` matches how
    TimesFM was trained (non-overlapping patches).
    """

    lora_target_modules = ["q_proj", "v_proj"]

    def __init__(
        self,
        *,
        patch_length: int,
        n_patches: int,
        path: str | Path | None = None,
        pretrained: bool = True,
        n_layers: int | None = None,
        freq: int = 0,
    ):
        super().__init__()
        from transformers import TimesFmConfig, TimesFmModel

        if path is None:
            raise ValueError(
                "backbone 'timesfm' needs backbone_kwargs={'path': <local TimesFM "
                "checkpoint directory>}; pricetune never downloads weights"
            )
        path = checkpoint_directory(path, "timesfm")
        settings = TimesFmConfig.from_pretrained(path, local_files_only=True)
        if settings.patch_length != patch_length:
            raise ValueError(
                f"backbone 'timesfm': the checkpoint at {path} reads patches of "
                f"{settings.patch_length} values; set the forecaster's "
                f"patch_length={settings.patch_length} (and patch_stride="
                f"{settings.patch_length}), got patch_length={patch_length}"
            )
        if int(freq) not in range(settings.freq_size):
            raise ValueError(
                f"backbone 'timesfm': freq must be in 0..{settings.freq_size - 1}, "
                f"got {freq}"
            )
        cut_layers(settings, "num_hidden_layers", n_layers, "timesfm")
        model = load_model(TimesFmModel, settings, path, pretrained)
        self.path = path
        self.hidden_size = int(settings.hidden_size)
        self.embedding = _TimesFmPatchEmbedding(model.input_ff_layer)
        self.body = _TimesFmBody(model, freq)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.body(self.embedding(patches))
