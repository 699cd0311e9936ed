"""The fine-tuning strategies built on the ``peft`` library: ``lora``,
``adalora``, ``ia3`` and ``prefix`` (prefix and prompt tuning).

Each is a :class:`PeftStrategy`: the body is wrapped by
``peft.get_peft_model`` and only what ``peft`` adds trains (with the
backbone's embedding and the head, as in every strategy). ``peft`` is
imported when a strategy is applied, not when this module is imported.
"""

from __future__ import annotations

import warnings

from torch import nn

from pricetune.components.contract import Strategy
from pricetune.components.huggingface import max_positions
from pricetune.components.layers import (
    DiscriminativeLearningRates,
    _backbone_name,
    _require_body,
    _train_everything_but_body,
)


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
                "strategy_kwargs={'target_modules': [...]}, or choose a "
                "Hugging Face backbone such as backbone='minilm'"
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

        positions = max_positions(body.config)
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
