"""The contract between the forecaster and its components: backbones, heads
and strategies, which build the model, and augmentations of its training
windows.

The forecaster assembles a :class:`~pricetune.nn.model.PatchForecastModel`::

    context window (batch, context_length)            float32, raw prices
      -> instance normalisation (per window: mean, std)
      -> patches     (batch, n_patches, patch_length)
      -> Backbone -> (batch, n_patches, hidden_size)
      -> Head     -> (batch, horizon, n_outputs)      normalised units
      -> de-normalisation

then hands it to a Strategy, which chooses the trainable parameters.

All tensors are ``torch.float32`` on the model's device (autocast may run the
inside in bfloat16 on a GPU; outputs are cast back to float32). Components are
built with keyword arguments only: the forecaster's structural arguments
listed below plus the user's ``backbone_kwargs`` / ``head_kwargs`` /
``strategy_kwargs``. Unknown keyword arguments must raise ``TypeError`` so that
typos are caught.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import nn


class Backbone(nn.Module):
    """Maps patches of the normalised series to hidden states.

    Constructor keywords passed by the forecaster: ``patch_length`` (int) and
    ``n_patches`` (int); anything else comes from ``backbone_kwargs``.

    Required attributes
    -------------------
    hidden_size : int
        size of the last dimension of :meth:`forward`'s output.
    embedding : nn.Module or None
        the input layer mapping patches to the body's width. Strategies keep
        it trainable: it is new for every task.
    body : nn.Module or None
        the network a strategy freezes or adapts (the pretrained transformer,
        the LSTM...). ``None`` when there is nothing to adapt.
    position_embedding_names : tuple of str
        substrings of parameter names inside ``body`` that hold position
        embeddings (trained by the ``layernorm`` strategy, as in GPT4TS).
    lora_target_modules : list of str or None
        module names for LoRA adapters; ``None`` lets ``peft`` choose from the
        model type of a Hugging Face body.

    Optional attributes
    -------------------
    reads_series : bool (class attribute), default False
        ``True``: the forecaster also passes ``patch_stride`` to the
        constructor, for a backbone that puts the window back together from
        the patches (a time-series foundation model reading the series).
    n_tokens : int or None, default None
        the length of :meth:`forward`'s second axis when it is not
        ``n_patches`` (a backbone that ends in its own pretrained forecast);
        the head is then built with ``n_patches=n_tokens``.
    """

    hidden_size: int
    position_embedding_names: tuple[str, ...] = ()
    lora_target_modules: list[str] | None = None
    reads_series: bool = False
    n_tokens: int | None = None

    def __init__(self) -> None:
        super().__init__()
        # instance attributes: nn.Module keeps sub-modules in its own registry,
        # which a class-level default would shadow
        self.embedding: nn.Module | None = None
        self.body: nn.Module | None = None

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """``(batch, n_patches, patch_length)`` -> ``(batch, n_patches, hidden)``."""
        raise NotImplementedError


class Head(nn.Module):
    """Maps hidden states to the forecast and defines the training loss.

    Constructor keywords passed by the forecaster: ``hidden_size``,
    ``n_patches`` and ``horizon`` (ints); anything else from ``head_kwargs``.

    Required attributes
    -------------------
    n_outputs : int
        values per forecast step of :meth:`forward` (1 for a point head).
    quantiles : tuple of float or None
        the quantile levels of :meth:`to_quantiles`' outputs, strictly
        increasing in (0, 1), for a probabilistic head; ``None`` for a point
        head. Quantiles must not cross (non-decreasing along the last axis).
    probabilistic : bool (class attribute)
        ``True`` when instances have ``quantiles``; read before the head is
        built (through :meth:`gives_quantiles`), to tell sktime whether the
        forecaster gives intervals.

    A head whose :meth:`forward` gives the forecast values themselves (a
    point or a quantile head) needs only :meth:`forward` and :meth:`loss`. A
    head that outputs something else, such as a distribution's parameters,
    also overrides :meth:`to_quantiles` (parameters to quantiles) and
    :meth:`shift` (how a covariate effect moves its outputs).
    """

    n_outputs: int = 1
    quantiles: tuple[float, ...] | None = None
    probabilistic: bool = False

    @classmethod
    def gives_quantiles(cls, head_kwargs: dict) -> bool:
        """Whether a head built with ``head_kwargs`` will have quantiles
        (asked before it is built). By default :attr:`probabilistic`; a head
        whose options decide (``quantiles=None``) overrides this."""
        return bool(cls.probabilistic)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(batch, n_patches, hidden_size)`` -> ``(batch, horizon, n_outputs)``."""
        raise NotImplementedError

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of ``prediction`` (``forward``'s output) against
        ``target`` of shape ``(batch, horizon)``, both in normalised units."""
        raise NotImplementedError

    def to_quantiles(self, prediction: torch.Tensor) -> torch.Tensor:
        """``forward``'s output -> the forecast values ``(batch, horizon,
        len(quantiles))`` at the levels :attr:`quantiles` (``(batch,
        horizon, 1)`` for a point head), in normalised units. By default the
        outputs are those values already."""
        return prediction

    def shift(self, prediction: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """``forward``'s output moved by ``offset`` ``(batch, horizon)`` in
        normalised units (a covariate effect). By default every output moves
        by the offset, which keeps quantiles in order."""
        return prediction + offset.unsqueeze(-1)


class Strategy(ABC):
    """Chooses what trains. Constructor keywords come from ``strategy_kwargs``.

    Only :meth:`apply` is required. The training loop also calls the optional
    hooks below, whose defaults do nothing, so a strategy can change the
    optimiser's parameter groups (discriminative learning rates), unfreeze
    parameters as training goes on (gradual unfreezing), add a penalty to the
    training loss, or act after each optimiser step (AdaLoRA's rank
    re-allocation). The optimiser holds every
    parameter that is trainable after :meth:`apply`; one whose
    ``requires_grad`` a hook turns off later gets no gradient and is skipped.
    """

    @abstractmethod
    def apply(self, model: nn.Module) -> None:
        """Set ``requires_grad`` on ``model``'s parameters, wrapping
        ``model.backbone.body`` in place if needed (as PEFT does).

        ``model`` has ``backbone`` (a :class:`Backbone`) and ``head`` (a
        :class:`Head`). Called once, after the model is built and before the
        optimiser is created. Raise ``ValueError`` naming the backbone when
        the strategy cannot apply to it.
        """

    def parameter_groups(
        self, model: nn.Module, learning_rate: float
    ) -> list[dict] | None:
        """Optimiser parameter groups, as ``torch.optim`` takes them (dicts
        with ``"params"`` and optionally ``"lr"``), or ``None`` for one group
        of every trainable parameter at ``learning_rate``.

        Trainable parameters left out of every group join a last group at
        ``learning_rate``; a parameter may appear in one group only. The
        learning-rate schedule scales every group's ``lr`` alike.
        """
        return None

    def on_train_begin(self, model: nn.Module, total_steps: int) -> None:
        """Called once before the first epoch of a (possibly resumed) run,
        with the number of optimiser steps the whole run would take."""
        return None  # optional hook

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        """Called before each training epoch (``epoch`` counts from 1, and
        continues from the checkpoint in a resumed run). Must depend on
        ``epoch`` only, so that a resumed run matches an uninterrupted one."""
        return None  # optional hook

    def loss_penalty(self, model: nn.Module) -> torch.Tensor | None:
        """A term added to each training batch's loss (a regulariser of the
        parameters the strategy adds, such as AdaLoRA's orthogonality
        penalty), or ``None``. Validation losses do not include it."""
        return None

    def on_optimizer_step(self, model: nn.Module, step: int) -> None:
        """Called after each optimiser step (``step`` counts from 1), before
        the gradients are cleared."""
        return None  # optional hook


class Augmentation(ABC):
    """Transforms a batch of training windows: ``(context, target) ->
    (context, target)``.

    Constructor keywords come from the estimators' ``augmentations``
    parameter (``("name", {...})``). ``context`` is ``(batch,
    context_length)`` and ``target`` ``(batch, horizon)``: float32 raw
    values (before normalisation) on the training device. Return new
    tensors of the same shapes, dtype and device; never modify the inputs in
    place. Draw randomness from torch's default generators (``torch.rand(...,
    device=context.device)``), which the estimators seed, so fits stay
    reproducible. The trainer applies augmentations to training batches
    only, never to validation or prediction inputs.

    ``keeps_direction`` (class attribute, default ``False``): ``True`` when
    the augmentation never changes the direction (sign) of a one-step move
    of the window, the move from the context's last value to the first
    target included. The direction classifier, whose label is that move's
    direction, accepts only such augmentations.
    """

    keeps_direction: bool = False

    @abstractmethod
    def __call__(
        self, context: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({settings})"


def check_quantile_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """Validate quantile levels: at least two, strictly increasing in (0, 1)."""
    levels = tuple(float(level) for level in levels)
    if len(levels) < 2:
        raise ValueError(f"need at least two quantile levels, got {levels}")
    if any(not 0.0 < level < 1.0 for level in levels):
        raise ValueError(f"quantile levels must lie in (0, 1), got {levels}")
    if any(b <= a for a, b in zip(levels, levels[1:], strict=False)):
        raise ValueError(f"quantile levels must be strictly increasing, got {levels}")
    return levels
