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
* **Chronos** (the original, T5-based): ``body`` is the checkpoint's T5
  encoder, fed through ``inputs_embeds``; ``embedding`` is a new
  ``Linear(patch_length, d_model)``, since Chronos embeds tokens (quantised
  values), not patches.
* **Chronos-Bolt**: ``embedding`` is the checkpoint's input residual block
  (patch values and an all-ones observed mask in), so ``patch_length`` must
  equal the checkpoint's ``input_patch_size``; ``body`` is its T5 encoder,
  with the ``[REG]`` token appended as Chronos-Bolt does.

Nothing is downloaded: checkpoints are read from local directories only,
through pricetune's public Hugging Face helpers
(:mod:`pricetune.components.huggingface`).
"""

from __future__ import annotations

import json
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


# --------------------------------------------------------------------------
# Chronos and Chronos-Bolt (Ansari et al. 2024), both T5-based
# --------------------------------------------------------------------------
_CHRONOS_ARCHITECTURES = {
    "T5ForConditionalGeneration": "chronos",
    "ChronosBoltModelForForecasting": "chronos-bolt",
}


def _chronos_checkpoint(path, name: str):
    """The checkpoint directory and its ``T5Config``, checked to be the kind
    of Chronos model backbone ``name`` reads."""
    from transformers import T5Config

    if path is None:
        raise ValueError(
            f"backbone {name!r} needs backbone_kwargs={{'path': <local "
            f"{'Chronos-Bolt' if name == 'chronos-bolt' else 'Chronos'} checkpoint "
            "directory>}; pricetune never downloads weights"
        )
    path = checkpoint_directory(path, name)
    raw = json.loads((path / "config.json").read_text())
    chronos = raw.get("chronos_config")
    if raw.get("model_type") != "t5" or not isinstance(chronos, dict):
        raise ValueError(
            f"backbone {name!r}: the checkpoint at {path} is not a Chronos "
            "checkpoint (its config.json needs model_type 't5' and a chronos_config)"
        )
    architecture = (raw.get("architectures") or [None])[0]
    if architecture is None:  # an old config: Bolt's reads patches
        kind = "chronos-bolt" if "input_patch_size" in chronos else "chronos"
    else:
        kind = _CHRONOS_ARCHITECTURES.get(architecture)
    if kind is None:
        raise ValueError(
            f"backbone {name!r}: the checkpoint at {path} is a {architecture}, not "
            "a Chronos (T5ForConditionalGeneration) or Chronos-Bolt "
            "(ChronosBoltModelForForecasting) checkpoint"
        )
    if kind != name:
        what = "a Chronos-Bolt" if kind == "chronos-bolt" else "an original Chronos"
        raise ValueError(
            f"backbone {name!r}: the checkpoint at {path} is {what} checkpoint "
            f"({architecture or 'by its chronos_config'}); use backbone {kind!r}"
        )
    return path, T5Config.from_pretrained(path, local_files_only=True)


def _chronos_encoder(settings, path, pretrained: bool, n_layers, name: str):
    """The checkpoint's T5 encoder (``T5EncoderModel``: the decoder and the
    rest are not loaded), cut to ``n_layers`` blocks, in float32."""
    from transformers import T5EncoderModel

    cut_layers(settings, "num_layers", n_layers, name)
    # a checkpoint saved in bfloat16 loads as such; the contract is float32
    return load_model(T5EncoderModel, settings, path, pretrained).float()


def _checkpoint_tensors(path: Path, prefix: str, name: str) -> dict:
    """The tensors whose names start with ``prefix`` in the checkpoint's
    weights (``model.safetensors``, sharded safetensors or
    ``pytorch_model.bin``), keyed without the prefix, in float32."""
    index = path / "model.safetensors.index.json"
    if (path / "model.safetensors").is_file():
        files = [path / "model.safetensors"]
    elif index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        files = sorted(
            {path / f for k, f in weight_map.items() if k.startswith(prefix)}
        )
    elif (path / "pytorch_model.bin").is_file():
        files = [path / "pytorch_model.bin"]
    else:
        raise FileNotFoundError(
            f"backbone {name!r}: the checkpoint at {path} has no weights "
            "(model.safetensors or pytorch_model.bin)"
        )
    tensors = {}
    for file in files:
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(file, framework="pt") as weights:
                for key in weights.keys():
                    if key.startswith(prefix):
                        tensors[key[len(prefix) :]] = weights.get_tensor(key)
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
            tensors.update(
                (key[len(prefix) :], value)
                for key, value in state.items()
                if key.startswith(prefix)
            )
    return {key: value.float() for key, value in tensors.items()}


class ChronosBackbone(Backbone):
    """The T5 encoder of an original Chronos checkpoint (Ansari et al. 2024).

    Parameters
    ----------
    path : str or Path
        a local Chronos checkpoint directory (``config.json`` with
        ``architectures: ["T5ForConditionalGeneration"]`` and a
        ``chronos_config``, and its weights), e.g. a saved
        ``amazon/chronos-t5-small``. Required.
    pretrained : bool, default True
        ``False`` builds the checkpoint's architecture from random weights.
    n_layers : int, optional
        keep only the first ``n_layers`` encoder blocks.

    Chronos reads a series as tokens, its values scaled and quantised into
    bins, so its token embedding cannot take real-valued patches: the
    ``embedding`` is a new ``Linear(patch_length, d_model)`` and the
    encoder (its relative positions included) reads what it makes, through
    ``inputs_embeds``. The decoder, which generates tokens, is not used.
    """

    position_embedding_names = ("relative_attention_bias",)
    lora_target_modules = ["q", "v"]

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
        path, settings = _chronos_checkpoint(path, "chronos")
        model = _chronos_encoder(settings, path, pretrained, n_layers, "chronos")
        self.path = path
        self.hidden_size = int(settings.d_model)
        # new: Chronos's token embedding (shared.weight) maps bin ids, not
        # real-valued patches, so it is of no use here and stays unused
        self.embedding = nn.Linear(patch_length, self.hidden_size)
        self.body = model

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.body(inputs_embeds=self.embedding(patches)).last_hidden_state


class _ChronosBoltPatchEmbedding(nn.Module):
    """Chronos-Bolt's ``input_patch_embedding`` (its ``ResidualBlock``, with
    the same parameter names): a patch and its all-ones observed mask in,
    concatenated in that order, one token out."""

    def __init__(
        self, patch_size: int, hidden: int, width: int, activation: str, dropout: float
    ):
        super().__init__()
        from transformers.activations import ACT2FN

        self.dropout = nn.Dropout(dropout)
        self.hidden_layer = nn.Linear(2 * patch_size, hidden)
        self.act = ACT2FN[activation]
        self.output_layer = nn.Linear(hidden, width)
        self.residual_layer = nn.Linear(2 * patch_size, width)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        # pricetune's patches are all observed: mask of ones
        inputs = torch.cat([patches, torch.ones_like(patches)], dim=-1)
        hidden = self.act(self.hidden_layer(inputs))
        return self.dropout(self.output_layer(hidden)) + self.residual_layer(inputs)


class ChronosBoltBackbone(Backbone):
    """The patch embedding and T5 encoder of a Chronos-Bolt checkpoint.

    Parameters
    ----------
    path : str or Path
        a local Chronos-Bolt checkpoint directory (``config.json`` with
        ``architectures: ["ChronosBoltModelForForecasting"]`` and a
        ``chronos_config``, and its weights), e.g. a saved
        ``amazon/chronos-bolt-small``. Required.
    pretrained : bool, default True
        ``False`` builds the checkpoint's architecture from random weights.
    n_layers : int, optional
        keep only the first ``n_layers`` encoder blocks.

    The ``embedding`` is the checkpoint's input residual block, fed each
    patch with an all-ones observed mask, as Chronos-Bolt feeds the patches
    of a series without missing values; so the forecaster's
    ``patch_length`` must equal the checkpoint's ``input_patch_size`` (16
    for the published models), and ``patch_stride=patch_length`` matches how
    it was trained. The ``body`` is the T5 encoder; with ``use_reg_token``
    the ``[REG]`` token is appended after the patches, as in Chronos-Bolt,
    and its output dropped. Chronos-Bolt's scaling is replaced by
    pricetune's normalisation, whose default standardises each window as
    Chronos-Bolt does (mean and population standard deviation); its decoder
    and output block are not used: pricetune's head forecasts.
    """

    position_embedding_names = ("relative_attention_bias",)
    lora_target_modules = ["q", "v"]

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
        path, settings = _chronos_checkpoint(path, "chronos-bolt")
        chronos = settings.chronos_config
        patch_size = int(chronos["input_patch_size"])
        if patch_length != patch_size:
            stride = chronos.get("input_patch_stride", patch_size)
            raise ValueError(
                f"backbone 'chronos-bolt': the checkpoint at {path} reads patches "
                f"of {patch_size} values; set the forecaster's patch_length="
                f"{patch_size} (and patch_stride={stride}), got patch_length="
                f"{patch_length}"
            )
        self.embedding = _ChronosBoltPatchEmbedding(
            patch_size,
            int(settings.d_ff),
            int(settings.d_model),
            settings.dense_act_fn,
            float(settings.dropout_rate),
        )
        if pretrained:
            self._load_embedding(path)
        else:
            self._init_embedding(float(settings.initializer_factor), patch_size)
        self.use_reg_token = bool(chronos.get("use_reg_token", False))
        # Chronos-Bolt sets reg_token_id = 1 (0 starts the decoder)
        reg_token_id = getattr(settings, "reg_token_id", None)
        self.reg_token_id = 1 if reg_token_id is None else int(reg_token_id)
        self.body = _chronos_encoder(
            settings, path, pretrained, n_layers, "chronos-bolt"
        )
        self.path = path
        self.hidden_size = int(settings.d_model)

    def _load_embedding(self, path: Path) -> None:
        tensors = _checkpoint_tensors(path, "input_patch_embedding.", "chronos-bolt")
        missing = sorted(set(self.embedding.state_dict()) - set(tensors))
        if missing:
            raise ValueError(
                f"backbone 'chronos-bolt': the checkpoint at {path} lacks "
                f"input_patch_embedding weights {missing}"
            )
        try:
            self.embedding.load_state_dict(tensors, strict=True)
        except RuntimeError as error:
            raise ValueError(
                f"backbone 'chronos-bolt': the checkpoint at {path} has an "
                f"input_patch_embedding that does not fit its config: {error}"
            ) from error

    def _init_embedding(self, factor: float, patch_size: int) -> None:
        """Chronos-Bolt's own initialisation of the residual block."""
        block = self.embedding
        with torch.no_grad():
            for layer, fan_in in [
                (block.hidden_layer, 2 * patch_size),
                (block.residual_layer, 2 * patch_size),
                (block.output_layer, block.output_layer.in_features),
            ]:
                layer.weight.normal_(0.0, factor * fan_in**-0.5)
                layer.bias.zero_()

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        hidden = self.embedding(patches)
        if not self.use_reg_token:
            return self.body(inputs_embeds=hidden).last_hidden_state
        tokens = self.body.get_input_embeddings().weight  # body may be wrapped
        reg = tokens[self.reg_token_id].to(hidden.dtype)
        hidden = torch.cat([hidden, reg.expand(hidden.shape[0], 1, -1)], dim=1)
        return self.body(inputs_embeds=hidden).last_hidden_state[:, :-1]
