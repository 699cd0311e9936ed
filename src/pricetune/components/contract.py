"""The contract between the forecaster and its three kinds of components.

The forecaster assembles a :class:`~pricetune.model.PatchForecastModel`::

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
    """

    hidden_size: int
    position_embedding_names: tuple[str, ...] = ()
    lora_target_modules: list[str] | None = None

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
        values per forecast step (1 for a point head).
    quantiles : tuple of float or None
        the quantile level of each output, strictly increasing in (0, 1), for
        a probabilistic head; ``None`` for a point head. Outputs of a quantile
        head must not cross (non-decreasing along the last axis).
    probabilistic : bool (class attribute)
        ``True`` when instances have ``quantiles``; read before the head is
        built, to tell sktime whether the forecaster gives intervals.
    """

    n_outputs: int = 1
    quantiles: tuple[float, ...] | None = None
    probabilistic: bool = False

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(batch, n_patches, hidden_size)`` -> ``(batch, horizon, n_outputs)``."""
        raise NotImplementedError

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of ``prediction`` (``forward``'s output) against
        ``target`` of shape ``(batch, horizon)``, both in normalised units."""
        raise NotImplementedError


class Strategy(ABC):
    """Chooses what trains. Constructor keywords come from ``strategy_kwargs``."""

    @abstractmethod
    def apply(self, model: nn.Module) -> None:
        """Set ``requires_grad`` on ``model``'s parameters, wrapping
        ``model.backbone.body`` in place if needed (as PEFT does).

        ``model`` has ``backbone`` (a :class:`Backbone`) and ``head`` (a
        :class:`Head`). Called once, after the model is built and before the
        optimiser is created. Raise ``ValueError`` naming the backbone when
        the strategy cannot apply to it.
        """


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
