"""Built-in fine-tuning strategies.

In every strategy the backbone's patch embedding and the head train: both are
new for each task. The strategies differ in what they do with the backbone's
``body`` (the pretrained transformer, the LSTM...):

* ``full``, ``frozen``, ``layernorm``: train all, none, or only the
  LayerNorms and position embeddings (GPT4TS) of the body;
* ``lora``, ``adalora``, ``ia3``, ``prefix``: ``peft`` methods, through
  :class:`PeftStrategy`: the body is wrapped by ``peft.get_peft_model`` and
  only what ``peft`` adds trains (defined in
  :mod:`pricetune.components.peft_strategies`, importable from here too);
* ``adapter``: bottleneck adapters after each transformer layer (``peft``
  has no bottleneck adapters; see :class:`BottleneckAdapters`);
* ``gradual``: gradual unfreezing, top layers first, through the
  ``on_epoch_start`` hook.

Every strategy that trains part of the body also takes ``body_lr_factor``
(:class:`DiscriminativeLearningRates`): the body's trainable parameters then
learn at ``learning_rate * body_lr_factor``, the rest at ``learning_rate``.
It and the helpers that find a body's layers are in
:mod:`pricetune.components.layers`.
"""

from __future__ import annotations

import torch
from torch import nn

from pricetune.components.contract import Strategy
from pricetune.components.layers import (
    DiscriminativeLearningRates,
    _backbone_name,
    _require_body,
    _train_everything_but_body,
    is_norm_layer,
    layer_parameters,
    transformer_layers,
)

# The peft strategies and the shared helpers live in their own modules now;
# they stay importable from here because pickles written by pricetune 0.1.0
# name these classes by their old path (pricetune.components.strategies.LoRA,
# ...), and so may plugins and user code.
from pricetune.components.peft_strategies import (
    IA3,
    PREFIX_MODES,
    AdaLoRA,
    LoRA,
    PeftStrategy,
    PrefixTuning,
)

__all__ = [
    "IA3",
    "PREFIX_MODES",
    "AdaLoRA",
    "BottleneckAdapter",
    "BottleneckAdapters",
    "DiscriminativeLearningRates",
    "FrozenBackbone",
    "FullFineTuning",
    "GradualUnfreezing",
    "LayerNormOnly",
    "LoRA",
    "PeftStrategy",
    "PrefixTuning",
    "is_norm_layer",
    "layer_parameters",
    "transformer_layers",
]


# --------------------------------------------------------------------------
# full, frozen, layernorm
# --------------------------------------------------------------------------
class FullFineTuning(DiscriminativeLearningRates, Strategy):
    """Every parameter trains.

    Parameters
    ----------
    body_lr_factor : float, default 1.0
        learning-rate factor of the body (:class:`DiscriminativeLearningRates`).
    """

    def __init__(self, *, body_lr_factor: float = 1.0):
        self._set_body_lr_factor(body_lr_factor)

    def apply(self, model: nn.Module) -> None:
        model.requires_grad_(True)


class FrozenBackbone(Strategy):
    """Linear probe: the backbone's body is frozen; embedding and head train."""

    def apply(self, model: nn.Module) -> None:
        _require_body(model, "frozen")
        _train_everything_but_body(model)


class LayerNormOnly(DiscriminativeLearningRates, Strategy):
    """GPT4TS ("One Fits All"): of the body, only LayerNorms and position
    embeddings train; attention and feed-forward weights stay frozen.

    Parameters
    ----------
    body_lr_factor : float, default 1.0
        learning-rate factor of the body (:class:`DiscriminativeLearningRates`).
    """

    def __init__(self, *, body_lr_factor: float = 1.0):
        self._set_body_lr_factor(body_lr_factor)

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
                f"{_backbone_name(model)} has none (a language model has them: "
                "backbone='minilm')"
            )
        markers = model.backbone.position_embedding_names
        for name, parameter in body.named_parameters():
            if any(marker in name for marker in markers):
                parameter.requires_grad_(True)


# --------------------------------------------------------------------------
# bottleneck adapters
# --------------------------------------------------------------------------
class BottleneckAdapter(nn.Module):
    """``h + up(dropout(activation(down(h))))``: a residual bottleneck
    (Houlsby et al. 2019). ``up`` starts at zero, so a new adapter is the
    identity and the pretrained model is unchanged until it trains."""

    def __init__(self, hidden_size: int, size: int, activation: str, dropout: float):
        from pricetune.components.heads import ACTIVATIONS

        super().__init__()
        self.down = nn.Linear(hidden_size, size)
        self.activation = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout)
        self.up = nn.Linear(size, hidden_size)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(self.dropout(self.activation(self.down(hidden))))


def _run_bottleneck_adapter(layer: nn.Module, args, output):
    """Forward hook of an adapted layer: its output through its adapter.
    A module-level function, so that the model still pickles and copies."""
    adapter = layer.bottleneck_adapter
    if isinstance(output, tuple):
        return (adapter(output[0]), *output[1:])
    return adapter(output)


