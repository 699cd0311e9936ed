"""Callbacks: what the training loop does besides optimising.

The :class:`~pricetune.training.trainer.Trainer` runs epochs of optimiser
steps and a validation pass; everything else is a :class:`Callback`:
weight averaging, early stopping, checkpoints, the strategy's hooks, the
CSV and TensorBoard logs and the progress bar. A user's callbacks (the
estimators' ``callbacks=`` parameter) run after those, with the same
hooks: loggers, pruning, monitors.

The built-ins are listed in :func:`standard_callbacks`, in the order they
run: weight averaging before early stopping (the best weights are the
averaged ones, and early stopping's restore comes last), both before the
checkpoint (which saves their state), the checkpoint before the strategy's
hooks and the logs (a resumed run tells them where it resumes).

In data-parallel training (``n_processes``, ``torchrun``) every process
runs the callbacks with the same records; the ones that write files or
print (checkpoints, the CSV and TensorBoard logs, the progress bar) do so
in the process of rank 0 only (``run.rank``).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field

import torch
from torch import nn

from pricetune.registry import shown_name

#: the per-epoch numbers the CSV log writes, in its column order
LOG_FIELDS = ("epoch", "train_loss", "validation_loss", "learning_rate", "seconds")


@dataclass
class TrainingRun:
    """What a callback sees of the run in progress.

    model : the model being trained (a
        :class:`~pricetune.nn.model.PatchForecastModel`).
    config : the :class:`~pricetune.training.config.TrainingConfig`.
    optimizer, scheduler, generator : the AdamW optimiser, the
        learning-rate schedule and the generator that shuffles the windows.
    trainable : ``{name: parameter}`` of what the optimiser trains.
    steps_per_epoch, total_steps : optimiser steps per epoch and in all.
    has_validation : whether validation windows were held out.
    history : the records of the finished epochs (``epoch``,
        ``train_loss``, ``validation_loss``, ``learning_rate``,
        ``seconds``), oldest first.
    epoch : the epoch in progress (from 1; 0 before the first).
    should_stop : set it to ``True`` to end training after this epoch.
    scored_weights : ``{name: tensor}`` that validation scores in place of
        the trained weights (weight averaging sets them), or ``None``.
    member, update, seed : which run of an estimator's fit this is: the
        ensemble member (``None`` for a single model), the number of the
        ``update`` (0 in ``fit``) and the member's seed.
    windows, callbacks : the training data and every callback of the run.
    rank, world_size : this process's rank and the number of processes
        training data-parallel (0 and 1 in a single process); only rank 0
        writes files and prints.
    """

    model: nn.Module
    config: object
    optimizer: torch.optim.Optimizer
    scheduler: object
    generator: torch.Generator
    trainable: dict
    steps_per_epoch: int
    total_steps: int
    has_validation: bool
    windows: object = None
    callbacks: list = field(default_factory=list)
    history: list = field(default_factory=list)
    epoch: int = 0
    should_stop: bool = False
    scored_weights: dict | None = None
    member: int | None = None
    update: int = 0
    seed: int | None = None
    rank: int = 0
    world_size: int = 1

    @property
    def step(self) -> int:
        """Optimiser steps taken so far."""
        return int(self.scheduler.last_epoch)

    def weights_to_score(self) -> dict:
        """The weights validation scores: ``scored_weights`` if set, else
        the trained ones."""
        return self.trainable if self.scored_weights is None else self.scored_weights


class Callback:
    """Base class of the training loop's callbacks; override what you need.

    Every hook gets the :class:`TrainingRun`. Set ``run.should_stop = True``
    to end training after the current epoch (early stopping and pruning do).
    The hooks that run at every optimiser step (:meth:`on_step_end`,
    :meth:`loss_penalty`) are called only on callbacks that override them,
    so the others cost the loop nothing. A callback that keeps state across
    epochs returns it from :meth:`state_dict` (tensors, numbers, strings,
    lists and dicts of them), so that checkpoints save it and a resumed run
    continues it; a callback object is used by one run at a time.

    Example: a monitor that stops when the training loss is small enough::

        class StopBelow(Callback):
            def __init__(self, loss):
                self.loss = loss

            def on_epoch_end(self, run, metrics):
                if metrics["train_loss"] < self.loss:
                    run.should_stop = True

        FineTunedPriceForecaster(callbacks=[StopBelow(0.05)])
    """

    #: True for a callback whose state must stay in this process (an open
    #: MLflow run, an Optuna trial): the worker processes of ``n_processes``
    #: get copies of the callbacks, so such a callback refuses to go there
    stays_in_process = False

    def on_train_begin(self, run: TrainingRun) -> None:
        """Before the first epoch (of a resumed run, too)."""

    def on_epoch_begin(self, run: TrainingRun) -> None:
        """Before each epoch's optimiser steps (``run.epoch`` is set)."""

    def on_step_end(self, run: TrainingRun) -> None:
        """After each optimiser step (``run.step`` counts from 1)."""

    def loss_penalty(self, run: TrainingRun) -> torch.Tensor | None:
        """A term added to each training batch's loss, or ``None``."""
        return None

    def on_epoch_end(self, run: TrainingRun, metrics: dict) -> None:
        """After each epoch: ``metrics`` is its record (also the last entry
        of ``run.history``)."""

    def on_train_end(self, run: TrainingRun) -> None:
        """After the last epoch."""

    def on_fit_end(self, estimator) -> None:
        """After the estimator's ``fit`` (or a training ``update``) has
        finished, with the fitted estimator (once per fit, after every
        ensemble member, interval calibration and sktime's own state):
        where a logger saves the fitted model. Not called in worker
        processes."""

    def state_dict(self) -> dict | None:
        """State to checkpoint, or ``None`` for none."""
        return None

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""


