"""One training loop for every backbone, head and strategy.

AdamW on the trainable parameters with linear warm-up and cosine decay,
gradient clipping and accumulation, shuffled mini-batches of windows, a
time-ordered validation tail with early stopping and best-weights restore,
bfloat16 autocast on CUDA, optional ``torch.compile``, per-epoch checkpoints
to resume from, a CSV log, TensorBoard scalars, and a tqdm progress bar.
"""

from __future__ import annotations

import contextlib
import csv
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pricetune.data.windows import Windows

#: torch.compile modes the ``compile`` setting takes besides True/False
COMPILE_MODES = (
    "default",
    "reduce-overhead",
    "max-autotune",
    "max-autotune-no-cudagraphs",
)
LR_SCHEDULES = ("cosine", "constant")


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
    # False, True (torch.compile's default mode) or one of COMPILE_MODES
    compile: bool | str = False
    # applied to training batches only (pricetune.components.augmentations)
    augmentations: tuple = ()
    # FGSM: also train on windows moved by this many typical moves in the
    # direction that raises the loss most
    adversarial_epsilon: float = 0.0
    # validate, stop early and end on an exponential moving average of the
    # trainable weights whose mean age is about this many epochs (None: off)
    ema_epochs: float | None = None
    checkpoint_dir: str | None = None
    log_csv: str | None = None
    tensorboard_dir: str | None = None
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


def _batches(indices: np.ndarray, batch_size: int):
    for start in range(0, len(indices), batch_size):
        yield indices[start : start + batch_size]


def parameter_groups(
    model: nn.Module, strategy, trainable: list, learning_rate: float
) -> list[dict]:
    """The optimiser's parameter groups: the strategy's (see
    :meth:`~pricetune.components.contract.Strategy.parameter_groups`), with
    every trainable parameter it left out in a last group at
    ``learning_rate``; or one group of all of ``trainable``."""
    groups = (
        None if strategy is None else strategy.parameter_groups(model, learning_rate)
    )
    if groups is None:
        return [{"params": trainable}]
    trainable_ids = {id(p) for p in trainable}
    seen: set[int] = set()
    checked = []
    for number, group in enumerate(groups):
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(
                f"{type(strategy).__name__}.parameter_groups must return dicts "
                f"with 'params'; group {number} is {group!r}"
            )
        params = list(group["params"])
        for parameter in params:
            if id(parameter) not in trainable_ids:
                raise ValueError(
                    f"{type(strategy).__name__}.parameter_groups: group {number} "
                    "holds a parameter that is not trainable"
                )
            if id(parameter) in seen:
                raise ValueError(
                    f"{type(strategy).__name__}.parameter_groups: a parameter "
                    f"appears in more than one group (again in group {number})"
                )
            seen.add(id(parameter))
        if params:
            checked.append({**group, "params": params})
    rest = [p for p in trainable if id(p) not in seen]
    if rest:
        checked.append({"params": rest})
    return checked


