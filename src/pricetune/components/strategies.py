"""Built-in fine-tuning strategies.

In every strategy the backbone's patch embedding and the head train: both are
new for each task. The strategies differ in what they do with the backbone's
``body`` (the pretrained transformer, the LSTM...):

* ``full``, ``frozen``, ``layernorm``: train all, none, or only the
  LayerNorms and position embeddings (GPT4TS) of the body;
* ``lora``, ``adalora``, ``ia3``, ``prefix``: ``peft`` methods, through
  :class:`PeftStrategy`: the body is wrapped by ``peft.get_peft_model`` and
  only what ``peft`` adds trains;
* ``adapter``: bottleneck adapters after each transformer layer (``peft``
  has no bottleneck adapters; see :class:`BottleneckAdapters`);
* ``gradual``: gradual unfreezing, top layers first, through the
  ``on_epoch_start`` hook.

Every strategy that trains part of the body also takes ``body_lr_factor``
(:class:`DiscriminativeLearningRates`): the body's trainable parameters then
learn at ``learning_rate * body_lr_factor``, the rest at ``learning_rate``.
"""

from __future__ import annotations

import re
import warnings
from collections import defaultdict

import torch
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
                f"{_backbone_name(model)} has none"
            )
        markers = model.backbone.position_embedding_names
        for name, parameter in body.named_parameters():
            if any(marker in name for marker in markers):
                parameter.requires_grad_(True)


# --------------------------------------------------------------------------
# peft methods
# --------------------------------------------------------------------------
def _is_hugging_face(body: nn.Module) -> bool:
    return hasattr(body, "config")


def _has_conv1d(body: nn.Module) -> bool:
    """GPT-2 style ``Conv1D`` layers store their weight transposed."""
    from transformers.pytorch_utils import Conv1D

    return any(isinstance(module, Conv1D) for module in body.modules())


class PeftStrategy(DiscriminativeLearningRates, Strategy):
    """Base of the strategies that wrap the body with ``peft.get_peft_model``:
    the body's own weights are frozen, what ``peft`` adds trains, and so do
    the embedding and the head. A subclass sets :attr:`name` and builds the
    ``peft`` config in :meth:`peft_config`."""

    name: str = "peft"

    def peft_config(self, model: nn.Module, body: nn.Module):
        """The ``peft`` config for ``body``; raise ``ValueError`` naming the
        backbone when the method does not apply to it."""
        raise NotImplementedError

    def _targets(self, model, body, given, default=None):
        """``given`` target modules, else ``default``, else ``None`` (peft's
        choice for the model type) for a Hugging Face body."""
        targets = given or default
        if targets is None and not _is_hugging_face(body):
            raise ValueError(
                f"strategy {self.name!r} needs target_modules for "
                f"{_backbone_name(model)} (not a Hugging Face model); pass "
                "strategy_kwargs={'target_modules': [...]}"
            )
        return targets

    def apply(self, model: nn.Module) -> None:
        from peft import get_peft_model

        body = _require_body(model, self.name)
        config = self.peft_config(model, body)
        _train_everything_but_body(model)
        try:
            with warnings.catch_warnings():
                # peft asks transformers about gradient checkpointing through a
                # name transformers has deprecated; nothing for users to act on
                warnings.simplefilter("ignore", FutureWarning)
                model.backbone.body = get_peft_model(body, config)
        except ValueError as error:
            raise ValueError(
                f"strategy {self.name!r} cannot adapt {_backbone_name(model)}: {error}"
            ) from error


