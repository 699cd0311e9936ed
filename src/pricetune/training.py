"""One training loop for every backbone, head and strategy.

AdamW on the trainable parameters with linear warm-up and cosine decay,
gradient clipping and accumulation, shuffled mini-batches of windows, a
time-ordered validation tail with early stopping and best-weights restore,
bfloat16 autocast on CUDA, optional ``torch.compile``, per-epoch checkpoints
to resume from, a CSV log, and a tqdm progress bar.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pricetune.windows import Windows

PRECISIONS = ("auto", "fp32", "bf16")
LR_SCHEDULES = ("cosine", "constant")


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
    lr_schedule: str = "cosine"
    warmup_fraction: float = 0.05
    gradient_clip: float | None = 1.0
    accumulate_batches: int = 1
    compile: bool = False
    checkpoint_dir: str | None = None
    log_csv: str | None = None
    verbose: int = 0
    description: str = "fine-tuning"
    # identifies the run in checkpoints (e.g. its seed), so that a checkpoint
    # of another run in the same directory is refused, not resumed
    run_id: str = ""

    def learning_rate_factor(self, step: int, total_steps: int) -> float:
        """Multiplier of ``learning_rate`` at optimiser step ``step`` (from 0):
        linear warm-up over ``warmup_fraction`` of the steps, then a cosine
        decay to zero; or 1 throughout for ``"constant"``."""
        if self.lr_schedule == "constant":
            return 1.0
        warmup = max(1, round(self.warmup_fraction * total_steps))
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


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

    def _loss(
        self, model: nn.Module, windows: Windows, indices, forward=None
    ) -> torch.Tensor:
        """The head's loss on the windows at ``indices``; ``forward`` is the
        module to call (``model`` or its compiled form)."""
        context, target, covariates = map(self._to_device, windows.batch(indices))
        with torch.autocast(
            device_type=self.device.type,
            dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None,
        ):
            prediction = (model if forward is None else forward)(context, covariates)
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
        """Train ``model`` in place; returns one record per epoch.

        With ``checkpoint_dir`` set, a checkpoint is written after every
        epoch, and a run that finds its own checkpoint there continues from
        it (weights, optimiser, schedule, random streams, early-stopping
        state), so it ends where an uninterrupted run would have.
        """
        from pricetune import checkpoints

        config = self.config
        train, validation = windows.split(config.validation_fraction)
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError("the strategy left no trainable parameter")
        optimiser = torch.optim.AdamW(
            trainable, lr=config.learning_rate, weight_decay=config.weight_decay
        )
        steps_per_epoch = math.ceil(
            math.ceil(len(train) / config.batch_size) / config.accumulate_batches
        )
        total_steps = steps_per_epoch * config.max_epochs
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda step: config.learning_rate_factor(step, total_steps)
        )
        forward = torch.compile(model) if config.compile else model
        history: list[dict] = []
        best_loss, best_state, stale, done = float("inf"), None, 0, False
        fingerprint = None
        if config.checkpoint_dir is not None:
            settings = asdict(config)
            for volatile in ("verbose", "description", "checkpoint_dir", "log_csv"):
                settings.pop(volatile)
            fingerprint = checkpoints.fingerprint(settings, model, windows.digest())
            state = checkpoints.load(config.checkpoint_dir, fingerprint)
            if state is not None:
                model.load_state_dict(state["trainable"], strict=False)
                optimiser.load_state_dict(state["optimiser"])
                scheduler.load_state_dict(state["scheduler"])
                generator.set_state(state["generator"])
                torch.set_rng_state(state["torch_rng"])
                history = list(state["history"])
                best_loss, stale = state["best_loss"], state["stale"]
                best_state = state["best_state"] or None
                done = state["done"]
        log = _CsvLog(config.log_csv, restart=not history)
        bar = tqdm(
            total=config.max_epochs,
            initial=len(history),
            desc=config.description,
            unit="epoch",
            disable=not config.verbose,
            leave=config.verbose > 1,
        )
        for epoch in range(len(history) + 1, config.max_epochs + 1):
            if done:
                break
            started = time.perf_counter()
            model.train()
            order = train[torch.randperm(len(train), generator=generator).numpy()]
            total = self._train_epoch(
                forward, model, windows, order, optimiser, scheduler, trainable
            )
            record = {"epoch": epoch, "train_loss": total / len(train)}
            if len(validation):
                record["validation_loss"] = self.evaluate(model, windows, validation)
            record["learning_rate"] = scheduler.get_last_lr()[0]
            record["seconds"] = time.perf_counter() - started
            history.append(record)
            log.write(record)
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if "loss" in k})
            if len(validation):
                if record["validation_loss"] < best_loss:
                    best_loss, stale = record["validation_loss"], 0
                    best_state = {
                        name: p.detach().clone()
                        for name, p in model.named_parameters()
                        if p.requires_grad
                    }
                else:
                    stale += 1
                    done = stale >= config.patience
            if fingerprint is not None:
                self._save_checkpoint(
                    {
                        "fingerprint": fingerprint,
                        "trainable": {
                            name: p.detach().cpu()
                            for name, p in model.named_parameters()
                            if p.requires_grad
                        },
                        "optimiser": optimiser.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "generator": generator.get_state(),
                        "torch_rng": torch.get_rng_state(),
                        "history": history,
                        "best_loss": best_loss,
                        "stale": stale,
                        "best_state": best_state or {},
                        "done": done,
                    }
                )
        bar.close()
        if best_state is not None:
            model.load_state_dict(best_state, strict=False)
        return history

    def _train_epoch(
        self, forward, model, windows, order, optimiser, scheduler, trainable
    ) -> float:
        """One pass over ``order``; returns the summed (not averaged) loss.

        Gradients of ``accumulate_batches`` consecutive batches add up before
        each optimiser step, weighted so that the step equals one step on
        their union.
        """
        config = self.config
        batches = list(_batches(order, config.batch_size))
        # summed on the device: reading it every step would make the host
        # wait for the GPU before it prepares the next batch
        total = torch.zeros((), device=self.device)
        for start in range(0, len(batches), config.accumulate_batches):
            group = batches[start : start + config.accumulate_batches]
            group_size = sum(len(batch) for batch in group)
            optimiser.zero_grad(set_to_none=True)
            for batch in group:
                loss = self._loss(model, windows, batch, forward=forward)
                (loss * (len(batch) / group_size)).backward()
                total += loss.detach() * len(batch)
            if config.gradient_clip is not None:
                torch.nn.utils.clip_grad_norm_(trainable, config.gradient_clip)
            optimiser.step()
            scheduler.step()
        return float(total)  # one synchronisation per epoch

    def _save_checkpoint(self, state: dict) -> None:
        from pricetune import checkpoints

        checkpoints.save(self.config.checkpoint_dir, state)


class _CsvLog:
    """Appends one row per epoch to a CSV file (nothing when ``path`` is None)."""

    FIELDS = ("epoch", "train_loss", "validation_loss", "learning_rate", "seconds")

    def __init__(self, path: str | None, restart: bool):
        self.path = path
        if path is not None and restart:
            with open(path, "w", newline="") as handle:
                csv.DictWriter(handle, self.FIELDS).writeheader()

    def write(self, record: dict) -> None:
        if self.path is None:
            return
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, self.FIELDS).writerow(record)