class Trainer:
    """Trains a :class:`~pricetune.nn.model.PatchForecastModel` on
    :class:`~pricetune.data.windows.Windows` of raw values.

    ``placement`` says where batches are gathered (see
    :func:`pricetune.data.batches.batch_source`): ``"auto"`` keeps the data on a
    CUDA device when they fit, so the GPU never waits for the host.
    """

    def __init__(
        self,
        config: TrainingConfig,
        device: torch.device,
        autocast_dtype,
        placement: str = "auto",
    ):
        self.config = config
        self.device = device
        self.autocast_dtype = autocast_dtype
        self.placement = placement

    def _loss(self, model: nn.Module, batch, forward=None) -> torch.Tensor:
        """The head's loss on ``batch`` (``(contexts, targets, covariates)``
        on the device); ``forward`` is the module to call (``model`` or its
        compiled form)."""
        context, target, covariates = batch
        with self._autocast():
            prediction = (model if forward is None else forward)(context, covariates)
        loc, scale = model.scaling(context)
        return model.head.loss(prediction.float(), (target - loc) / scale)

    def _autocast(self):
        """bfloat16 autocast when training uses it; else nothing (entering a
        disabled autocast costs a small model's step a few percent)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def evaluate(self, model: nn.Module, windows, indices, source=None) -> float:
        """Mean loss over the windows at ``indices``, without training."""
        from pricetune.data.batches import batch_source

        if source is None:
            source = batch_source(windows, self.device, self.placement)
        model.eval()
        total = torch.zeros((), device=self.device)
        with torch.no_grad():
            for batch in _batches(source.order(indices), self.config.batch_size):
                total += self._loss(model, source.batch(batch)) * len(batch)
        return float(total) / max(len(indices), 1)

    def _fused_option(self, trainable: list) -> dict:
        """``fused=True`` for AdamW when every trainable parameter is a
        floating-point CUDA tensor: one kernel per step instead of several
        per parameter."""
        if all(p.is_cuda and p.is_floating_point() for p in trainable):
            return {"fused": True}
        return {}

    def fit(
        self,
        model,
        windows: Windows,
        generator: torch.Generator,
        strategy=None,
    ) -> list[dict]:
        """Train ``model`` in place; returns one record per epoch.

        ``strategy`` (a :class:`~pricetune.components.contract.Strategy`)
        gets its optional hooks called: parameter groups, the start of the
        run and of each epoch, a penalty added to each training batch's
        loss, and each optimiser step.

        With ``checkpoint_dir`` set, a checkpoint is written after every
        epoch, and a run that finds its own checkpoint there continues from
        it (weights, optimiser, schedule, random streams, early-stopping
        state), so it ends where an uninterrupted run would have.
        """
        from pricetune.data.batches import batch_source
        from pricetune.training import checkpoints

        config = self.config
        train, validation = windows.split(config.validation_fraction)
        source = batch_source(windows, self.device, self.placement)
        # what the optimiser holds, saved and restored as a whole even when
        # a strategy's hooks freeze part of it for a while
        trainable_names = [n for n, p in model.named_parameters() if p.requires_grad]
        parameters = dict(model.named_parameters())
        trainable = [parameters[name] for name in trainable_names]
        if not trainable:
            raise ValueError("the strategy left no trainable parameter")
        optimiser = torch.optim.AdamW(
            parameter_groups(model, strategy, trainable, config.learning_rate),
            lr=config.learning_rate,
            weight_decay=config.weight_decay,
            **self._fused_option(trainable),
        )
        steps_per_epoch = math.ceil(
            math.ceil(len(train) / config.batch_size) / config.accumulate_batches
        )
        total_steps = steps_per_epoch * config.max_epochs
        scheduler = _Schedule(
            optimiser, lambda step: config.learning_rate_factor(step, total_steps)
        )
        average = None
        if config.ema_epochs is not None:
            average = WeightAverage(
                {name: parameters[name] for name in trainable_names},
                decay=1.0 - 1.0 / max(1.0, config.ema_epochs * steps_per_epoch),
            )
        forward = model
        if config.compile:
            mode = None if config.compile is True else config.compile
            forward = torch.compile(model, mode=mode)
        history: list[dict] = []
        best_loss, best_state, stale, done = float("inf"), None, 0, False
        fingerprint = None
        if config.checkpoint_dir is not None:
            settings = asdict(config)
            for volatile in (
                "verbose",
                "description",
                "checkpoint_dir",
                "log_csv",
                "tensorboard_dir",
            ):
                settings.pop(volatile)
            fingerprint = checkpoints.fingerprint(settings, model, windows.digest())
            state = checkpoints.load(config.checkpoint_dir, fingerprint)
            if state is not None:
                model.load_state_dict(state["trainable"], strict=False)
                optimiser.load_state_dict(state["optimiser"])
                scheduler.load_state_dict(state["scheduler"])
                generator.set_state(state["generator"])
                torch.set_rng_state(state["torch_rng"])
                if state.get("cuda_rng") is not None and self.device.type == "cuda":
                    torch.cuda.set_rng_state(state["cuda_rng"], self.device)
                history = list(state["history"])
                best_loss, stale = state["best_loss"], state["stale"]
                best_state = state["best_state"] or None
                done = state["done"]
                if average is not None:
                    average.load_state_dict(state["average"])
        log = _CsvLog(config.log_csv, restart=not history)
        board = _TensorBoardLog(config.tensorboard_dir, first_epoch=len(history) + 1)
        bar = tqdm(
            total=config.max_epochs,
            initial=len(history),
            desc=config.description,
            unit="epoch",
            disable=not config.verbose,
            leave=config.verbose > 1,
        )
        if strategy is not None and not done:
            strategy.on_train_begin(model, total_steps)
        for epoch in range(len(history) + 1, config.max_epochs + 1):
            if done:
                break
            started = time.perf_counter()
            if strategy is not None:
                strategy.on_epoch_start(model, epoch)
            model.train()
            order = train[torch.randperm(len(train), generator=generator).numpy()]
            total = self._train_epoch(
                forward, model, source, order, optimiser, scheduler, strategy, average
            )
            record = {"epoch": epoch, "train_loss": total / len(train)}
            if len(validation):
                with _averaged_weights(average):
                    record["validation_loss"] = self.evaluate(
                        model, windows, validation, source
                    )
            record["learning_rate"] = scheduler.get_last_lr()[0]
            record["seconds"] = time.perf_counter() - started
            history.append(record)
            log.write(record)
            board.write(record)
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if "loss" in k})
            if len(validation):
                if record["validation_loss"] < best_loss:
                    best_loss, stale = record["validation_loss"], 0
                    scored = parameters if average is None else average.averaged
                    best_state = {
                        name: scored[name].detach().clone() for name in trainable_names
                    }
                else:
                    stale += 1
                    done = stale >= config.patience
            if fingerprint is not None:
                self._save_checkpoint(
                    {
                        "fingerprint": fingerprint,
                        "trainable": {
                            name: parameters[name].detach().cpu()
                            for name in trainable_names
                        },
                        "optimiser": optimiser.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "generator": generator.get_state(),
                        "torch_rng": torch.get_rng_state(),
                        # dropout, augmentations and device batches draw here
                        "cuda_rng": torch.cuda.get_rng_state(self.device)
                        if self.device.type == "cuda"
                        else None,
                        "history": history,
                        "best_loss": best_loss,
                        "stale": stale,
                        "best_state": best_state or {},
                        "done": done,
                        "average": None if average is None else average.state_dict(),
                    }
                )
        bar.close()
        board.close()
        if best_state is not None:
            model.load_state_dict(best_state, strict=False)
        elif average is not None:
            model.load_state_dict(average.averaged, strict=False)
        return history

    def _train_epoch(
        self, forward, model, source, order, optimiser, scheduler, strategy, average
    ) -> float:
        """One pass over ``order``; returns the summed (not averaged) loss.

        Gradients of ``accumulate_batches`` consecutive batches add up before
        each optimiser step, weighted so that the step equals one step on
        their union.
        """
        config = self.config
        batches = list(_batches(source.order(order), config.batch_size))
        # summed on the device: reading it every step would make the host
        # wait for the GPU before it prepares the next batch
        total = torch.zeros((), device=self.device)
        for start in range(0, len(batches), config.accumulate_batches):
            group = batches[start : start + config.accumulate_batches]
            group_size = sum(len(batch) for batch in group)
            optimiser.zero_grad(set_to_none=True)
            for batch in group:
                loss = self._training_loss(
                    model, source.batch(batch), forward, strategy
                )
                share = len(batch) / group_size
                (loss if share == 1 else loss * share).backward()
                total += loss.detach() * len(batch)
            if config.gradient_clip is not None:
                clip_gradients(
                    [p for group in optimiser.param_groups for p in group["params"]],
                    config.gradient_clip,
                )
            optimiser.step()
            scheduler.step()
            if strategy is not None:
                strategy.on_optimizer_step(model, scheduler.last_epoch)
            if average is not None:
                average.update()
        return float(total)  # one synchronisation per epoch

    def _training_loss(self, model, batch, forward, strategy=None) -> torch.Tensor:
        """The loss of a training batch, after the augmentations, with the
        adversarial term when ``adversarial_epsilon`` is set and the
        strategy's :meth:`~pricetune.components.contract.Strategy.loss_penalty`."""
        penalty = None if strategy is None else strategy.loss_penalty(model)
        loss = self._data_loss(model, batch, forward)
        return loss if penalty is None else loss + penalty

    def _data_loss(self, model, batch, forward) -> torch.Tensor:
        config = self.config
        context, target, covariates = batch
        if config.augmentations:
            with torch.no_grad():
                for augmentation in config.augmentations:
                    context, target = augmentation(context, target)
        if not config.adversarial_epsilon:
            return self._loss(model, (context, target, covariates), forward)
        from pricetune.components.augmentations import typical_move

        context = context.detach().requires_grad_(True)
        loss = self._loss(model, (context, target, covariates), forward)
        (gradient,) = torch.autograd.grad(loss, context, retain_graph=True)
        with torch.no_grad():
            step = config.adversarial_epsilon * typical_move(context)
            moved = context + step * gradient.sign()
        adversarial = self._loss(model, (moved, target, covariates), forward)
        return 0.5 * (loss + adversarial)

    def _save_checkpoint(self, state: dict) -> None:
        from pricetune.training import checkpoints

        checkpoints.save(self.config.checkpoint_dir, state)


