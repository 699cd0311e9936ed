"""The checks of :class:`~pricetune.training.config.TrainingConfig`'s
fields: each takes the parameter's name and value and returns the value to
use, or raises ``TypeError``/``ValueError`` with a one-line message that
names the parameter."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable

#: torch.compile modes the ``compile`` setting takes besides True/False
COMPILE_MODES = (
    "default",
    "reduce-overhead",
    "max-autotune",
    "max-autotune-no-cudagraphs",
)


def integer(minimum: int) -> Callable:
    def check(name: str, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer, got {value!r}")
        if value < minimum:
            raise ValueError(f"{name} must be at least {minimum}, got {value}")
        return int(value)

    return check


def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def positive(name: str, value) -> float:
    number = _number(name, value)
    if not number > 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return number


def positive_or_none(name: str, value) -> float | None:
    if value is None:
        return None
    number = _number(name, value)
    if not number > 0:
        raise ValueError(f"{name} must be positive or None, got {value}")
    return number


def non_negative(name: str, value) -> float:
    number = _number(name, value)
    if number < 0:
        raise ValueError(f"{name} must be zero or positive, got {value}")
    return number


def fraction(name: str, value) -> float:
    number = _number(name, value)
    if not 0.0 <= number < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return number


def unit_interval(name: str, value) -> float:
    number = _number(name, value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return number


def choice(options: tuple) -> Callable:
    def check(name: str, value):
        if not isinstance(value, str) or value not in options:
            raise ValueError(f"{name} must be one of {options}, got {value!r}")
        return value

    return check


def boolean(name: str, value) -> bool:
    if isinstance(value, str) or value not in (True, False):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


#: the ways ``calibrate_intervals`` names (``True`` is ``"scale"``)
INTERVAL_CALIBRATIONS = ("scale", "conformal")


def interval_calibration(name: str, value):
    if isinstance(value, str):
        return choice(INTERVAL_CALIBRATIONS)(name, value)
    if value not in (True, False):
        raise TypeError(
            f"{name} must be True, False or one of {INTERVAL_CALIBRATIONS}, "
            f"got {value!r}"
        )
    return bool(value)


def column_names(name: str, value) -> tuple:
    if value is None:
        return ()
    if isinstance(value, str) or not all(
        isinstance(item, str) for item in (value if hasattr(value, "__iter__") else [0])
    ):
        raise TypeError(f"{name} must be a list of column names, got {value!r}")
    names = tuple(value)
    if len(set(names)) != len(names):
        raise ValueError(f"{name} names a column twice: {list(names)}")
    return names


def keyword_dict(name: str, value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict or None, got {value!r}")
    return dict(value)


def component_name(name: str, value):
    """A registered component's name, or a component class (the direction
    classifier's fixed head); names are looked up in ``__post_init__``."""
    if not isinstance(value, str | type):
        raise TypeError(f"{name} must be a component's name, got {value!r}")
    return value


def path_or_none(name: str, value):
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"{name} must be a path or None, got {value!r}")
    return os.fspath(value)


def compile_mode(name: str, value):
    if isinstance(value, bool) or value in COMPILE_MODES:
        return value
    raise ValueError(
        f"{name} must be True, False or one of {COMPILE_MODES}, got {value!r}"
    )


def verbosity(name: str, value) -> int:
    if not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def device_spec(name: str, value):
    import torch

    if isinstance(value, torch.device):
        return value
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be a string such as 'auto' or 'cpu', got {value!r}"
        )
    if value != "auto":
        try:
            torch.device(value)
        except RuntimeError as error:
            raise ValueError(
                f"{name}={value!r} is not a device: use 'auto', 'cpu', 'cuda', "
                f"'cuda:1', 'mps'... ({error})"
            ) from error
    return value


def seed_source(name: str, value):
    import numpy as np

    if value is None or isinstance(value, np.random.RandomState):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an int, a numpy RandomState or None, got {value!r}"
        )
    return int(value)


def augmentation_list(name: str, value) -> tuple:
    from pricetune.components.augmentations import build_augmentations

    return tuple(build_augmentations(value))


def callback_list(name: str, value) -> tuple:
    from pricetune.training.callbacks import Callback

    if value is None:
        return ()
    items = [value] if isinstance(value, Callback) else value
    if not isinstance(items, list | tuple) or not all(
        isinstance(item, Callback) for item in items
    ):
        raise TypeError(
            f"{name} must be a pricetune.training.Callback, a list of them or "
            f"None, got {value!r}"
        )
    return tuple(items)