class BottleneckAdapters(DiscriminativeLearningRates, Strategy):
    """Bottleneck adapters after each transformer layer; the body is frozen;
    the adapters, embedding and head train.

    ``peft`` has no bottleneck adapters, and the library that has them
    (``adapters``, AdapterHub) pins an older ``transformers`` than pricetune
    supports; so this small module is pricetune's own. Each layer (block) of
    the body (:func:`transformer_layers`) gets a :class:`BottleneckAdapter`
    as its sub-module ``bottleneck_adapter`` and a forward hook that passes
    the layer's output through it (the Pfeiffer placement, at the block's
    output). Needs a body with a list of layers: ``minilm``, ``hf``.

    Parameters
    ----------
    size : int, default 64
        the bottleneck width.
    activation : {"gelu", "relu", "silu", "tanh"}, default "gelu"
    dropout : float, default 0.0
        inside the adapters.
    body_lr_factor : float, default 1.0
        learning-rate factor of the adapters (:class:`DiscriminativeLearningRates`).
    """

    def __init__(
        self,
        size: int = 64,
        activation: str = "gelu",
        dropout: float = 0.0,
        *,
        body_lr_factor: float = 1.0,
    ):
        from pricetune.components.heads import ACTIVATIONS

        self.size = int(size)
        if self.size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        self.activation = activation
        self.dropout = float(dropout)
        self._set_body_lr_factor(body_lr_factor)

    def apply(self, model: nn.Module) -> None:
        body = _require_body(model, "adapter")
        layers = transformer_layers(body)
        if layers is None:
            raise ValueError(
                f"strategy 'adapter' puts adapters after each transformer layer, "
                f"but {_backbone_name(model)}'s body has no list of layers; use "
                "a transformer backbone ('minilm' or 'hf')"
            )
        _train_everything_but_body(model)
        for layer in layers:
            if hasattr(layer, "bottleneck_adapter"):
                raise ValueError("this model already has bottleneck adapters")
            layer.add_module(
                "bottleneck_adapter",
                BottleneckAdapter(
                    model.backbone.hidden_size, self.size, self.activation, self.dropout
                ),
            )
            layer.register_forward_hook(_run_bottleneck_adapter)


# --------------------------------------------------------------------------
# gradual unfreezing
# --------------------------------------------------------------------------
class GradualUnfreezing(DiscriminativeLearningRates, Strategy):
    """Gradual unfreezing (ULMFiT, Howard and Ruder 2018): the body's layers
    start frozen and unfreeze from the top, ``layers_per_epoch`` more at the
    start of each epoch; the embedding and the head always train.

    Stages, in the order they unfreeze: the body's top layer, the one below,
    ..., its bottom layer, then the body's parameters outside its layers
    (position embeddings, a final LayerNorm). In epoch ``e`` (from 1) the first
    ``initial_layers + layers_per_epoch * (e - 1)`` stages train. Layers are
    a transformer's blocks (:func:`transformer_layers`) or the layers of a
    torch LSTM/GRU body (:func:`layer_parameters`).

    The unfrozen set depends on the epoch only, so a run resumed from a
    checkpoint matches an uninterrupted one. Every parameter is trainable
    after :meth:`apply`, so the optimiser holds them all; a frozen one gets no
    gradient and is not updated.

    Parameters
    ----------
    layers_per_epoch : int, default 1
    initial_layers : int, default 0
        stages that train from the first epoch.
    body_lr_factor : float, default 1.0
        learning-rate factor of the body (:class:`DiscriminativeLearningRates`).
    """

    def __init__(
        self,
        layers_per_epoch: int = 1,
        initial_layers: int = 0,
        *,
        body_lr_factor: float = 1.0,
    ):
        self.layers_per_epoch = int(layers_per_epoch)
        self.initial_layers = int(initial_layers)
        if self.layers_per_epoch < 1 or self.initial_layers < 0:
            raise ValueError(
                "need layers_per_epoch >= 1 and initial_layers >= 0, got "
                f"{layers_per_epoch} and {initial_layers}"
            )
        self._set_body_lr_factor(body_lr_factor)

    @staticmethod
    def stages(body: nn.Module) -> list[list[nn.Parameter]]:
        """The body's parameters in the order they unfreeze (top layer
        first, the parameters outside the layers last)."""
        layers = layer_parameters(body)
        in_layers = {id(p) for layer in layers for p in layer}
        rest = [p for p in body.parameters() if id(p) not in in_layers]
        return layers[::-1] + ([rest] if rest else [])

    def n_unfrozen(self, epoch: int) -> int:
        """How many stages train in ``epoch`` (from 1), before capping at the
        number of stages."""
        return self.initial_layers + self.layers_per_epoch * (int(epoch) - 1)

    def apply(self, model: nn.Module) -> None:
        body = _require_body(model, "gradual")
        try:
            self.stages(body)
        except ValueError as error:
            raise ValueError(
                f"strategy 'gradual' unfreezes the body of "
                f"{_backbone_name(model)} layer by layer, but {error}"
            ) from error
        model.requires_grad_(True)

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        n_unfrozen = self.n_unfrozen(epoch)
        for index, stage in enumerate(self.stages(model.backbone.body)):
            for parameter in stage:
                parameter.requires_grad_(index < n_unfrozen)