class WeightAverage:
    """Exponential moving average of ``parameters`` (name -> tensor), updated
    after each optimiser step with ``decay``. Update ``n`` (from 0) uses
    ``min(decay, n / (n + 1))``: the plain mean of the weights so far until
    that is shorter than the average's span, so the average is never
    anchored to the initial weights."""

    def __init__(self, parameters: dict, decay: float):
        self.parameters = parameters
        self.decay = decay
        self.updates = 0
        self.averaged = {name: p.detach().clone() for name, p in parameters.items()}

    def update(self) -> None:
        decay = min(self.decay, self.updates / (self.updates + 1))
        self.updates += 1
        with torch.no_grad():
            for name, parameter in self.parameters.items():
                self.averaged[name].lerp_(parameter.detach(), 1.0 - decay)

    @contextlib.contextmanager
    def swapped_in(self):
        """The averaged weights in place of the trained ones, for a while."""
        trained = {n: p.detach().clone() for n, p in self.parameters.items()}
        with torch.no_grad():
            for name, parameter in self.parameters.items():
                parameter.copy_(self.averaged[name])
        try:
            yield
        finally:
            with torch.no_grad():
                for name, parameter in self.parameters.items():
                    parameter.copy_(trained[name])

    def state_dict(self) -> dict:
        return {
            "updates": self.updates,
            "averaged": {n: t.detach().cpu() for n, t in self.averaged.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.updates = state["updates"]
        for name, tensor in state["averaged"].items():
            self.averaged[name].copy_(tensor)


def _averaged_weights(average: WeightAverage | None):
    return contextlib.nullcontext() if average is None else average.swapped_in()


def clip_gradients(parameters: list, max_norm: float) -> None:
    """Scale the gradients so that their global L2 norm is at most
    ``max_norm``: the result of ``torch.nn.utils.clip_grad_norm_``, bitwise,
    at about half its per-step cost when every gradient is on one device
    (the usual case; otherwise torch's function does it)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    if len({g.device for g in grads}) > 1:
        torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        return
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))


class _Schedule:
    """The learning-rate schedule: each parameter group's ``lr`` is its
    initial ``lr`` times ``factor(step)``. What ``LambdaLR`` does, without
    its per-step bookkeeping, which a small model's step notices."""

    def __init__(self, optimiser: torch.optim.Optimizer, factor):
        self.optimiser = optimiser
        self.factor = factor
        # torch's schedulers keep each group's starting rate as "initial_lr"
        for group in optimiser.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimiser.param_groups]
        self.last_epoch = 0  # optimiser steps taken (LambdaLR's name)
        self._apply()

    def _apply(self) -> None:
        factor = self.factor(self.last_epoch)
        for group, base in zip(self.optimiser.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor

    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimiser.param_groups]

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.last_epoch = int(state["last_epoch"])
        self.base_lrs = list(state["base_lrs"])
        self._apply()


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


class _TensorBoardLog:
    """One TensorBoard scalar per epoch for each number of the record
    (nothing when ``directory`` is None). A resumed run starts at
    ``first_epoch`` and drops what a crashed run had logged after it."""

    def __init__(self, directory: str | None, first_epoch: int):
        self.writer = None
        if directory is None:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(
            directory, purge_step=first_epoch if first_epoch > 1 else None
        )

    def write(self, record: dict) -> None:
        if self.writer is None:
            return
        for name, value in record.items():
            if name != "epoch":
                self.writer.add_scalar(name, value, global_step=record["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