class LoRA(PeftStrategy):
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
    body_lr_factor : float, default 1.0
        learning-rate factor of the adapters (:class:`DiscriminativeLearningRates`).
    """

    name = "lora"

    def __init__(
        self,
        r: int = 8,
        alpha: float = 16,
        dropout: float = 0.0,
        target_modules: list[str] | None = None,
        *,
        body_lr_factor: float = 1.0,
    ):
        self.r = int(r)
        self.alpha = alpha
        self.dropout = float(dropout)
        self.target_modules = target_modules
        self._set_body_lr_factor(body_lr_factor)

    def _lora_options(self, model: nn.Module, body: nn.Module) -> dict:
        """What LoRA and AdaLoRA configs share."""
        targets = self._targets(
            model, body, self.target_modules, model.backbone.lora_target_modules
        )
        return {
            "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "target_modules": targets,
            "fan_in_fan_out": _has_conv1d(body),
        }

    def peft_config(self, model: nn.Module, body: nn.Module):
        from peft import LoraConfig

        return LoraConfig(r=self.r, **self._lora_options(model, body))


class AdaLoRA(LoRA):
    """AdaLoRA (Zhang et al. 2023) through ``peft``: LoRA adapters in SVD
    form whose ranks are re-allocated during training, from ``init_r`` per
    matrix down to an average of ``target_r``, to the matrices that matter.

    The run's step count reaches ``peft`` in ``on_train_begin``; after every
    optimiser step ``on_optimizer_step`` calls ``peft``'s
    ``update_and_allocate``, as ``peft`` prescribes (after the step, before
    the gradients are cleared). The first ``init_fraction`` of the steps keep
    the initial ranks, the ranks then shrink, and the last
    ``final_fraction`` train at the final ranks. The rank allocator's
    importance estimates are not in checkpoints: a resumed run re-estimates
    them. AdaLoRA's orthogonality regulariser, ``orth_reg_weight`` times the
    mean Frobenius distance of each ``P P^T`` (``lora_A``) and ``Q^T Q``
    (``lora_B``) from the identity, is added to every training batch's loss
    through :meth:`loss_penalty`, as ``peft``'s own forward pass adds it
    when a model computes its loss.

    Parameters
    ----------
    init_r : int, default 12
        initial rank of each adapted matrix.
    target_r : int, default 8
        average rank at the end.
    init_fraction : float, default 0.1
    final_fraction : float, default 0.2
        fractions of the run's optimiser steps before rank reduction starts
        and after it ends (``peft``'s ``tinit`` and ``tfinal``).
    delta_t : int, default 1
        optimiser steps between two re-allocations (``deltaT``).
    orth_reg_weight : float, default 0.5
        weight of the orthogonality regulariser (``peft``'s default); 0
        turns it off.
    alpha, dropout, target_modules, body_lr_factor
        as for :class:`LoRA`.
    """

    name = "adalora"

    def __init__(
        self,
        init_r: int = 12,
        target_r: int = 8,
        alpha: float = 16,
        dropout: float = 0.0,
        target_modules: list[str] | None = None,
        *,
        init_fraction: float = 0.1,
        final_fraction: float = 0.2,
        delta_t: int = 1,
        orth_reg_weight: float = 0.5,
        body_lr_factor: float = 1.0,
    ):
        super().__init__(
            alpha=alpha,
            dropout=dropout,
            target_modules=target_modules,
            body_lr_factor=body_lr_factor,
        )
        self.init_r = int(init_r)
        self.target_r = int(target_r)
        if not 1 <= self.target_r <= self.init_r:
            raise ValueError(
                f"need 1 <= target_r <= init_r, got target_r={target_r}, "
                f"init_r={init_r}"
            )
        self.init_fraction = float(init_fraction)
        self.final_fraction = float(final_fraction)
        if (
            min(self.init_fraction, self.final_fraction) < 0
            or self.init_fraction + self.final_fraction >= 1
        ):
            raise ValueError(
                "init_fraction and final_fraction must be non-negative with a sum "
                f"below 1, got {init_fraction} and {final_fraction}"
            )
        self.delta_t = int(delta_t)
        self.orth_reg_weight = float(orth_reg_weight)
        if self.orth_reg_weight < 0:
            raise ValueError(
                f"orth_reg_weight must not be negative, got {orth_reg_weight}"
            )

    def peft_config(self, model: nn.Module, body: nn.Module):
        from peft import AdaLoraConfig

        return AdaLoraConfig(
            init_r=self.init_r,
            target_r=self.target_r,
            deltaT=self.delta_t,
            # the real schedule is set in on_train_begin, once the number of
            # steps is known
            total_step=1,
            **self._lora_options(model, body),
        )

    @staticmethod
    def _adalora_model(model: nn.Module):
        return model.backbone.body.base_model  # peft's AdaLoraModel

    def on_train_begin(self, model: nn.Module, total_steps: int) -> None:
        adalora = self._adalora_model(model)
        config = adalora.peft_config[adalora.trainable_adapter_name]
        total_steps = max(1, int(total_steps))
        config.total_step = total_steps
        config.tinit = int(self.init_fraction * total_steps)
        config.tfinal = int(self.final_fraction * total_steps)
        adalora.rankallocator.set_total_step(total_steps)
        adalora.rankallocator.reset_ipt()

    def on_optimizer_step(self, model: nn.Module, step: int) -> None:
        self._adalora_model(model).update_and_allocate(step)

    def loss_penalty(self, model: nn.Module):
        if not self.orth_reg_weight:
            return None
        import torch

        adalora = self._adalora_model(model)
        adapter = adalora.trainable_adapter_name
        distances = []
        for name, weight in adalora.model.named_parameters():
            if adapter not in name or not ("lora_A" in name or "lora_B" in name):
                continue
            gram = weight @ weight.T if "lora_A" in name else weight.T @ weight
            identity = torch.eye(*gram.shape, device=gram.device, dtype=gram.dtype)
            distances.append(torch.linalg.matrix_norm(gram - identity))
        if not distances:
            return None
        return self.orth_reg_weight * torch.stack(distances).mean()


class IA3(PeftStrategy):
    """(IA)^3 (Liu et al. 2022) through ``peft``: learned vectors rescale the
    body's keys, values and feed-forward activations; the body's weights are
    frozen.

    Parameters
    ----------
    target_modules : list of str, optional
        default: ``peft``'s choice for the Hugging Face model type (``key``,
        ``value``, ``output.dense`` for BERT; ``c_attn``, ``mlp.c_proj`` for
        GPT-2). Required for other bodies.
    feedforward_modules : list of str, optional
        which of ``target_modules`` are feed-forward layers (their input is
        rescaled, not their output); default ``peft``'s choice.
    body_lr_factor : float, default 1.0
        learning-rate factor of the vectors (:class:`DiscriminativeLearningRates`).
    """

    name = "ia3"

    def __init__(
        self,
        target_modules: list[str] | None = None,
        feedforward_modules: list[str] | None = None,
        *,
        body_lr_factor: float = 1.0,
    ):
        self.target_modules = target_modules
        self.feedforward_modules = feedforward_modules
        self._set_body_lr_factor(body_lr_factor)

    def peft_config(self, model: nn.Module, body: nn.Module):
        from peft import IA3Config

        targets = self._targets(model, body, self.target_modules)
        if self.feedforward_modules is None and not _is_hugging_face(body):
            raise ValueError(
                f"strategy 'ia3' needs feedforward_modules for "
                f"{_backbone_name(model)} (not a Hugging Face model); pass "
                "strategy_kwargs={'feedforward_modules': [...]} (may be [])"
            )
        return IA3Config(
            target_modules=targets,
            feedforward_modules=self.feedforward_modules,
            fan_in_fan_out=_has_conv1d(body),
        )


PREFIX_MODES = ("prefix", "prompt")


class PrefixTuning(PeftStrategy):
    """Prefix tuning (Li and Liang 2021) or prompt tuning (Lester et al.
    2021) through ``peft``: learned virtual tokens; the body is frozen.

    * ``mode="prefix"``: a learned key and value prefix in every attention
      layer (``peft``'s ``PrefixTuningConfig``, passed to the model as
      ``past_key_values``).
    * ``mode="prompt"``: learned embeddings put before the patch embeddings
      (``PromptTuningConfig``, random initialisation); the backbone returns
      the states of the patches only.

    Either needs a Hugging Face transformer backbone: the built-in ``minilm``
    and ``hf`` (BERT-, RoBERTa-, GPT-2-like bodies). ``lstm``, ``gru`` and
    ``none`` raise ``ValueError``. The virtual tokens take positions too:
    ``n_patches + num_virtual_tokens`` must fit the model's positions.

    Parameters
    ----------
    num_virtual_tokens : int, default 8
    mode : {"prefix", "prompt"}, default "prefix"
    body_lr_factor : float, default 1.0
        learning-rate factor of the virtual tokens
        (:class:`DiscriminativeLearningRates`).
    """

    name = "prefix"

    def __init__(
        self,
        num_virtual_tokens: int = 8,
        mode: str = "prefix",
        *,
        body_lr_factor: float = 1.0,
    ):
        if mode not in PREFIX_MODES:
            raise ValueError(f"mode must be one of {PREFIX_MODES}, got {mode!r}")
        self.num_virtual_tokens = int(num_virtual_tokens)
        if self.num_virtual_tokens < 1:
            raise ValueError(
                f"num_virtual_tokens must be at least 1, got {num_virtual_tokens}"
            )
        self.mode = mode
        self._set_body_lr_factor(body_lr_factor)

    def apply(self, model: nn.Module) -> None:
        from pricetune.components.language_model import HuggingFaceBackbone

        if not isinstance(model.backbone, HuggingFaceBackbone):
            raise ValueError(
                f"strategy 'prefix' needs a Hugging Face transformer backbone "
                f"('minilm' or 'hf'); {_backbone_name(model)} is not one"
            )
        super().apply(model)

    def peft_config(self, model: nn.Module, body: nn.Module):
        from peft import PrefixTuningConfig, PromptTuningConfig, TaskType

        from pricetune.components.language_model import _max_positions

        positions = _max_positions(body.config)
        needed = model.n_patches + self.num_virtual_tokens
        if positions is not None and needed > positions:
            raise ValueError(
                f"strategy 'prefix': {model.n_patches} patches and "
                f"{self.num_virtual_tokens} virtual tokens exceed the {positions} "
                f"positions of {_backbone_name(model)}; lower num_virtual_tokens "
                "or the number of patches"
            )
        # FEATURE_EXTRACTION: peft's wrapper for a bare model, which adds the
        # virtual tokens in its forward
        if self.mode == "prefix":
            return PrefixTuningConfig(
                task_type=TaskType.FEATURE_EXTRACTION,
                num_virtual_tokens=self.num_virtual_tokens,
            )
        return PromptTuningConfig(
            task_type=TaskType.FEATURE_EXTRACTION,
            num_virtual_tokens=self.num_virtual_tokens,
            prompt_tuning_init="RANDOM",
        )


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
