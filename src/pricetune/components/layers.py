"""What the fine-tuning strategies share: finding a backbone's body and its
layers, and discriminative learning rates.

A strategy adapts a backbone's ``body`` (see
:class:`~pricetune.components.contract.Backbone`). :func:`transformer_layers`
and :func:`layer_parameters` find the body's layers (a transformer's blocks,
a torch LSTM's layers), :func:`is_norm_layer` tells its LayerNorms, and the
:class:`DiscriminativeLearningRates` mixin gives the body a learning rate of
its own. The built-in strategies (:mod:`pricetune.components.strategies`,
:mod:`pricetune.components.peft_strategies`) are built on them, and so can a
plugin's.
"""

from __future__ import annotations

import re
from collections import defaultdict

from torch import nn

__all__ = [
    "DiscriminativeLearningRates",
    "is_norm_layer",
    "layer_parameters",
    "transformer_layers",
]


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


# --------------------------------------------------------------------------
# the layers of a body
# --------------------------------------------------------------------------
# where Hugging Face models keep their blocks: BERT/RoBERTa, GPT-2, Llama-like
# bare models, and the same under a task model's attribute
_LAYER_LISTS = (
    "encoder.layer",
    "h",
    "layers",
    "encoder.layers",
    "decoder.layers",
    "transformer.h",
    "model.layers",
    "block",
)
_RNN_LAYER = re.compile(r"_l(\d+)(_reverse)?$")


def transformer_layers(body: nn.Module) -> nn.ModuleList | None:
    """The body's transformer layers (blocks), bottom first: the
    ``nn.ModuleList`` at a Hugging Face model's usual place (``encoder.layer``
    for BERT, ``h`` for GPT-2, ``layers``...), else the largest
    ``nn.ModuleList`` of modules of one type; ``None`` when there is none."""
    for path in _LAYER_LISTS:
        try:
            layers = body.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(layers, nn.ModuleList) and len(layers):
            return layers
    candidates = [
        module
        for module in body.modules()
        if isinstance(module, nn.ModuleList)
        and len(module)
        and len({type(layer) for layer in module}) == 1
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda m: sum(p.numel() for p in m.parameters()))


def layer_parameters(body: nn.Module) -> list[list[nn.Parameter]]:
    """The body's parameters layer by layer, bottom first: each transformer
    layer's (:func:`transformer_layers`), or each layer's of a torch
    ``LSTM``/``GRU``/``RNN`` (its ``*_l{k}`` weights). Parameters outside the
    layers are left out. Raises ``ValueError`` when no layers are found."""
    if isinstance(body, nn.RNNBase):
        by_layer: dict[int, list[nn.Parameter]] = defaultdict(list)
        for name, parameter in body.named_parameters():
            by_layer[int(_RNN_LAYER.search(name).group(1))].append(parameter)
        return [by_layer[index] for index in sorted(by_layer)]
    layers = transformer_layers(body)
    if layers is None:
        raise ValueError(
            f"cannot find the layers of {type(body).__name__}: no nn.ModuleList "
            "of layers (such as encoder.layer or h) and not a torch LSTM/GRU/RNN"
        )
    return [list(layer.parameters()) for layer in layers]


# --------------------------------------------------------------------------
# discriminative learning rates
# --------------------------------------------------------------------------
class DiscriminativeLearningRates:
    """Mixin for strategies: ``body_lr_factor`` scales the learning rate of
    the body's trainable parameters (pretrained weights, or the adapters
    inside the body) relative to the embedding, the head and everything else.

    ``body_lr_factor=0.1`` with ``learning_rate=1e-3`` trains the body at
    ``1e-4`` and the rest at ``1e-3`` (both follow the same schedule); the
    default 1 gives one group at ``learning_rate``.
    """

    body_lr_factor: float = 1.0

    def _set_body_lr_factor(self, factor: float) -> None:
        factor = float(factor)
        if not factor > 0:
            raise ValueError(f"body_lr_factor must be positive, got {factor}")
        self.body_lr_factor = factor

    def parameter_groups(
        self, model: nn.Module, learning_rate: float
    ) -> list[dict] | None:
        body = model.backbone.body
        if self.body_lr_factor == 1.0 or body is None:
            return None
        params = [p for p in body.parameters() if p.requires_grad]
        if not params:
            return None
        # the rest join a last group at learning_rate (see the contract)
        body_lr = learning_rate * self.body_lr_factor
        return [{"params": params, "lr": body_lr, "name": "body"}]