def overrides(callback: Callback, hook: str) -> bool:
    """Whether ``callback``'s class overrides ``hook``."""
    return getattr(type(callback), hook) is not getattr(Callback, hook)


# ------------------------------------------------------------- built-ins
class WeightAveraging(Callback):
    """An exponential moving average of the trainable weights
    (``ema_epochs``).

    Validation scores the average, early stopping keeps its best, and the
    fitted model ends on it. The decay per optimiser step is
    ``1 - 1 / (ema_epochs * steps_per_epoch)``; update ``n`` (from 0) uses
    ``min(decay, n / (n + 1))``, the plain mean of the weights so far while
    that is shorter than the average's span, so the average is never
    anchored to the initial weights.

    Written by hand rather than with ``torch.optim.swa_utils.AveragedModel``:
    on a small model AveragedModel's bookkeeping costs about 70 µs per step
    against 11 µs for this in-place ``lerp_`` of the trainable parameters, a
    quarter of the step (``benchmarks/loop_pieces.py``, docs/performance.md).
    """

    def __init__(self, ema_epochs: float):
        self.ema_epochs = float(ema_epochs)
        self.updates = 0

    def on_train_begin(self, run: TrainingRun) -> None:
        self.decay = 1.0 - 1.0 / max(1.0, self.ema_epochs * run.steps_per_epoch)
        self.trained = run.trainable
        self.updates = 0
        # the trainable parameters only: a frozen pretrained body never moves
        self.averaged = {n: p.detach().clone() for n, p in run.trainable.items()}
        run.scored_weights = self.averaged

    def on_step_end(self, run: TrainingRun) -> None:
        weight = 1.0 - min(self.decay, self.updates / (self.updates + 1))
        self.updates += 1
        with torch.no_grad():
            for name, parameter in self.trained.items():
                self.averaged[name].lerp_(parameter.detach(), weight)

    def on_train_end(self, run: TrainingRun) -> None:
        run.model.load_state_dict(self.averaged, strict=False)

    def state_dict(self) -> dict:
        return {
            "updates": self.updates,
            "averaged": {n: t.detach().cpu() for n, t in self.averaged.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.updates = state["updates"]
        for name, tensor in state["averaged"].items():
            self.averaged[name].copy_(tensor)


class EarlyStopping(Callback):
    """Stops after ``patience`` epochs without a lower validation loss and
    restores the best weights (the averaged ones with weight averaging).
    Does nothing without validation windows."""

    def __init__(self, patience: int):
        self.patience = int(patience)
        self.best_loss = float("inf")
        self.best_weights: dict = {}
        self.stale = 0

    def on_epoch_end(self, run: TrainingRun, metrics: dict) -> None:
        if not run.has_validation:
            return
        if metrics["validation_loss"] < self.best_loss:
            self.best_loss, self.stale = metrics["validation_loss"], 0
            scored = run.weights_to_score()
            self.best_weights = {n: t.detach().clone() for n, t in scored.items()}
        else:
            self.stale += 1
            if self.stale >= self.patience:
                run.should_stop = True

    def on_train_end(self, run: TrainingRun) -> None:
        if self.best_weights:
            run.model.load_state_dict(self.best_weights, strict=False)

    def state_dict(self) -> dict:
        return {
            "best_loss": self.best_loss,
            "stale": self.stale,
            "best_weights": {n: t.detach().cpu() for n, t in self.best_weights.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.best_loss, self.stale = state["best_loss"], state["stale"]
        self.best_weights = dict(state["best_weights"])


class Checkpointing(Callback):
    """Writes a checkpoint to ``directory`` after every epoch; a run that
    finds its own checkpoint there continues from it (weights, optimiser,
    schedule, random streams, history, the other callbacks' state), so it
    ends where an uninterrupted run would have.

    ``settings`` (the config's :meth:`fingerprint_items`) and ``run_id``
    (the member's seed and the update) identify the run, with the model's
    parameter names and shapes and the data: a checkpoint of another run in
    the same directory is refused, not resumed.
    """

    def __init__(self, directory: str, settings: dict, run_id: str):
        self.directory = directory
        self.settings = {**settings, "run_id": run_id}
        self.fingerprint = None

    def on_train_begin(self, run: TrainingRun) -> None:
        from pricetune.training import checkpoints

        self.fingerprint = checkpoints.fingerprint(
            self.settings, run.model, run.windows.digest()
        )
        state = checkpoints.load(self.directory, self.fingerprint)
        if state is None:
            return
        run.model.load_state_dict(state["trainable"], strict=False)
        run.optimizer.load_state_dict(state["optimiser"])
        run.scheduler.load_state_dict(state["scheduler"])
        run.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        device = next(iter(run.trainable.values())).device
        if state.get("cuda_rng") is not None and device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        run.history[:] = list(state["history"])
        run.should_stop = state["done"]
        for key, callback in _keyed(run.callbacks):
            if key in state["callbacks"]:
                callback.load_state_dict(state["callbacks"][key])

    def on_epoch_end(self, run: TrainingRun, metrics: dict) -> None:
        from pricetune.training import checkpoints

        if run.rank:  # every process reads the checkpoint; rank 0 writes it
            return
        device = next(iter(run.trainable.values())).device
        callback_states = {}
        for key, callback in _keyed(run.callbacks):
            state = callback.state_dict()
            if state is not None:
                callback_states[key] = state
        checkpoints.save(
            self.directory,
            {
                "fingerprint": self.fingerprint,
                "trainable": {
                    name: parameter.detach().cpu()
                    for name, parameter in run.trainable.items()
                },
                "optimiser": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict(),
                "generator": run.generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                # dropout, augmentations and device batches draw here
                "cuda_rng": torch.cuda.get_rng_state(device)
                if device.type == "cuda"
                else None,
                "history": run.history,
                "done": run.should_stop,
                "callbacks": callback_states,
            },
        )


def _keyed(callbacks):
    """``(key, callback)`` pairs: the class name, numbered when a class
    appears more than once."""
    seen: dict[str, int] = {}
    for callback in callbacks:
        name = type(callback).__qualname__
        seen[name] = seen.get(name, 0) + 1
        yield (name if seen[name] == 1 else f"{name}-{seen[name]}"), callback


class StrategyHooks(Callback):
    """The optional hooks of the fine-tuning strategy
    (:class:`~pricetune.components.contract.Strategy`): the start of the
    run and of each epoch, a penalty on each training batch's loss, and
    each optimiser step."""

    def __init__(self, strategy):
        self.strategy = strategy

    def on_train_begin(self, run: TrainingRun) -> None:
        if not run.should_stop:  # a resumed run that had finished trains no more
            self.strategy.on_train_begin(run.model, run.total_steps)

    def on_epoch_begin(self, run: TrainingRun) -> None:
        self.strategy.on_epoch_start(run.model, run.epoch)

    def loss_penalty(self, run: TrainingRun):
        return self.strategy.loss_penalty(run.model)

    def on_step_end(self, run: TrainingRun) -> None:
        self.strategy.on_optimizer_step(run.model, run.step)


class CsvLogger(Callback):
    """Appends one row per epoch to the CSV file ``path`` (a resumed run
    continues the file; a new one starts it with a header)."""

    def __init__(self, path: str):
        self.path = path

    def on_train_begin(self, run: TrainingRun) -> None:
        if not run.history and not run.rank:
            with open(self.path, "w", newline="") as handle:
                csv.DictWriter(handle, LOG_FIELDS).writeheader()

    def on_epoch_end(self, run: TrainingRun, metrics: dict) -> None:
        if run.rank:
            return
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, LOG_FIELDS).writerow(metrics)


class TensorBoardLogger(Callback):
    """One TensorBoard scalar per epoch for each number of the record. A
    resumed run drops what a crashed run had logged after its checkpoint."""

    def __init__(self, directory: str):
        self.directory = directory
        self.writer = None

    def on_train_begin(self, run: TrainingRun) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = None
        if run.rank:
            return
        first = len(run.history) + 1
        self.writer = SummaryWriter(
            self.directory, purge_step=first if first > 1 else None
        )

    def on_epoch_end(self, run: TrainingRun, metrics: dict) -> None:
        if self.writer is None:  # not rank 0
            return
        for name, value in metrics.items():
            if name != "epoch":
                self.writer.add_scalar(name, value, global_step=metrics["epoch"])
        self.writer.flush()

    def on_train_end(self, run: TrainingRun) -> None:
        if self.writer is not None:
            self.writer.close()


class ProgressBar(Callback):
    """A tqdm bar of the epochs, with the latest losses."""

    def __init__(self, description: str, verbose: int):
        self.description = description
        self.verbose = int(verbose)
        self.bar = None

    def on_train_begin(self, run: TrainingRun) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=run.config.max_epochs,
            initial=len(run.history),
            desc=self.description,
            unit="epoch",
            disable=not self.verbose or run.rank != 0,
            leave=self.verbose > 1,
        )

    def on_epoch_end(self, run: TrainingRun, metrics: dict) -> None:
        self.bar.update(1)
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in metrics.items() if "loss" in k})

    def on_train_end(self, run: TrainingRun) -> None:
        self.bar.close()


