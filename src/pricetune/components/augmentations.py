"""Augmentations of training windows.

An augmentation transforms a batch of training windows, in raw units and on
the training device, before the model normalises them. The trainer applies
augmentations to **training batches only**: validation windows and the
windows ``predict`` reads are never augmented.

Strengths are relative to each window's *typical move*, the mean absolute
one-step change of its context (the scale of ``normalization="last"``), so
one setting means the same on a $2 gas price and on a $2,000 gold price.

Built-in augmentations (registered as plugins, like every component),
chosen by name in the estimators' ``augmentations`` parameter:

``jitter(sigma=0.1, p=0.5)``
    Gaussian noise of ``sigma`` typical moves on the context (the targets
    stay clean): the model learns not to chase single noisy prints.
``scaling(sigma=0.1, p=0.5)``
    multiplies context and targets by one factor drawn around 1. Per-window
    normalisation undoes a common factor, so with pricetune's own models it
    changes the normalisation floor only; it is here for plugin models that
    see raw levels.
``magnitude_warp(sigma=0.2, knots=4, p=0.5)``
    multiplies the one-step changes of the whole window (context and
    targets) by a smooth random curve around 1 (at least 0.05) and rebuilds
    the prices from the window's first value: local volatility changes, the
    direction of every move does not.
``window_slice(ratio=0.9, p=0.5)``
    takes a random slice of ``ratio`` of the whole window and stretches it
    back to full length by linear interpolation: the same path, a little
    slower.

``p`` is the share of windows of a batch each augmentation touches.
Randomness comes from torch's generator, which the estimators seed from
``random_state``, so augmented fits stay reproducible on the CPU.

Custom augmentations subclass
:class:`~pricetune.components.contract.Augmentation`; pass instances to the
estimators, or register the class under a name with a plugin's
``register_augmentations`` hook.
"""

from __future__ import annotations

import torch

from pricetune.components.contract import Augmentation


def typical_move(context: torch.Tensor) -> torch.Tensor:
    """Per-window mean absolute one-step change, ``(batch, 1)``, floored like
    the model's normalisation scale."""
    move = context.diff(dim=1).abs().mean(dim=1, keepdim=True)
    floor = 1e-6 * (context[:, -1:].abs() + 1.0)
    return torch.maximum(move, floor)


def _chosen(batch: int, p: float, device) -> torch.Tensor:
    """``(batch, 1)`` boolean mask of the windows an augmentation touches."""
    return (
        (torch.rand(batch, 1, device=device) < p)
        if p < 1
        else (torch.ones(batch, 1, dtype=torch.bool, device=device))
    )


def _check_probability(p: float) -> float:
    p = float(p)
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must be in (0, 1], got {p}")
    return p


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


class Jitter(Augmentation):
    def __init__(self, sigma: float = 0.1, p: float = 0.5):
        self.sigma = _check_positive("sigma", sigma)
        self.p = _check_probability(p)

    def __call__(self, context, target):
        noise = torch.randn_like(context) * self.sigma * typical_move(context)
        mask = _chosen(len(context), self.p, context.device)
        return context + noise * mask, target


class Scaling(Augmentation):
    keeps_direction = True  # one positive factor for the whole window

    def __init__(self, sigma: float = 0.1, p: float = 0.5):
        self.sigma = _check_positive("sigma", sigma)
        self.p = _check_probability(p)

    def __call__(self, context, target):
        factor = 1.0 + self.sigma * torch.randn(len(context), 1, device=context.device)
        factor = factor.clamp(min=0.1)
        factor = torch.where(
            _chosen(len(context), self.p, context.device),
            factor,
            torch.ones_like(factor),
        )
        return context * factor, target * factor


def _smooth_curve(batch: int, length: int, knots: int, sigma: float, device):
    """``(batch, length)`` random curves around 1, linear between ``knots + 2``
    evenly spaced random points."""
    points = 1.0 + sigma * torch.randn(batch, 1, knots + 2, device=device)
    curve = torch.nn.functional.interpolate(
        points, size=length, mode="linear", align_corners=True
    )
    return curve[:, 0]


class MagnitudeWarp(Augmentation):
    # every one-step change is multiplied by a positive factor
    keeps_direction = True

    def __init__(self, sigma: float = 0.2, knots: int = 4, p: float = 0.5):
        self.sigma = _check_positive("sigma", sigma)
        self.knots = int(knots)
        if self.knots < 1:
            raise ValueError(f"knots must be at least 1, got {knots}")
        self.p = _check_probability(p)

    def __call__(self, context, target):
        window = torch.cat([context, target], dim=1)
        changes = window.diff(dim=1)
        curve = _smooth_curve(
            len(window), changes.shape[1], self.knots, self.sigma, window.device
        ).clamp(min=0.05)
        warped = torch.cat(
            [window[:, :1], window[:, :1] + (changes * curve).cumsum(dim=1)], dim=1
        )
        warped = torch.where(
            _chosen(len(window), self.p, window.device), warped, window
        )
        length = context.shape[1]
        return warped[:, :length], warped[:, length:]


class WindowSlice(Augmentation):
    def __init__(self, ratio: float = 0.9, p: float = 0.5):
        self.ratio = float(ratio)
        if not 0.0 < self.ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {ratio}")
        self.p = _check_probability(p)

    def __call__(self, context, target):
        window = torch.cat([context, target], dim=1)
        batch, width = window.shape
        span = self.ratio * (width - 1)
        start = torch.rand(batch, 1, device=window.device) * (width - 1 - span)
        # positions of the slice, stretched over the full width
        positions = start + torch.linspace(0, span, width, device=window.device)
        left = positions.floor().long().clamp(max=width - 2)
        weight = positions - left
        sliced = (1 - weight) * window.gather(1, left) + weight * window.gather(
            1, left + 1
        )
        sliced = torch.where(_chosen(batch, self.p, window.device), sliced, window)
        length = context.shape[1]
        return sliced[:, :length], sliced[:, length:]


def build_augmentations(spec) -> list[Augmentation]:
    """The estimators' ``augmentations`` parameter as augmentation objects.

    ``spec`` is ``None``; a name; an :class:`Augmentation`; a list of names,
    ``(name, kwargs)`` pairs and instances; or a dict ``{name: kwargs}``.
    Names are looked up among the registered augmentations (built-in or
    from plugins; an unknown name raises
    :class:`~pricetune.registry.UnknownComponentError`).
    """
    from pricetune.plugins import get_component

    if spec is None:
        return []
    if isinstance(spec, str | Augmentation):
        spec = [spec]
    if isinstance(spec, dict):
        spec = list(spec.items())
    if not isinstance(spec, list | tuple):
        raise TypeError(
            "augmentations must be None, a name, an Augmentation, a list of "
            f"them or a dict {{name: kwargs}}, got {spec!r}"
        )
    built = []
    for item in spec:
        if isinstance(item, Augmentation):
            built.append(item)
            continue
        if isinstance(item, str):
            name, kwargs = item, {}
        elif isinstance(item, list | tuple) and len(item) == 2:
            name, kwargs = item
        else:
            raise TypeError(
                f"each augmentation must be a name, a (name, kwargs) pair or an "
                f"Augmentation, got {item!r}"
            )
        cls = get_component("augmentation", name)
        try:
            built.append(cls(**(kwargs or {})))
        except TypeError as error:
            raise TypeError(f"augmentation {name!r}: {error}") from error
    return built
