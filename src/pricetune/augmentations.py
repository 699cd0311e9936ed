"""The import path of pricetune 0.1.0, kept so that its imports still work;
the augmentations live in :mod:`pricetune.components.augmentations`."""

from pricetune.components.augmentations import (
    Jitter,
    MagnitudeWarp,
    Scaling,
    WindowSlice,
    build_augmentations,
    typical_move,
)
from pricetune.components.contract import Augmentation

__all__ = [
    "Augmentation",
    "Jitter",
    "MagnitudeWarp",
    "Scaling",
    "WindowSlice",
    "build_augmentations",
    "typical_move",
]
