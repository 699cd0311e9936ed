"""One training loop for every backbone, head and strategy.

AdamW on the trainable parameters, shuffled mini-batches of windows, a
time-ordered validation tail with early stopping and best-weights restore,
bfloat16 autocast on CUDA, and a tqdm progress bar.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pricetune.windows import Windows

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(
            f"device must be a string such as 'auto' or 'cpu', got {device!r}"
        )
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device={device!r} but CUDA is not available here")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise RuntimeError(
                f"device={device!r}, but only {count} CUDA device(s) are visible"
            )
    return resolved


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or ``None`` for plain float32.

    ``"auto"`` uses bfloat16 autocast on CUDA devices that support it.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return None
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if precision == "bf16":
        raise ValueError(
            f"precision='bf16' needs a CUDA device with bf16, got {device}"
        )
    return None


@dataclass
class TrainingConfig:
    max_epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float = 0.0
    patience: int = 5
    validation_fraction: float = 0.2
    verbose: int = 0
    description: str = "fine-tuning"


def split_windows(n_windows: int, horizon: int, validation_fraction: float):
    """Time-ordered train/validation split of window indices.

    The last ``validation_fraction`` of windows validate. The ``horizon - 1``
    windows before them are dropped, so that no training target overlaps a
    validation target. Returns ``(train, validation)``; ``validation`` is
    empty when there are too few windows to spare.
    """
    n_validation = int(round(n_windows * validation_fraction))
    n_train = n_windows - n_validation - (horizon - 1)
    if n_validation < 1 or n_train < 1:
        return np.arange(n_windows), np.arange(0)
    return np.arange(n_train), np.arange(n_windows - n_validation, n_windows)


def _batches(indices: np.ndarray, batch_size: int):
    for start in range(0, len(indices), batch_size):
        yield indices[start : start + batch_size]


class Trainer:
    """Trains a :class:`~pricetune.model.PatchForecastModel` on
    :class:`~pricetune.windows.Windows` of raw values."""

    def __init__(self, config: TrainingConfig, device: torch.device, autocast_dtype):
        self.config = config
        self.device = device
        self.autocast_dtype = autocast_dtype

    def _to_device(self, array: np.ndarray | None) -> torch.Tensor | None:
        if array is None:
            return None
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def _loss(self, model: nn.Module, windows: Windows, indices) -> torch.Tensor:
        context, target, covariates = map(self._to_device, windows.batch(indices))
        with torch.autocast(
            device_type=self.device.type,
            dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None,
        ):
            prediction = model(context, covariates)
        loc, scale = model.scaling(context)
        return model.head.loss(prediction.float(), (target - loc) / scale)

    def evaluate(self, model: nn.Module, windows: Windows, indices) -> float:
        """Mean loss over the windows at ``indices``, without training."""
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for batch in _batches(indices, self.config.batch_size):
                total += float(self._loss(model, windows, batch)) * len(batch)
                count += len(batch)
        return total / max(count, 1)

    def fit(self, model, windows: Windows, generator: torch.Generator) -> list[dict]:
        """Train ``model`` in place; returns one record per epoch."""
        config = self.config
        horizon = windows.targets.shape[1]
        train, validation = split_windows(
            len(windows), horizon, config.validation_fraction
        )
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError("the strategy left no trainable parameter")
        optimiser = torch.optim.AdamW(
            trainable, lr=config.learning_rate, weight_decay=config.weight_decay
        )
        history: list[dict] = []
        best_loss, best_state, stale = float("inf"), None, 0
        bar = tqdm(
            total=config.max_epochs,
            desc=config.description,
            unit="epoch",
            disable=not config.verbose,
            leave=config.verbose > 1,
        )
        for epoch in range(1, config.max_epochs + 1):
            started = time.perf_counter()
            model.train()
            order = train[torch.randperm(len(train), generator=generator).numpy()]
            total = 0.0
            for batch in _batches(order, config.batch_size):
                loss = self._loss(model, windows, batch)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
            record = {"epoch": epoch, "train_loss": total / len(train)}
            if len(validation):
                record["validation_loss"] = self.evaluate(model, windows, validation)
            record["seconds"] = time.perf_counter() - started
            history.append(record)
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if "loss" in k})
            if not len(validation):
                continue
            if record["validation_loss"] < best_loss:
                best_loss, stale = record["validation_loss"], 0
                best_state = {
                    name: p.detach().clone()
                    for name, p in model.named_parameters()
                    if p.requires_grad
                }
            else:
                stale += 1
                if stale >= config.patience:
                    break
        bar.close()
        if best_state is not None:
            model.load_state_dict(best_state, strict=False)
        return history
