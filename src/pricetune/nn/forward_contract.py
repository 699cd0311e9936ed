"""The component contract, enforced at fit: before training, one forward
pass on a few real windows checks what each component gives against
:mod:`pricetune.components.contract` (backbone: ``(batch, tokens,
hidden_size)``; head: ``(batch, horizon, n_outputs)``; floating point),
so that a plugin's mistake is reported with the component's name
and its distribution instead of as a matrix-shape error deep inside torch.
The opt-in test kit (:mod:`pricetune.testing`) checks far more; this is the
part every fit can afford.
"""

from __future__ import annotations

import torch


class ComponentOutputError(TypeError):
    """A backbone or head returned something the contract does not allow;
    the message names the component, its class and its distribution."""


def _origin(kind: str, component) -> str:
    """``"backbone 'name' (Class, from distribution 1.0)"`` for the registered
    component of ``component``'s class; the class path otherwise."""
    from pricetune.plugins import list_components

    cls = type(component)
    for info in list_components():
        if info.kind == kind and info.cls is cls:
            return (
                f"{kind} {info.name!r} ({cls.__qualname__}, from "
                f"{info.distribution} {info.version})"
            )
    return f"{kind} {cls.__module__}.{cls.__qualname__}"


def _check(kind, component, output, expected: tuple, what: str) -> None:
    if not isinstance(output, torch.Tensor):
        raise ComponentOutputError(
            f"{_origin(kind, component)} returned {type(output).__name__}, not a "
            f"tensor of shape {expected} ({what})"
        )
    if tuple(output.shape) != expected:
        raise ComponentOutputError(
            f"{_origin(kind, component)} returned shape {tuple(output.shape)}; "
            f"the contract is {expected} ({what})"
        )
    if not output.is_floating_point():
        raise ComponentOutputError(
            f"{_origin(kind, component)} returned dtype {output.dtype}; the "
            "contract is a floating-point tensor"
        )


def check_forward_contract(model, context: torch.Tensor, horizon: int) -> None:
    """Run ``model``'s backbone and head once on ``context`` (raw windows,
    ``(batch, context_length)``) and check their outputs' shapes and dtypes;
    raises :class:`ComponentOutputError` naming the component. ``model`` is
    a :class:`~pricetune.nn.model.PatchForecastModel`."""
    backbone, head = model.backbone, model.head
    batch = context.shape[0]
    with torch.no_grad():
        hidden = backbone(model.patches(context))
        tokens = getattr(backbone, "n_tokens", None) or model.n_patches
        _check(
            "backbone",
            backbone,
            hidden,
            (batch, tokens, backbone.hidden_size),
            "batch, tokens, hidden_size",
        )
        output = head(hidden)
        _check(
            "head",
            head,
            output,
            (batch, horizon, head.n_outputs),
            "batch, horizon, n_outputs",
        )
