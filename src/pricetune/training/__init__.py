"""Training: the settings, the loop and its callbacks, checkpoints, devices."""

from pricetune.data.windows import split_windows
from pricetune.training.devices import PRECISIONS, resolve_device, resolve_precision
from pricetune.training.trainer import (
    COMPILE_MODES,
    LR_SCHEDULES,
    Trainer,
    TrainingConfig,
    WeightAverage,
    _Schedule,
    clip_gradients,
    parameter_groups,
)

__all__ = [
    "COMPILE_MODES",
    "LR_SCHEDULES",
    "PRECISIONS",
    "Trainer",
    "TrainingConfig",
    "WeightAverage",
    "_Schedule",
    "clip_gradients",
    "parameter_groups",
    "resolve_device",
    "resolve_precision",
    "split_windows",
]