def standard_callbacks(
    config,
    strategy=None,
    *,
    member: int | None = None,
    n_members: int = 1,
    update: int = 0,
    seed: int | None = None,
) -> list[Callback]:
    """The callbacks of one training run of an estimator's fit: the
    built-ins ``config`` asks for, in the order they must run (see the
    module docstring), then the user's ``config.callbacks``.

    ``member`` numbers the ensemble member (``None`` for a single model) and
    ``update`` the ``update`` call (0 in ``fit``): each gets its own
    checkpoint and TensorBoard sub-folder and CSV file name. In
    data-parallel training each process runs its own copy of them, and the
    ones that write or print do so in rank 0 only.
    """
    suffix = None if member is None else f"member-{member}"
    callbacks: list[Callback] = []
    if config.ema_epochs is not None:
        callbacks.append(WeightAveraging(config.ema_epochs))
    callbacks.append(EarlyStopping(config.patience))
    if config.checkpoint_dir is not None:
        callbacks.append(
            Checkpointing(
                run_directory(config.checkpoint_dir, update, suffix),
                config.fingerprint_items(),
                run_id=f"seed={seed}/update={update}",
            )
        )
    if strategy is not None:
        callbacks.append(StrategyHooks(strategy))
    if config.log_csv is not None:
        callbacks.append(CsvLogger(with_suffix(config.log_csv, suffix)))
    if config.tensorboard_dir is not None:
        callbacks.append(
            TensorBoardLogger(run_directory(config.tensorboard_dir, update, suffix))
        )
    description = (
        f"pricetune {shown_name(config.backbone)}/{shown_name(config.strategy)}"
    )
    if member is not None:
        description += f" {member + 1}/{n_members}"
    callbacks.append(ProgressBar(description, config.verbose))
    callbacks.extend(config.callbacks)
    return callbacks


def run_directory(root, update: int, member: str | None = None) -> str:
    """``root`` for ``fit``; a sub-folder per ``update``, and one per
    ensemble member inside it."""
    parts = [str(root)]
    if update:
        parts.append(f"update-{update}")
    if member is not None:
        parts.append(member)
    return os.path.join(*parts)


def with_suffix(path, suffix: str | None) -> str:
    """``path`` with ``.suffix`` before its extension (``log.csv`` ->
    ``log.member-1.csv``); ``path`` itself without a suffix."""
    if suffix is None:
        return str(path)
    root, extension = os.path.splitext(str(path))
    return f"{root}.{suffix}{extension}"
