"""Built-in fine-tuning strategies: full, frozen, layernorm and LoRA.

In every strategy the backbone's patch embedding and the head train: both are
new for each task. The strategies differ in what they do with the backbone's
``body`` (the pretrained transformer, the LSTM...).
"""

from __future__ import annotations

import warnings

from torch import nn

from pricetune.components.contract import Strategy


def _backbone_name(model: nn.Module) -> str:
    return type(model.backbone).__name__


def _require_body(model: nn.Module, strategy: str) -> nn.Module:
    body = model.backbone.body
    if body is None:
        raise ValueError(
            f"strategy {strategy!r} adapts a backbone's body, but "
            f"{_backbone_name(model)} has none; use strategy 'full'"
        )
    return body


def _train_everything_but_body(model: nn.Module) -> None:
    model.requires_grad_(True)
    body = model.backbone.body
    if body is not None:
        body.requires_grad_(False)


def is_norm_layer(module: nn.Module) -> bool:
    """LayerNorm-like modules (torch's LayerNorm, RMSNorm, or a model's own)."""
    if isinstance(module, nn.LayerNorm | nn.RMSNorm):
        return True
    name = type(module).__name__.lower()
    return "layernorm" in name or "rmsnorm" in name


class FullFineTuning(Strategy):
    """Every parameter trains."""

    def apply(self, model: nn.Module) -> None:
        model.requires_grad_(True)


class FrozenBackbone(Strategy):
    """Linear probe: the backbone's body is frozen; embedding and head train."""

    def apply(self, model: nn.Module) -> None:
        _require_body(model, "frozen")
        _train_everything_but_body(model)


class LayerNormOnly(Strategy):
    """GPT4TS ("One Fits All"): of the body, only LayerNorms and position
    embeddings train; attention and feed-forward weights stay frozen."""

    def apply(self, model: nn.Module) -> None:
        body = _require_body(model, "layernorm")
        _train_everything_but_body(model)
        n_norm = 0
        for module in body.modules():
            if is_norm_layer(module):
                for parameter in module.parameters(recurse=False):
                    parameter.requires_grad_(True)
                    n_norm += 1
        if n_norm == 0:
            raise ValueError(
                f"strategy 'layernorm' needs LayerNorm layers in the backbone; "
                f"{_backbone_name(model)} has none"
            )
        markers = model.backbone.position_embedding_names
        for name, parameter in body.named_parameters():
            if any(marker in name for marker in markers):
                parameter.requires_grad_(True)


class LoRA(Strategy):
    """LoRA adapters on the backbone's body through ``peft``; the body's own
    weights are frozen.

    Parameters
    ----------
    r : int, default 8
        adapter rank.
    alpha : float, default 16
        LoRA scaling numerator (``lora_alpha``).
    dropout : float, default 0.0
    target_modules : list of str, optional
        default: the backbone's ``lora_target_modules``, else ``peft``'s
        choice for the Hugging Face model type (``query``/``value`` for
        BERT, ``c_attn`` for GPT-2).
    """

    def __init__(
        self,
        r: int = 8,
        alpha: float = 16,
        dropout: float = 0.0,
        target_modules: list[str] | None = None,
    ):
        self.r = int(r)
        self.alpha = alpha
        self.dropout = float(dropout)
        self.target_modules = target_modules

    def apply(self, model: nn.Module) -> None:
        from peft import LoraConfig, get_peft_model

        body = _require_body(model, "lora")
        targets = self.target_modules or model.backbone.lora_target_modules
        if targets is None and not hasattr(body, "config"):
            raise ValueError(
                f"strategy 'lora' needs target_modules for {_backbone_name(model)} "
                "(not a Hugging Face model); pass strategy_kwargs="
                "{'target_modules': [...]}"
            )
        from transformers.pytorch_utils import Conv1D

        config = LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=targets,
            # GPT-2 style Conv1D layers store their weight transposed
            fan_in_fan_out=any(isinstance(m, Conv1D) for m in body.modules()),
        )
        _train_everything_but_body(model)
        try:
            with warnings.catch_warnings():
                # peft asks transformers about gradient checkpointing through a
                # name transformers has deprecated; nothing for users to act on
                warnings.simplefilter("ignore", FutureWarning)
                model.backbone.body = get_peft_model(body, config)
        except ValueError as error:
            raise ValueError(
                f"strategy 'lora' cannot adapt {_backbone_name(model)}: {error}"
            ) from error
